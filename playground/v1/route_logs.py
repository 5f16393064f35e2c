"""Invocation logs for /v1/completions and /v1/responses, written as chat completions writes
them: the request body as sent, the first answer's text, usage, latency and the request's
metadata, on the deployment's name (and only when the deployment logs requests). `operation`
names the route, so the logs page can show a prompt that is not a chat (blank: a chat request,
from the endpoint or the playground).

A stream's log is created before its first token and completed before `[DONE]` (or when the
client goes away), so a client that reads the log next finds it whole.
"""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpResponse

from playground.models import Deployment, InvocationLog
from playground.v1.responses import create_invocation_log

COMPLETIONS = "completions"
RESPONSES = "responses"
LOG_ID_HEADER = "X-Invocation-Log-Id"  # as views.py sends it for chat


def usage_fields(prompt_tokens: int, completion_tokens: int, started: float) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
    }


async def open_log(
    deployment: Deployment,
    owner: AbstractBaseUser,
    body: dict[str, Any],
    metadata: dict[str, str],
    operation: str,
    **fields: Any,
) -> InvocationLog | None:
    if not deployment.log_requests:
        return None
    return await create_invocation_log(
        owner, deployment.name, body, metadata, operation=operation, **fields
    )


async def complete_log(log: InvocationLog | None, **fields: Any) -> None:
    if log is not None:
        await InvocationLog.objects.filter(pk=log.pk).aupdate(**fields)


def with_log_id(response: HttpResponse, log: InvocationLog | None) -> HttpResponse:
    if log is not None:
        response[LOG_ID_HEADER] = str(log.pk)
    return response
