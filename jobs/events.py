"""The job page's live events: their schema, and the one function that sends them.

The TypedDicts here are the wire format of the job websocket (ws/jobs/<id>/), read by
static/js/job-live.js: the `status` and `metric` events a job's group carries, and the `backlog`
that jobs/consumers.py sends on connect, built from the same parts so the replay and the live
stream cannot drift apart. Build events with the constructors below, never as dict literals.

Callers persist first (the database is the source of truth) and then announce; the event leaves
when that write commits, and a failed send only costs a live update, which a reconnecting client
recovers from the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from functools import partial
from typing import Any, Literal, TypedDict

from channels.layers import get_channel_layer
from django.db import transaction

from jobs.models import Job, JobEvent

# --- the schema -------------------------------------------------------------------------------


class StatusLine(TypedDict):
    """A status change as the page prints it, live or from the timeline."""

    status: str  # a Job.Status value
    sub_status: str
    message: str


class StatusEvent(StatusLine):
    type: Literal["status"]


class Point(TypedDict):
    """One metric point: one per (kind, step), a later one for the same step replaces it."""

    kind: str  # "train" (a logged step) or "eval" (a validation run)
    step: int
    epoch: float
    values: dict[str, Any]  # metric name → number; None where it was not finite


class MetricEvent(Point):
    type: Literal["metric"]


class TimelineEntry(StatusLine):
    """A stored JobEvent; `id` lets a reconnecting page skip the entries it already printed."""

    id: int
    at: str  # ISO 8601


class JobState(TypedDict):
    status: str
    status_display: str
    sub_status: str
    reason: str
    current_step: int
    total_steps: int


class BacklogEvent(TypedDict):
    """Sent by the consumer alone, first on each connect: the job as it is now."""

    type: Literal["backlog"]
    after: int | None  # the `?after=N` the page asked with: metrics holds only later steps
    job: JobState
    events: list[TimelineEntry]
    metrics: list[Point]
    times: list[str]  # when each of `metrics` was logged (ISO 8601): the page rebuilds its log


LiveEvent = StatusEvent | MetricEvent  # what a job's group carries (the backlog never does)


def status_event(status: str, sub_status: str = "", message: str = "") -> StatusEvent:
    return StatusEvent(type="status", status=status, sub_status=sub_status, message=message)


def point(kind: str, step: int, epoch: float, values: dict[str, Any]) -> Point:
    return Point(kind=kind, step=step, epoch=epoch, values=values)


def metric_event(kind: str, step: int, epoch: float, values: dict[str, Any]) -> MetricEvent:
    return MetricEvent(type="metric", kind=kind, step=step, epoch=epoch, values=values)


def timeline_entry(event: JobEvent) -> TimelineEntry:
    return TimelineEntry(
        id=event.pk,
        status=event.status,
        sub_status=event.sub_status,
        message=event.message,
        at=event.created_at.isoformat(),
    )


def job_state(job: Job) -> JobState:
    return JobState(
        status=job.status,
        status_display=job.get_status_display(),
        sub_status=job.sub_status,
        reason=job.status_reason,
        current_step=job.current_step,
        total_steps=job.total_steps,
    )


def backlog_event(
    after: int | None,
    job: JobState,
    events: list[TimelineEntry],
    metrics: list[Point],
    times: list[str] | None = None,
) -> BacklogEvent:
    return BacklogEvent(
        type="backlog",
        after=after,
        job=job,
        events=events,
        metrics=metrics,
        times=times if times is not None else [],
    )


# --- sending ----------------------------------------------------------------------------------

logger = logging.getLogger(__name__)
_unreachable_reported = False
SEND_TIMEOUT_SECONDS = 10.0

_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_loop_lock = threading.Lock()


def job_group(job_id: int) -> str:
    return f"job-{job_id}"


def _sending_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop for sending from sync code, running in a daemon thread.

    Why not `async_to_sync`: called from a thread without a loop (the trainer, a Celery task), it
    runs each call in a new event loop, and the channel layer keeps its Redis connections per
    loop, so every event opened and closed a connection (2.6 ms of a 3.4 ms send). One lasting
    loop keeps them open."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():  # a forked child has no thread of its parent
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name="live-events", daemon=True).start()
        return _loop


def send_job_event(job_id: int, event: LiveEvent) -> None:
    """Announce `event` to the job's page once the current transaction commits.

    Inside `transaction.atomic()` the event waits for the commit, and a rollback drops it: a page
    never hears of a row that is not there. Outside a transaction (autocommit: the trainer's
    thread, a Celery task) it is sent at once, so the caller still waits for the send. (A test
    wrapped in a transaction hears nothing unless it runs the on_commit callbacks.)"""
    transaction.on_commit(partial(_send_now, job_id, event))


def _send_now(job_id: int, event: LiveEvent) -> None:
    """Send and wait (up to SEND_TIMEOUT_SECONDS) until Redis has the event. Sync callers only."""
    layer = get_channel_layer()
    if layer is None:
        return
    global _unreachable_reported
    message = {"type": "job.event", "payload": event}
    sending = asyncio.run_coroutine_threadsafe(
        layer.group_send(job_group(job_id), message), _sending_loop()
    )
    try:
        sending.result(timeout=SEND_TIMEOUT_SECONDS)
    except Exception as error:  # noqa: BLE001 - best effort: the DB already has the data
        sending.cancel()
        if not _unreachable_reported:  # e.g. a headless `manage.py train` with no Redis running
            logger.warning("live events are off (%s); the database keeps every point", error)
            _unreachable_reported = True
