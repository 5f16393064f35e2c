"""A job's timeline as OpenAI's fine-tuning events: status changes and one `metrics` event per
recorded step, newest first, with cursor pagination across both.

Status events are the job's `JobEvent` rows (`ftevent-s<pk>`), metrics events its `MetricPoint`
rows (`ftevent-m<pk>`): a training step's `data` uses OpenAI's RFT names (`train_reward_mean`…),
a validation's the `valid_` ones. Both tables are read ordered by (created_at, pk) and merged, so
a page never skips or repeats an event however the two interleave.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from jobs.models import Job, JobEvent, MetricPoint

EVENT_ID = re.compile(r"ftevent-([sm])([1-9][0-9]{0,17})")
RANK = {"m": 0, "s": 1}  # the order of two events with the same created_at (then the pk)

# The console's metric names → OpenAI's, for a training step and for a validation.
TRAIN_NAMES = {
    "reward_mean": "train_reward_mean",
    "reward_std": "train_reward_std",
    "loss": "train_loss",
    "kl": "train_kl",
    "entropy": "train_entropy",
    "completion_length_mean": "train_completion_tokens_mean",
    "frac_reward_zero_std": "train_frac_reward_zero_std",
    "learning_rate": "learning_rate",
}
VALID_NAMES = {
    "mean_reward": "valid_reward_mean",
    "accuracy": "valid_accuracy",
    "rows": "valid_rows",
    "reward_errors": "valid_reward_errors",
}

Key = tuple[datetime, int, int]


class UnknownEvent(ValueError):
    pass


def _status_event(event: JobEvent) -> dict[str, Any]:
    text = event.message or event.sub_status or f"Status: {event.get_status_display()}."
    return {
        "id": f"ftevent-s{event.pk}",
        "object": "fine_tuning.job.event",
        "created_at": int(event.created_at.timestamp()),
        "level": "error" if event.status == Job.Status.FAILED else "info",
        "message": text,
        "data": {"status": event.status, "sub_status": event.sub_status},
        "type": "message",
    }


def _metrics_event(point: MetricPoint, total_steps: int) -> dict[str, Any]:
    names = TRAIN_NAMES if point.kind == "train" else VALID_NAMES
    data: dict[str, Any] = {"step": point.step, "total_steps": total_steps}
    data.update({names[k]: v for k, v in point.values.items() if k in names})
    if point.kind == "train":
        message = (
            f"Step {point.step}/{total_steps}: training reward {_shown(data, 'train_reward_mean')}"
        )
    else:
        accuracy = data.get("valid_accuracy")
        shown = f"{accuracy:.0%}" if isinstance(accuracy, float | int) else "n/a"
        message = (
            f"Validation at step {point.step}: reward {_shown(data, 'valid_reward_mean')}, "
            f"accuracy {shown}"
        )
    return {
        "id": f"ftevent-m{point.pk}",
        "object": "fine_tuning.job.event",
        "created_at": int(point.created_at.timestamp()),
        "level": "info",
        "message": message,
        "data": data,
        "type": "metrics",
    }


def _shown(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    return f"{value:.3f}" if isinstance(value, float | int) else "n/a"


def _older(rows: QuerySet[Any], rank: int, after: Key | None) -> QuerySet[Any]:
    """Rows strictly after the cursor in newest-first order."""
    rows = rows.order_by("-created_at", "-pk")
    if after is None:
        return rows
    moment, after_rank, after_pk = after
    same_moment = Q(created_at=moment)
    if rank == after_rank:
        same_moment &= Q(pk__lt=after_pk)
    elif rank > after_rank:
        same_moment = Q(pk__in=[])
    return rows.filter(Q(created_at__lt=moment) | same_moment)


def _cursor(job: Job, after: str) -> Key:
    match = EVENT_ID.fullmatch(after)
    source = match and (JobEvent if match.group(1) == "s" else MetricPoint)
    row = source.objects.filter(job=job, pk=int(match.group(2))).first() if match else None
    if row is None:
        raise UnknownEvent(after)
    return row.created_at, RANK[match.group(1)], row.pk


def _keyed(rows: Iterable[Any], rank: int) -> list[tuple[Key, Any]]:
    return [((row.created_at, rank, row.pk), row) for row in rows]


def list_events(job: Job, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """One page of events, newest first, and whether more follow."""
    cursor = _cursor(job, after) if after else None
    statuses = _older(JobEvent.objects.filter(job=job), RANK["s"], cursor)[: limit + 1]
    points = _older(MetricPoint.objects.filter(job=job), RANK["m"], cursor)[: limit + 1]
    merged = sorted(
        _keyed(statuses, RANK["s"]) + _keyed(points, RANK["m"]), key=lambda kr: kr[0], reverse=True
    )
    page = [
        _status_event(row) if isinstance(row, JobEvent) else _metrics_event(row, job.total_steps)
        for _, row in merged[:limit]
    ]
    return page, len(merged) > limit
