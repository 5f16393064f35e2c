"""Run an evaluation (in a `default` worker): every row through each model in turn, scored with
`rewards.scoring.score_batch` (the reward path training uses: code never runs in this process),
then the statistics. One model is in memory at a time.

Models load through `jobs.registry.loading`; a checkpoint loads like training made it: a LoRA
checkpoint is an adapter on the job's base (merged first when that base is itself tuned), a
full fine-tuning checkpoint is whole weights. torch is imported only when a model loads.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Mapping
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from jobs.datasets.formats import prompt_messages
from jobs.datasets.storage import iter_lines
from jobs.models import Checkpoint, ModelEntry
from jobs.registry.loading import (
    ModelLoadError,
    SamplingSettings,
    generate_answers,
    load_for_inference,
    load_tokenizer,
    tokenizer_dir,
)
from playground.evaluation_stats import summarize
from playground.evaluations import score_range
from playground.models import Evaluation, EvaluationRow
from rewards.scoring import score_batch
from rewards.types import RewardConfigError, Sample

if TYPE_CHECKING:
    from transformers import PreTrainedModel
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

BATCH = 8  # rows generated and scored between progress updates (and cancel checks)


class EvaluationFailed(RuntimeError):
    """The run cannot go on; the message is the reason the page shows."""


def load_checkpoint(checkpoint: Checkpoint) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    path = Path(checkpoint.path)
    if not path.is_dir():
        raise ModelLoadError(f"The files of checkpoint step {checkpoint.step} are gone: {path}.")
    base = checkpoint.job.base_model
    tokenizer_path = path if (path / "tokenizer_config.json").exists() else tokenizer_dir(base)
    try:
        if (path / "adapter_config.json").exists():
            from peft import PeftModel

            model, _ = load_for_inference(base)
            if base.is_adapter:  # training merged a tuned base before adding its adapter
                model = model.merge_and_unload()
            model = PeftModel.from_pretrained(model, str(path))
        else:
            import torch
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        tokenizer = load_tokenizer(tokenizer_path)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"Cannot load checkpoint step {checkpoint.step}: {error}") from None
    model.eval()
    return model, tokenizer


def load_candidate(
    evaluation: Evaluation, ref: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    kind, _, number = ref.partition(":")
    owner = evaluation.owner_id
    if kind == "model":
        entry = ModelEntry.objects.filter(pk=int(number), owner_id=owner).first()
        if entry is None:
            raise EvaluationFailed(f"Model {ref} was removed after the evaluation was created.")
        return load_for_inference(entry)
    found = Checkpoint.objects.filter(pk=int(number), job__owner_id=owner).select_related("job")
    checkpoint = found.first()
    if checkpoint is None:
        raise EvaluationFailed(f"Checkpoint {ref} was deleted after the evaluation was created.")
    return load_checkpoint(checkpoint)


def read_rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    if evaluation.dataset is None:
        raise EvaluationFailed(f"Dataset {evaluation.dataset_name!r} was deleted.")
    limit = evaluation.progress_total // max(1, len(evaluation.candidates))
    lines = (line for line in iter_lines(evaluation.dataset.path) if line.strip())
    rows = []
    for number, line in enumerate(islice(lines, limit), start=1):
        try:
            rows.append(json.loads(line))
        except ValueError as error:
            raise EvaluationFailed(f"Row {number} of the dataset is not JSON: {error}") from None
    return rows


def _prompt_tokens(tokenizer: PreTrainedTokenizerBase, row: dict[str, Any]) -> int:
    ids = tokenizer.apply_chat_template(prompt_messages(row), add_generation_prompt=True)
    # transformers 5 returns a BatchEncoding (a Mapping, not a dict); older ones a list of ids.
    return len(ids["input_ids"] if isinstance(ids, Mapping) else ids)


def _cancelled(evaluation: Evaluation) -> bool:
    """Cancelled, or deleted while it ran."""
    status = Evaluation.objects.filter(pk=evaluation.pk).values_list("status", flat=True).first()
    return status in (Evaluation.Status.CANCELLED, None)


def _answer_model(
    evaluation: Evaluation, column: int, rows: list[EvaluationRow], done: int
) -> int | None:
    """Answer and score every unskipped row with candidate `column`; return the progress count,
    or None when the user cancelled."""
    model, tokenizer = load_candidate(evaluation, evaluation.candidates[column]["ref"])
    label = evaluation.candidates[column]["label"]
    for row in rows:
        if not row.skipped and _prompt_tokens(tokenizer, row.row) > evaluation.max_prompt_length:
            row.skipped = (
                f"The prompt is longer than maxPromptLength ({evaluation.max_prompt_length} "
                f"tokens) for {label}; training skips such rows too."
            )[:300]
            done += len(evaluation.candidates) - column  # never answered by the rest
    for start in range(0, len(rows), BATCH):
        if _cancelled(evaluation):
            return None
        batch = [r for r in rows[start : start + BATCH] if not r.skipped]
        if batch:
            sampling = SamplingSettings(
                temperature=evaluation.temperature,
                max_new_tokens=evaluation.max_tokens,
                seed=evaluation.seed + start,
            )
            texts = generate_answers(
                model, tokenizer, [prompt_messages(r.row) for r in batch], sampling
            )
            samples = [Sample(str(r.index), t, r.row) for r, t in zip(batch, texts, strict=True)]
            results = score_batch(evaluation.reward_version, samples)
            for row, text, result in zip(batch, texts, results, strict=True):
                row.answers[column] = {
                    "text": text,
                    "score": result.score,
                    "passed": result.passed(evaluation.pass_threshold),
                    "error": result.error,
                }
            done += len(batch)
        EvaluationRow.objects.bulk_update(rows[start : start + BATCH], ["answers", "skipped"])
        Evaluation.objects.filter(pk=evaluation.pk).update(progress_done=done)
    del model
    gc.collect()
    return done


def finish_summary(evaluation: Evaluation) -> dict[str, Any]:
    """The statistics over the rows every model answered (skipped rows are counted apart)."""
    rows = [r for r in evaluation.rows.all() if not r.skipped]
    columns = range(len(evaluation.candidates))
    scores = [[float(r.answers[m]["score"]) for r in rows] for m in columns]
    passed = [[bool(r.answers[m]["passed"]) for r in rows] for m in columns]
    errors = [sum(r.answers[m]["error"] is not None for r in rows) for m in columns]
    labels = [c["label"] for c in evaluation.candidates]
    known = score_range(evaluation.reward_version)
    return {
        "models": summarize(labels, scores, passed, errors, known),
        "rows": len(rows),
        "skipped": evaluation.rows.exclude(skipped="").count(),
        "score_range": list(known) if known else None,
    }


def run_evaluation(evaluation: Evaluation) -> None:
    """Run a queued evaluation to its end; any failure becomes its status and reason."""
    started = time.monotonic()
    # RUNNING too: with late acks, a message comes back only when the worker running it died,
    # and the run then starts over (its rows are rebuilt below).
    claimed = Evaluation.objects.filter(
        pk=evaluation.pk, status__in=[Evaluation.Status.QUEUED, Evaluation.Status.RUNNING]
    ).update(status=Evaluation.Status.RUNNING, progress_done=0)
    if not claimed:  # cancelled, or already finished
        return
    evaluation.refresh_from_db()
    try:
        if evaluation.reward_version is None:
            raise EvaluationFailed(f"Reward {evaluation.reward_label} was deleted.")
        evaluation.rows.all().delete()  # a redelivered run starts over
        empty = [{"text": "", "score": None, "passed": False, "error": None}]
        width = len(evaluation.candidates)
        rows = EvaluationRow.objects.bulk_create(
            EvaluationRow(evaluation=evaluation, index=i, row=row, answers=empty * width)
            for i, row in enumerate(read_rows(evaluation))
        )
        done: int | None = 0
        for column in range(len(evaluation.candidates)):
            done = _answer_model(evaluation, column, rows, done or 0)
            if done is None:
                return
        summary = finish_summary(evaluation)
        summary["seconds"] = round(time.monotonic() - started, 1)
        status, reason = Evaluation.Status.DONE, ""
    except (EvaluationFailed, ModelLoadError) as error:
        summary, status, reason = {}, Evaluation.Status.FAILED, str(error)
    except RewardConfigError as error:
        summary, status = {}, Evaluation.Status.FAILED
        reason = f"The reward cannot score: {error}"
    except Exception as error:  # noqa: BLE001 - the page must show any failure, never spin
        summary, status = {}, Evaluation.Status.FAILED
        reason = f"{type(error).__name__}: {error}"
    Evaluation.objects.filter(pk=evaluation.pk, status=Evaluation.Status.RUNNING).update(
        status=status, status_reason=reason[:2000], summary=summary, finished_at=timezone.now()
    )
