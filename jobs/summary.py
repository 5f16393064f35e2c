"""What the job pages show, computed from the rows: progress and ETA, base → published (or
latest) validation accuracy, the training-health warnings (rules in jobs/health.py), the config
snapshot as rows, the differences between jobs, rollout groups filtered."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone

from jobs.health import WINDOW as HEALTH_WINDOW
from jobs.health import ZERO_STD_FRACTION, HealthWarning, check
from jobs.models import Job, MetricPoint, Rollout
from jobs.training.hyperparameters import BY_NAME
from rftconsole.parsers import json_safe

UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]")
LIVE = (Job.Status.QUEUED, *Job.ACTIVE)  # a page showing these keeps refreshing
ZERO_STD_HINT = ZERO_STD_FRACTION  # the identical-rewards chart's reference line
ETA_WINDOW = 5  # recent steps whose durations predict the rest


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    percent: int
    eta_seconds: float | None


def progress_of(
    job: Job, now: datetime | None = None, points: list[dict[str, Any]] | None = None
) -> Progress:
    """Where the job is, and how long the rest should take: from the recent steps' own times
    when the points are given (see eta_seconds), else from the average so far."""
    step, total = job.current_step, job.total_steps
    percent = min(100, round(100 * step / total)) if total else 0
    eta = None
    if job.status == Job.Status.TRAINING and 0 < step < total:
        eta = eta_seconds(step, total, points or [], eval_interval(job))
        if eta is None:
            seconds = job.training_seconds  # summed over attempts, so a resumed job's rate holds
            if not seconds and job.started_at:
                seconds = ((now or timezone.now()) - job.started_at).total_seconds()
            if seconds > 0:
                eta = seconds / step * (total - step)
    return Progress(step, total, percent, eta)


def eval_interval(job: Job) -> int:
    interval = ((job.config or {}).get("hyperparameters") or {}).get("evalInterval")
    return interval if isinstance(interval, int) and interval > 0 else 0


def eta_seconds(step: int, total: int, points: list[dict[str, Any]], interval: int) -> float | None:
    """The median of the last ETA_WINDOW steps' durations × the steps left, plus the validations
    left × the last validation's duration. The median, because a step that ran a validation is
    an outlier (its time is counted once, as the validation's). static/js/job-live.js does the
    same live."""
    recent = [
        _values(p)["step_seconds"]
        for p in points
        if p.get("kind") == "train" and _is_number(_values(p).get("step_seconds"))
    ][-ETA_WINDOW:]
    if not recent or step >= total:
        return None
    evals = [
        _values(p)["seconds"]
        for p in points
        if p.get("kind") == "eval" and _is_number(_values(p).get("seconds"))
    ]
    left = sum(
        1 for s in range(step + 1, total + 1) if s == total or (interval and s % interval == 0)
    )
    return statistics.median(recent) * (total - step) + (evals[-1] * left if evals else 0.0)


def _values(point: dict[str, Any]) -> dict[str, Any]:
    """A point's values, whether nested ({kind, step, values}) or flat (metric_points)."""
    values = point.get("values")
    return values if isinstance(values, dict) else point


def duration_of(job: Job, now: datetime | None = None) -> float | None:
    """Wall-clock seconds from the start to the finish (or to now, while it runs)."""
    if not job.started_at:
        return None
    end = job.finished_at or (now or timezone.now())
    return max(0.0, (end - job.started_at).total_seconds())


def ft_model_name(job: Job, step: int | None = None) -> str:
    """The job's model name on /v1/ as OpenAI names a fine-tuned model (`ft:<base>:<user>:
    <suffix>:<job id>`; a checkpoint's adds `:ckpt-step-<step>`), each part cut to a safe
    alphabet so a name typed by a user can never add a `:`."""

    def part(text: str, length: int) -> str:
        return UNSAFE_IN_NAME.sub("-", text)[:length]

    base = part(job.config.get("base_model", {}).get("name", "model"), 40)
    name = f"ft:{base}:{part(job.owner.get_username(), 30)}:{part(job.suffix, 64)}:{job.pk}"
    return name if step is None else f"{name}:ckpt-step-{step}"


def metric_points(jobs: Iterable[Job], kind: str | None = None) -> dict[int, list[dict[str, Any]]]:
    """Each job's points ({kind, step, values}) in step order: one query for all the jobs."""
    by_job: dict[int, list[dict[str, Any]]] = {}
    rows = MetricPoint.objects.filter(job__in=list(jobs)).order_by("step", "kind")
    if kind:
        rows = rows.filter(kind=kind)
    for job_id, point_kind, step, values in rows.values_list("job_id", "kind", "step", "values"):
        by_job.setdefault(job_id, []).append({"kind": point_kind, "step": step, **values})
    return by_job


def list_points(jobs: list[Job]) -> dict[int, list[dict[str, Any]]]:
    """What a jobs-list row needs (validation, ETA, health) at a cost that does not grow with the
    steps: every eval point, and the first and the last HEALTH_WINDOW train points of each job."""
    if not jobs:
        return {}
    ends = Q()
    for job in jobs:
        ends |= Q(job=job, step__gt=job.current_step - HEALTH_WINDOW)
    rows = (
        MetricPoint.objects.filter(job__in=jobs)
        .filter(Q(kind="eval") | Q(step__lte=HEALTH_WINDOW) | ends)
        .order_by("step", "kind")
    )
    by_job: dict[int, list[dict[str, Any]]] = {}
    for job_id, kind, step, values in rows.values_list("job_id", "kind", "step", "values"):
        by_job.setdefault(job_id, []).append({"kind": kind, "step": step, **values})
    return by_job


def eval_points(jobs: Iterable[Job]) -> dict[int, list[dict[str, Any]]]:
    return metric_points(jobs, "eval")


def accuracy_of(
    points: list[dict[str, Any]], published_step: int | None = None
) -> dict[str, Any] | None:
    """Base (step 0), the published checkpoint's (when there is one) and the latest validation,
    each with its reward errors (rows the reward failed on) so a 0% can say why."""
    scored = [
        point
        for point in points
        if point.get("kind", "eval") == "eval" and isinstance(point.get("accuracy"), int | float)
    ]
    if not scored:
        return None
    base_point = next((point for point in scored if point["step"] == 0), None)
    base = base_point["accuracy"] if base_point else None
    latest = scored[-1]
    published = next(
        (p for p in scored if published_step is not None and p["step"] == published_step), None
    )
    shown = published or latest  # the headline: what the user gets, else the latest
    gain = None if base is None or shown["step"] == 0 else shown["accuracy"] - base
    return {
        "base": base,
        "latest": latest["accuracy"],
        "step": latest["step"],
        "gain": gain,
        "published": published["accuracy"] if published else None,
        "published_step": published["step"] if published else None,
        "shown": shown["accuracy"],
        "shown_step": shown["step"],
        "base_errors": _errors(base_point),
        "latest_errors": _errors(latest),
    }


def _errors(point: dict[str, Any] | None) -> dict[str, int] | None:
    """{errors, rows} when the reward failed on some validation rows, else None."""
    if not point or not _is_number(point.get("reward_errors")) or not point["reward_errors"]:
        return None
    return {"errors": int(point["reward_errors"]), "rows": int(point.get("rows") or 0)}


def health_of(job: Job, points: list[dict[str, Any]]) -> list[HealthWarning]:
    """The training-health warnings for the job's points (see jobs/health.py)."""
    as_points = [
        {
            "kind": p["kind"],
            "step": p["step"],
            "values": {k: v for k, v in p.items() if k not in ("kind", "step")},
        }
        for p in points
    ]
    tokens = ((job.config or {}).get("hyperparameters") or {}).get("inferenceMaxTokens")
    return check(as_points, tokens if isinstance(tokens, int) else None)


def latest_train_values(job: Job) -> dict[str, Any]:
    point = MetricPoint.objects.filter(job=job, kind="train").order_by("-step").first()
    return json_safe(point.values) if point else {}


def config_rows(job: Job) -> list[dict[str, Any]]:
    """The snapshot as launched: what it ran with, not what the objects say today."""
    config = job.config or {}
    rows = [{"label": label, "value": value} for label, value in subjects(config).items()]
    given = job.hyperparameters or {}
    for name, value in (config.get("hyperparameters") or {}).items():
        param = BY_NAME.get(name)
        rows.append(
            {
                "label": name,
                "value": value,
                "help": param.help if param else "",
                "given": name in given,
            }
        )
    return rows


def subjects(config: dict[str, Any]) -> dict[str, str]:
    """Base model, data and reward of a snapshot, each as one line."""
    base = config.get("base_model") or {}
    data = config.get("train_dataset") or {}
    validation = config.get("validation") or {}
    reward = config.get("reward") or {}
    if "dataset" in validation:
        held_out = f"{validation['dataset'].get('name')} ({validation['dataset'].get('rows')} rows)"
    elif validation:
        held_out = f"{validation.get('split', 0):.0%} of the training rows, held out"
    else:
        held_out = "—"
    return {
        "Base model": base.get("name", "—"),
        "Training data": f"{data.get('name', '—')} ({data.get('rows', '?')} rows)",
        "Validation": held_out,
        "Reward": (
            f"{reward.get('name', '—')} v{reward.get('version', '?')} ({reward.get('kind', '?')}, "
            f"passes at ≥ {reward.get('pass_threshold', '?')})"
        ),
        "Profile": str(config.get("profile", "—")),
    }


def config_diff(jobs: list[Job]) -> list[dict[str, Any]]:
    """One row per setting across the jobs, `differs` set where they do not all agree."""
    columns = [subjects(job.config or {}) for job in jobs]
    rows = [
        {"label": label, "values": [column[label] for column in columns], "section": "run"}
        for label in columns[0]
    ]
    hp = [(job.config or {}).get("hyperparameters") or {} for job in jobs]
    names = list(dict.fromkeys(name for values in hp for name in values))
    rows += [
        {"label": name, "values": [values.get(name, "—") for values in hp], "section": "hp"}
        for name in names
    ]
    for row in rows:
        row["differs"] = len({repr(value) for value in row["values"]}) > 1
    return rows


FILTERS = {
    "all": "As sampled",
    "lowest": "Lowest reward first",
    "highest": "Highest reward first",
    "errors": "Errors only",
}


def _components(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, dict):  # a reward_components dict
        return [{"name": name, "value": value, "type": "Reward"} for name, value in raw.items()]
    return [item for item in raw or [] if isinstance(item, dict)]


def _prompt_messages(prompt: Any) -> list[dict[str, str]]:
    if isinstance(prompt, list):
        return [
            {"role": str(m.get("role", "user")), "content": str(m.get("content", ""))}
            for m in prompt
            if isinstance(m, dict)
        ]
    return [{"role": "user", "content": str(prompt)}]


def rollout_groups(
    rollouts: Iterable[Rollout], show: str, scale_rewards: str = "group"
) -> list[dict[str, Any]]:
    """Each sampled group with its completions ordered or filtered as asked.

    Each completion carries its GRPO advantage as TRL computed it for the update: reward minus
    the group's mean, divided by the group's standard deviation (sample std, + 1e-4) unless the
    job's `scale_rewards` is "none"; answers whose reward failed are left out of mean and std and
    get 0 (TRL ignores them). Components of type "Metric" are kept apart from reward scores.
    """
    groups = []
    for rollout in rollouts:
        completions = []
        for number, item in enumerate(rollout.completions or [], start=1):
            parts = _components(item.get("components"))
            completions.append(
                {
                    "number": number,
                    "text": item.get("text", ""),
                    "reward": item.get("reward"),
                    "components": [c for c in parts if c.get("type", "Reward") != "Metric"],
                    "metrics": [_metric(c) for c in parts if c.get("type") == "Metric"],
                    "error": item.get("error"),
                }
            )
        scores = [c["reward"] for c in completions if _is_number(c["reward"]) and not c["error"]]
        _add_advantages(completions, scale_rewards)
        if show in ("lowest", "highest"):
            completions.sort(key=_sort_key, reverse=show == "highest")
        elif show == "errors":
            completions = [c for c in completions if c["error"]]
            if not completions:
                continue
        groups.append(
            {
                "rollout": rollout,
                "messages": _prompt_messages(rollout.prompt),
                "completions": completions,
                "mean": statistics.fmean(scores) if scores else None,
                # sample std, as TRL's (and the advantages' below) for one group
                "std": statistics.stdev(scores) if len(scores) > 1 else None,
                "errors": sum(bool(c["error"]) for c in rollout.completions or []),
                "identical": len(scores) > 1 and len(set(scores)) == 1,
            }
        )
    return groups


ADVANTAGE_EPSILON = 1e-4  # TRL adds it to the std before dividing
# Units read from a metric's name (Bedrock metrics carry none): "answer_chars" is in characters.
METRIC_UNITS = {"chars": "characters", "characters": "characters", "tokens": "tokens",
                "ms": "ms", "seconds": "s", "words": "words", "lines": "lines"}  # fmt: skip


def _metric(component: dict[str, Any]) -> dict[str, Any]:
    name = str(component.get("name", ""))
    unit = component.get("unit") or METRIC_UNITS.get(name.lower().rsplit("_", 1)[-1], "")
    return {**component, "unit": unit}


def _add_advantages(completions: list[dict[str, Any]], scale_rewards: str) -> None:
    scored = [c for c in completions if _is_number(c["reward"]) and not c["error"]]
    rewards = [float(c["reward"]) for c in scored]
    mean = statistics.fmean(rewards) if rewards else 0.0
    std = statistics.stdev(rewards) if len(rewards) > 1 else None  # Bessel, as TRL's nanstd
    for completion in completions:
        completion["advantage"] = 0.0
    for completion, reward in zip(scored, rewards, strict=True):
        if scale_rewards == "none":
            completion["advantage"] = reward - mean
        elif std is not None:
            completion["advantage"] = (reward - mean) / (std + ADVANTAGE_EPSILON)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _sort_key(completion: dict[str, Any]) -> float:
    """Errors sort as the lowest reward: they are what a user looks for first."""
    reward = completion["reward"]
    return -math.inf if completion["error"] or not _is_number(reward) else reward
