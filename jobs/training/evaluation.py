"""Evaluate a model on a dataset with a reward: the function `manage.py evaluate` and jobs share.

Accuracy is the fraction of rows whose score reaches the reward version's pass threshold.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from transformers import PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from jobs.datasets.formats import prompt_messages
from jobs.datasets.storage import read_rows
from jobs.models import Dataset, ModelEntry
from jobs.registry.loading import SamplingSettings, generate_answers, load_for_inference
from rewards.models import RewardVersion
from rewards.scoring import score_batch
from rewards.types import RewardResult, Sample

RowsHook = Callable[[list[dict[str, Any]], list[str], list[RewardResult]], None]


@dataclass(frozen=True)
class EvaluationResult:
    accuracy: float
    mean_reward: float
    rows: int
    seconds: float
    reward_errors: int = 0

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def pick_rows(rows: list[dict[str, Any]], samples: int | None, seed: int) -> list[dict[str, Any]]:
    """All rows, or a seeded random subset of `samples` of them (same subset every time)."""
    if samples is None or samples >= len(rows):
        return rows
    return random.Random(seed).sample(rows, samples)


def summarize(results: list[RewardResult], threshold: float, seconds: float) -> EvaluationResult:
    rows = len(results)
    passed = sum(result.passed(threshold) for result in results)
    mean = sum(result.score for result in results) / rows if rows else 0.0
    errors = sum(result.error is not None for result in results)
    return EvaluationResult(
        accuracy=round(passed / rows, 4) if rows else 0.0,
        mean_reward=round(mean, 4),
        rows=rows,
        seconds=round(seconds, 2),
        reward_errors=errors,
    )


def evaluate_loaded(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    reward: RewardVersion,
    sampling: SamplingSettings,
    on_rows: RowsHook | None = None,
) -> EvaluationResult:
    """`on_rows(rows, answers, results)`, when given, sees every row's answer and reward (the
    job engine saves them as the checkpoint's validation answers)."""
    started = time.monotonic()
    answers = generate_answers(model, tokenizer, [prompt_messages(r) for r in rows], sampling)
    samples = [
        Sample(str(i), answer, row)
        for i, (answer, row) in enumerate(zip(answers, rows, strict=True))
    ]
    results = score_batch(reward, samples)
    if on_rows is not None:
        on_rows(rows, answers, results)
    return summarize(results, reward.pass_threshold, time.monotonic() - started)


def evaluate(
    entry: ModelEntry,
    dataset: Dataset,
    reward: RewardVersion,
    samples: int | None = None,
    sampling: SamplingSettings | None = None,
) -> EvaluationResult:
    sampling = sampling or SamplingSettings()
    started = time.monotonic()
    model, tokenizer = load_for_inference(entry)
    rows = pick_rows(read_rows(dataset.path), samples, sampling.seed)
    result = evaluate_loaded(model, tokenizer, rows, reward, sampling)
    return EvaluationResult(**{**result.summary(), "seconds": round(time.monotonic() - started, 2)})
