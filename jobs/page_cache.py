"""What the job pages compute from a job's metric points, cached while the job is at rest.

A finished (or paused) job's points no longer change, yet the jobs list read ~24 points per row,
ran the health rules and rendered each row again on every load and every 3 s poll: 84 ms for a
page of 25 finished demo jobs, most of the page's cost (issue 22). A job's row HTML and its
page's point summary (progress, validation accuracy, health warnings, latest train values) are
kept in Django's cache (Redis, shared by every web process): for a day while the job is at rest
(its points no longer change), for RFT_LIVE_PAGE_CACHE_SECONDS (2 s, under the pages' 3 s poll)
while it is queued or running, so that 50 viewers polling every 3 s compute a running job's row
about once, not 17 times a second. A new step or status makes a new key at once; only a running
job's "so far" duration and a validation point landing within the same step can show that late.

Keys hold everything the cached text is made from: the job's shown fields and related names (a
renamed model or a changed status makes a new key, the old one just expires), the active time
zone, and a digest of the templates and code that build it, so an upgrade never shows stale rows.
Every lookup starts from the owner's own rows, so the cache never serves a row across owners.
Redis unreachable: computed as before, nothing refused.
"""

from __future__ import annotations

import hashlib
import logging
from functools import cache as once
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from redis.exceptions import RedisError

from jobs.models import Job
from jobs.summary import (
    LIVE,
    accuracy_of,
    duration_of,
    health_of,
    latest_train_values,
    list_points,
    metric_points,
    progress_of,
)

ROW_TEMPLATE = "jobs/_list_row.html"
CACHE_SECONDS = 24 * 3600
# What the cached text is built from: a change to any of these files makes new keys.
SOURCES = (
    "templates/jobs/_list_row.html",
    "templates/jobs/_status_badge.html",
    "jobs/health.py",
    "jobs/summary.py",
    "jobs/page_cache.py",
)

logger = logging.getLogger(__name__)


@once
def _code_digest() -> str:
    root = Path(settings.BASE_DIR)
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update((root / name).read_bytes())
    return digest.hexdigest()[:16]


def at_rest(job: Job) -> bool:
    """Its points no longer change: it is neither queued nor running."""
    return job.status not in LIVE


def _key(kind: str, job: Job) -> str:
    """A key that changes with anything the cached text shows about the job."""
    shown = (
        job.name, job.status, job.sub_status, job.status_reason, job.current_step,
        job.total_steps, job.training_seconds, job.output_step, job.output_model_id,
        job.output_model.name if job.output_model_id else "", job.base_model.name,
        job.reward_version.reward.name, job.reward_version.number, job.created_at,
        job.started_at, job.finished_at, timezone.get_current_timezone_name(),
    )  # fmt: skip
    fields = hashlib.sha256(repr(shown).encode()).hexdigest()[:24]
    return f"rft:job-{kind}:{_code_digest()}:{job.pk}:{fields}"


def _get_many(keys: list[str]) -> dict[str, Any]:
    try:
        return cache.get_many(keys) if keys else {}
    except (RedisError, OSError) as error:
        logger.warning("The page cache is unreachable (%s); computing the rows.", error)
        return {}


def _set_many(values: dict[str, Any], seconds: int) -> None:
    try:
        if values and seconds:
            cache.set_many(values, timeout=seconds)
    except (RedisError, OSError) as error:
        logger.warning("The page cache is unreachable (%s); nothing kept.", error)


def list_rows(jobs: list[Job]) -> list[SafeString]:
    """Each job's row of the jobs list as HTML, in order: from the cache for jobs at rest."""
    keys = {job.pk: _key("row", job) for job in jobs}
    found = _get_many(list(keys.values()))
    missing = [job for job in jobs if keys[job.pk] not in found]
    points = list_points(missing)
    rendered: dict[int, str] = {}
    for job in missing:
        mine = points.get(job.pk, [])
        row = {
            "job": job,
            "progress": progress_of(job, points=mine),
            "accuracy": accuracy_of(mine, job.output_step),
            "duration": duration_of(job),
            "warnings": health_of(job, mine),
        }
        rendered[job.pk] = render_to_string(ROW_TEMPLATE, {"row": row})
    for resting in (True, False):
        _set_many(
            {keys[job.pk]: rendered[job.pk] for job in missing if at_rest(job) == resting},
            _seconds(resting),
        )
    # our own rendering of escaped templates, kept as text in the cache
    return [mark_safe(rendered.get(job.pk) or found[keys[job.pk]]) for job in jobs]  # noqa: S308


def point_summary(job: Job) -> dict[str, Any]:
    """The job page's figures from its points: progress, accuracy, warnings, latest values."""
    key = _key("summary", job)
    if (found := _get_many([key]).get(key)) is not None:
        return found
    points = metric_points([job]).get(job.pk, [])
    summary = {
        "progress": progress_of(job, points=points),
        "accuracy": accuracy_of(points, job.output_step),
        "warnings": health_of(job, points),
        "latest": latest_train_values(job),
    }
    _set_many({key: summary}, _seconds(at_rest(job)))
    return summary


def _seconds(resting: bool) -> int:
    return CACHE_SECONDS if resting else settings.RFT_LIVE_PAGE_CACHE_SECONDS
