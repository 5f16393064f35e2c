"""The one helper that sends live events to a job's websocket group.

Callers persist first (the database is the source of truth) and then announce; a failed send only
costs a live update, which a reconnecting client recovers from the database.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)
_unreachable_reported = False


def job_group(job_id: int) -> str:
    return f"job-{job_id}"


def send_job_event(job_id: int, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    global _unreachable_reported
    try:
        async_to_sync(layer.group_send)(
            job_group(job_id), {"type": "job.event", "payload": payload}
        )
    except Exception as error:  # noqa: BLE001 - best effort: the DB already has the data
        if not _unreachable_reported:  # e.g. a headless `manage.py train` with no Redis running
            logger.warning("live events are off (%s); the database keeps every point", error)
            _unreachable_reported = True
