"""What the job pages show, computed from the rows: progress and ETA, base → latest validation
accuracy, the config snapshot as rows, the differences between jobs, rollout groups filtered."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from jobs.models import Job, MetricPoint, Rollout
from jobs.training.hyperparameters import BY_NAME
from rftconsole.parsers import json_safe

UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]")
LIVE = (Job.Status.QUEUED, *Job.ACTIVE)  # a page showing these keeps refreshing
ZERO_STD_HINT = 0.5  # frac_reward_zero_std above this: most groups had nothing to learn from


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    percent: int
    eta_seconds: float | None


def progress_of(job: Job, now: datetime | None = None) -> Progress:
    step, total = job.current_step, job.total_steps
    percent = min(100, round(100 * step / total)) if total else 0
    eta = None
    if job.status == Job.Status.TRAINING and 0 < step < total:
        seconds = job.training_seconds  # summed over attempts, so a resumed job's rate holds
        if not seconds and job.started_at:
            seconds = ((now or timezone.now()) - job.started_at).total_seconds()
        if seconds > 0:
            eta = seconds / step * (total - step)
    return Progress(step, total, percent, eta)


def ft_model_name(job: Job, step: int | None = None) -> str:
    """The job's model name on /v1/ as OpenAI names a fine-tuned model (`ft:<base>:<user>:
    <suffix>:<job id>`; a checkpoint's adds `:ckpt-step-<step>`), each part cut to a safe
    alphabet so a name typed by a user can never add a `:`."""

    def part(text: str, length: int) -> str:
        return UNSAFE_IN_NAME.sub("-", text)[:length]

    base = part(job.config.get("base_model", {}).get("name", "model"), 40)
    name = f"ft:{base}:{part(job.owner.get_username(), 30)}:{part(job.suffix, 64)}:{job.pk}"
    return name if step is None else f"{name}:ckpt-step-{step}"


def eval_points(jobs: Iterable[Job]) -> dict[int, list[dict[str, Any]]]:
    by_job: dict[int, list[dict[str, Any]]] = {}
    rows = MetricPoint.objects.filter(job__in=list(jobs), kind="eval").order_by("step")
    for job_id, step, values in rows.values_list("job_id", "step", "values"):
        by_job.setdefault(job_id, []).append({"step": step, **values})
    return by_job


def accuracy_of(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Base (step 0) and latest validation accuracy, with the latest step."""
    scored = [point for point in points if isinstance(point.get("accuracy"), int | float)]
    if not scored:
        return None
    base = next((point["accuracy"] for point in scored if point["step"] == 0), None)
    latest = scored[-1]
    gain = None if base is None or latest["step"] == 0 else latest["accuracy"] - base
    return {"base": base, "latest": latest["accuracy"], "step": latest["step"], "gain": gain}


def latest_train_values(job: Job) -> dict[str, Any]:
    point = MetricPoint.objects.filter(job=job, kind="train").order_by("-step").first()
    return json_safe(point.values) if point else {}


def zero_std_hint(values: dict[str, Any]) -> bool:
    fraction = values.get("frac_reward_zero_std")
    return isinstance(fraction, int | float) and fraction > ZERO_STD_HINT


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
