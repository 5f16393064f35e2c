"""The test bench: run a reward version on a few rows, before any training.

Completions are typed by hand or sampled from a registered model. Each row is scored on its own,
so the time shown per row is that row's, and one row's failure never hides the others.
The work runs in a Celery worker (`rewards.run_test`), never in the web process.
"""

from __future__ import annotations

import json
import time
from itertools import islice
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from jobs.datasets.formats import prompt_messages
from jobs.datasets.storage import iter_lines
from jobs.models import Dataset, ModelEntry
from jobs.registry.loading import SamplingSettings, generate_answers, load_for_inference
from rewards.models import RewardTest, RewardVersion
from rewards.scoring import score_batch
from rewards.types import RewardConfigError, RewardResult, Sample
from rftconsole.queue import queue_on_commit

MAX_TEST_ROWS = 50


class TestBenchError(ValueError):
    """The test cannot start; the message says what to change."""


def first_rows(dataset: Dataset, count: int, start: int = 0) -> list[dict[str, Any]]:
    """Rows `start`..`start+count` of a dataset, read lazily (datasets can be large)."""
    rows = []
    lines = (line for line in iter_lines(dataset.path) if line.strip())
    for number, line in enumerate(islice(lines, start, start + count), start=start + 1):
        try:
            rows.append(json.loads(line))
        except ValueError as error:
            raise TestBenchError(f"Row {number} of {dataset.name} is not JSON: {error}") from None
    return rows


def start_test(
    owner: AbstractBaseUser,
    version: RewardVersion,
    *,
    dataset: Dataset | None = None,
    rows: int = 5,
    start: int = 0,
    model: ModelEntry | None = None,
    completions: list[str] | None = None,
    samples: list[dict[str, Any]] | None = None,
    temperature: float = 1.0,
) -> RewardTest:
    """Queue a test. Give `samples` ({row, output_text}) directly, or a dataset with either typed
    `completions` (one per row) or a `model` to sample them from. Callers pass owned objects."""
    if samples is None:
        samples = _dataset_samples(dataset, rows, start, model, completions)
    elif not samples or len(samples) > MAX_TEST_ROWS:
        raise TestBenchError(f"Give between 1 and {MAX_TEST_ROWS} samples.")
    if model is not None and model.status != ModelEntry.Status.READY:
        raise TestBenchError(f"Model {model.name!r} is not ready ({model.status}).")
    for position, sample in enumerate(samples):
        _check_sample(sample, position, needs_text=model is None)
    test = RewardTest.objects.create(
        owner=owner,
        version=version,
        dataset=dataset,
        model=model,
        samples=samples,
        temperature=temperature,
    )
    queue_on_commit("rewards.run_test", test.pk)
    return test


def _dataset_samples(
    dataset: Dataset | None,
    rows: int,
    start: int,
    model: ModelEntry | None,
    completions: list[str] | None,
) -> list[dict[str, Any]]:
    if dataset is None:
        raise TestBenchError("Choose a dataset, or give the samples to score.")
    if not 1 <= rows <= MAX_TEST_ROWS:
        raise TestBenchError(f"Test between 1 and {MAX_TEST_ROWS} rows.")
    picked = first_rows(dataset, rows, start)
    if not picked:
        raise TestBenchError(f"{dataset.name} has no rows from row {start + 1}.")
    if model is None:
        if completions is None or len(completions) != len(picked):
            raise TestBenchError(
                f"Type one completion per row ({len(picked)}), or choose a model to sample them."
            )
        return [
            {"row": row, "output_text": text} for row, text in zip(picked, completions, strict=True)
        ]
    return [{"row": row} for row in picked]


def _check_sample(sample: Any, position: int, needs_text: bool) -> None:
    if not isinstance(sample, dict) or not isinstance(sample.get("row"), dict):
        raise TestBenchError(f"Sample {position + 1} needs a 'row' object (a dataset row).")
    if needs_text and not isinstance(sample.get("output_text"), str):
        raise TestBenchError(f"Sample {position + 1} needs an 'output_text' string.")


def run_test(test: RewardTest) -> None:
    """Sample (when a model is given), score row by row, and store what happened."""
    started = time.monotonic()
    test.status = RewardTest.Status.RUNNING
    test.save(update_fields=["status"])
    try:
        texts = _completions(test)
        test.results = [
            _score_row(test.version, index, sample["row"], text)
            for index, (sample, text) in enumerate(zip(test.samples, texts, strict=True))
        ]
        test.status = RewardTest.Status.DONE
    except RewardConfigError as error:
        test.status, test.error = RewardTest.Status.FAILED, str(error)
    except Exception as error:  # noqa: BLE001 - the bench must show any failure, never spin
        test.status, test.error = RewardTest.Status.FAILED, f"{type(error).__name__}: {error}"

    test.seconds = round(time.monotonic() - started, 3)
    test.save(update_fields=["status", "error", "results", "seconds"])


def _completions(test: RewardTest) -> list[str]:
    if test.model is None:
        return [sample["output_text"] for sample in test.samples]
    model, tokenizer = load_for_inference(test.model)
    conversations = [prompt_messages(sample["row"]) for sample in test.samples]
    sampling = SamplingSettings(temperature=test.temperature, seed=int(timezone.now().timestamp()))
    return generate_answers(model, tokenizer, conversations, sampling)


def _score_row(version: RewardVersion, index: int, row: dict[str, Any], text: str) -> dict:
    started = time.monotonic()
    result: RewardResult = score_batch(version, [Sample(str(index), text, row)])[0]
    return {
        "index": index,
        "prompt": prompt_messages(row),
        "reference_answer": row.get("reference_answer"),
        "completion": text,
        "score": result.score,
        "passed": result.passed(version.pass_threshold),
        "components": result.components,
        "output": result.output,
        "error": result.error,
        "ms": round((time.monotonic() - started) * 1000, 1),
    }
