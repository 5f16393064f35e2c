"""The job page's websocket: history from the database on connect, then the live events.

Only the signed-in owner may subscribe; anyone else is closed with 4404, exactly as for a job that
does not exist (an anonymous visitor gets 4401). The consumer joins the job's group *before* it
reads the history, so nothing falls between the two; a point may then arrive twice (in the backlog
and live) and the client keeps one per (kind, step). A reconnecting client passes `?after=N` and
gets only the points after step N.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from jobs.events import BacklogEvent, backlog_event, job_group, job_state, point, timeline_entry
from jobs.models import Job, JobEvent, MetricPoint
from rftconsole.ownership import owned
from rftconsole.parsers import json_safe
from rftconsole.websockets import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED


def backlog(job_id: int, after: int | None) -> BacklogEvent:
    """Everything the page needs to draw the job as it is now (read after joining the group)."""
    points = MetricPoint.objects.filter(job_id=job_id)
    if after is not None:
        points = points.filter(step__gt=after)
    rows = points.order_by("step", "kind").values_list(
        "kind", "step", "epoch", "values", "created_at"
    )
    return backlog_event(
        after,
        job_state(Job.objects.get(pk=job_id)),
        [timeline_entry(event) for event in JobEvent.objects.filter(job_id=job_id)],
        [point(*row[:4]) for row in rows],
        [row[4].isoformat() for row in rows],
    )


def owns_job(user: AbstractBaseUser | AnonymousUser, job_id: int) -> bool:
    return owned(Job, user).filter(pk=job_id).exists()


def after_step(query_string: bytes) -> int | None:
    values = parse_qs(query_string.decode("latin-1")).get("after", [])
    try:
        return int(values[-1]) if values else None
    except ValueError:
        return None  # a malformed `after` gets the full history, never an error


class JobConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user") or AnonymousUser()
        job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        # Accept, then close with a code: a browser sees the code and stops reconnecting.
        await self.accept()
        if not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await database_sync_to_async(owns_job)(user, job_id):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = job_group(job_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        history = await database_sync_to_async(backlog)(
            job_id, after_step(self.scope["query_string"])
        )
        await self.send_json(history)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """The page only listens: anything sent, garbage and binary frames included, is ignored
        (decoding it first would let a bad frame crash the consumer and close the socket)."""

    async def job_event(self, message: dict[str, Any]) -> None:
        await self.send_json(message["payload"])  # a LiveEvent from jobs/events.py

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(json_safe(content), allow_nan=False)
