"""Evaluations, the services: which models and checkpoints a user may compare, the defaults a job
gives, creating and cancelling a run, and reading its rows back for the page and the exports.

The run itself is `playground.evaluation_runner` (in a `default` worker); the numbers are
`playground.evaluation_stats`. Callers pass objects they looked up with `owned()`; references
to models and checkpoints ("model:<id>", "checkpoint:<id>") are resolved here, for their owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from jobs.models import Checkpoint, Dataset, Job, ModelEntry, ready_models
from jobs.training.hyperparameters import Hyperparameters
from playground.models import Evaluation, EvaluationRow
from rewards.models import RewardFunction, RewardVersion
from rftconsole.ownership import owned
from rftconsole.queue import queue_on_commit

MIN_MODELS, MAX_MODELS = 2, 3
MAX_ROWS = 2000  # one evaluation; more is a training job's validation, not a page
TASK = "playground.run_evaluation"


class EvaluationError(ValueError):
    """The evaluation cannot be created as asked; the message says what to change."""


@dataclass(frozen=True)
class Candidate:
    ref: str  # "model:<id>" or "checkpoint:<id>"
    label: str


@dataclass(frozen=True)
class Settings:
    temperature: float = 1.0
    max_tokens: int = 64  # inferenceMaxTokens
    max_prompt_length: int = 1024  # maxPromptLength
    seed: int = 0


def _checkpoints(owner: AbstractBaseUser) -> list[Checkpoint]:
    """The owner's checkpoints whose files are still there (pruned ones are deleted rows)."""
    found = Checkpoint.objects.filter(job__owner=owner).select_related("job").order_by("-pk")
    return [c for c in found if Path(c.path).is_dir()]


def checkpoint_label(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.job.name} · step {checkpoint.step}"


def candidate_choices(owner: AbstractBaseUser) -> list[Candidate]:
    """What can be compared: the owner's ready models, then their jobs' checkpoints."""
    models = [
        Candidate(f"model:{m.pk}", f"{m.name} ({m.get_kind_display().lower()})")
        for m in ready_models(owner).order_by("name")
    ]
    checkpoints = [
        Candidate(f"checkpoint:{c.pk}", f"{checkpoint_label(c)} (checkpoint)")
        for c in _checkpoints(owner)
    ]
    return models + checkpoints


def resolve(owner: AbstractBaseUser, ref: str) -> Candidate:
    """The candidate `ref` names, if the owner may use it; another user's is 'not found'."""
    kind, _, number = str(ref).partition(":")
    if kind not in ("model", "checkpoint") or not number.isdigit():
        raise EvaluationError(f"Unknown model {ref!r}: use model:<id> or checkpoint:<id>.")
    if kind == "model":
        entry = owned(ModelEntry, owner).filter(pk=int(number)).first()
        if entry is None:
            raise EvaluationError(f"No model {ref!r} of yours.")
        if entry.status != ModelEntry.Status.READY:
            raise EvaluationError(f"Model {entry.name!r} is {entry.get_status_display().lower()}.")
        return Candidate(ref, entry.name)
    point = Checkpoint.objects.filter(pk=int(number), job__owner=owner).select_related("job")
    checkpoint = point.first()
    if checkpoint is None:
        raise EvaluationError(f"No checkpoint {ref!r} of yours.")
    if not Path(checkpoint.path).is_dir():
        raise EvaluationError(f"The files of {checkpoint_label(checkpoint)} are gone.")
    return Candidate(ref, checkpoint_label(checkpoint))


def reward_versions(owner: AbstractBaseUser) -> list[RewardVersion]:
    rewards = owned(RewardFunction, owner)
    return list(
        RewardVersion.objects.filter(reward__in=rewards)
        .select_related("reward")
        .order_by("reward__name", "-number")
    )


def score_range(version: RewardVersion | None) -> tuple[float, float] | None:
    """The reward's score range when it is known: a judge's scores are scaled to 0–1, and every
    built-in grader but `multi` (a formula can leave 0–1) scores 0–1. Code rewards: unknown."""
    if version is None:
        return None
    kind = version.reward.kind
    if kind == RewardFunction.Kind.JUDGE:
        return (0.0, 1.0)
    if kind == RewardFunction.Kind.BUILTIN and version.config.get("grader") not in ("multi", None):
        return (0.0, 1.0)
    return None


def create_evaluation(
    owner: AbstractBaseUser,
    refs: list[str],
    dataset: Dataset,
    reward_version: RewardVersion,
    settings: Settings,
    row_limit: int | None = None,
    job: Job | None = None,
    name: str = "",
) -> Evaluation:
    """Check what can be checked now and queue the run on the `default` queue."""
    refs = [str(ref).strip() for ref in refs if str(ref).strip()]
    if not MIN_MODELS <= len(refs) <= MAX_MODELS:
        raise EvaluationError(f"Choose {MIN_MODELS} or {MAX_MODELS} models (got {len(refs)}).")
    if len(set(refs)) != len(refs):
        raise EvaluationError("Choose each model once.")
    candidates = [resolve(owner, ref) for ref in refs]
    if row_limit is not None and not 1 <= row_limit <= MAX_ROWS:
        raise EvaluationError(f"Rows must be from 1 to {MAX_ROWS} (empty: all).")
    rows = min(dataset.row_count, row_limit or dataset.row_count)
    if rows < 1:
        raise EvaluationError(f"Dataset {dataset.name!r} has no rows.")
    if rows > MAX_ROWS:
        raise EvaluationError(
            f"{dataset.name!r} has {dataset.row_count} rows; evaluate at most {MAX_ROWS} at once."
        )
    if not 0 <= settings.temperature <= 2:
        raise EvaluationError("temperature must be from 0 (greedy) to 2.")
    if not 1 <= settings.max_tokens <= 32768:
        raise EvaluationError("inferenceMaxTokens must be from 1 to 32768.")
    if not 16 <= settings.max_prompt_length <= 32768:
        raise EvaluationError("maxPromptLength must be from 16 to 32768.")
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            owner=owner,
            name=(name or f"{' vs '.join(c.label for c in candidates)} on {dataset.name}")[:200],
            candidates=[{"ref": c.ref, "label": c.label} for c in candidates],
            dataset=dataset,
            dataset_name=dataset.name,
            row_limit=row_limit,
            reward_version=reward_version,
            reward_label=str(reward_version)[:120],
            pass_threshold=reward_version.pass_threshold,
            job=job,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            max_prompt_length=settings.max_prompt_length,
            seed=settings.seed,
            progress_total=rows * len(candidates),
        )
        queue_on_commit(TASK, evaluation.pk)
    return evaluation


def cancel(evaluation: Evaluation) -> bool:
    """Ask a queued or running evaluation to stop; the worker stops after its current batch."""
    updated = Evaluation.objects.filter(
        pk=evaluation.pk, status__in=[Evaluation.Status.QUEUED, Evaluation.Status.RUNNING]
    ).update(
        status=Evaluation.Status.CANCELLED,
        status_reason="Cancelled by the user.",
        finished_at=timezone.now(),
    )
    return bool(updated)


def delete_evaluation(evaluation: Evaluation) -> None:
    """Delete an evaluation and its rows. A run in progress stops after its current batch: the
    runner finds its evaluation gone, as if cancelled (evaluation_runner._cancelled)."""
    evaluation.delete()


def job_settings(job: Job) -> Settings:
    """The job's sampling settings: its launched snapshot, else what was given, else defaults."""
    try:
        if job.config.get("hyperparameters"):
            hp = Hyperparameters.of_snapshot(job.config)
        else:
            hp = Hyperparameters.from_bedrock(dict(job.hyperparameters or {}))
    except (ValueError, TypeError, KeyError):
        hp = Hyperparameters.from_bedrock({})
    return Settings(hp.temperature, hp.inference_max_tokens, hp.max_prompt_length, hp.seed)


def job_defaults(owner: AbstractBaseUser, job: Job) -> dict[str, Any]:
    """The form's defaults from a job: its base model, its output model (else its best
    checkpoint by validation reward), its validation (else train) dataset, reward and sampling."""
    refs = [f"model:{job.base_model_id}"]
    output = job.output_model
    if output is not None and output.status == ModelEntry.Status.READY:
        refs.append(f"model:{output.pk}")
    else:
        scored = [c for c in _checkpoints(owner) if c.job_id == job.pk]
        best = max(
            (c for c in scored if c.validation_reward is not None),
            key=lambda c: (c.validation_reward, c.step),
            default=scored[0] if scored else None,
        )
        if best is not None:
            refs.append(f"checkpoint:{best.pk}")
    settings = job_settings(job)
    return {
        "models": refs,
        "dataset": job.validation_dataset_id or job.train_dataset_id,
        "reward_version": job.reward_version_id,
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "max_prompt_length": settings.max_prompt_length,
        "seed": settings.seed,
    }


def row_scores(row: EvaluationRow) -> list[float | None]:
    return [answer.get("score") for answer in row.answers]


def score_diff(row: EvaluationRow) -> float | None:
    """The last model's score minus the first's (None when either is missing)."""
    scores = row_scores(row)
    if len(scores) < 2 or scores[0] is None or scores[-1] is None:
        return None
    return scores[-1] - scores[0]


SORTS = {"row": "row order", "diff": "biggest gain first", "-diff": "biggest loss first"}


def sorted_rows(evaluation: Evaluation, sort: str = "row") -> list[EvaluationRow]:
    """The rows in `sort` order (see SORTS); rows without a difference go last."""
    rows = list(evaluation.rows.all())
    if sort in ("diff", "-diff"):
        sign = -1 if sort == "diff" else 1
        scored = [(r, score_diff(r)) for r in rows]
        rows = [r for r, d in sorted(scored, key=lambda p: (p[1] is None, sign * (p[1] or 0)))]
    return rows


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def display_stats(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summary's numbers with their text for the page: 3 decimals, accuracy in percent."""
    return [
        {
            **stats,
            "mean_text": _number(stats["mean"]),
            "mean_ci_text": f"{_number(stats['mean_low'])}, {_number(stats['mean_high'])}",
            "accuracy_text": _percent(stats["accuracy"]),
            "accuracy_ci_text": (
                f"{_percent(stats['accuracy_low'])}, {_percent(stats['accuracy_high'])}"
            ),
        }
        for stats in models
    ]
