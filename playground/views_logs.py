"""The invocation logs page: browse and filter what deployments and the playground answered, and
import Bedrock model invocation log records."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from jobs.datasets.importer import DatasetError
from playground.log_import import import_upload
from playground.logs import LogFilterError, metadata_equals, prompt_messages
from playground.models import Deployment, InvocationLog
from rftconsole.ownership import get_owned_or_404, owned

PAGE_SIZE = 50
# Request keys shown as the prompt, not among the sampling settings.
PROMPT_KEYS = ("messages", "model", "input", "instructions", "prompt")
# The /v1 route of a console log, by its `operation` (blank: chat, from the endpoint or playground).
ROUTES = {"": "chat completions", "completions": "/v1/completions", "responses": "/v1/responses"}


@require_GET
def log_list(request: HttpRequest) -> HttpResponse:
    """Filters: deployment, feedback, and one metadata key = value (as the datasets filter)."""
    logs = owned(InvocationLog, request.user)
    given = request.GET
    error = ""
    if given.get("deployment"):
        logs = logs.filter(deployment=given["deployment"])
    if given.get("feedback") in {"up", "down"}:
        logs = logs.filter(feedback=given["feedback"])
    if given.get("key"):
        try:
            logs = logs.filter(metadata_equals(given["key"], given.get("value", "")))
        except LogFilterError as problem:
            error = str(problem)
            logs = logs.none()
    page = Paginator(logs.order_by("-created_at", "-pk"), PAGE_SIZE).get_page(given.get("page"))
    context = {
        "page": page,
        "given": given,
        "error": error,
        "deployments": deployment_names(request),
        "max_mb": settings.RFT_DATASET_MAX_BYTES // 1024**2,
    }
    return render(request, "playground/logs.html", context)


def deployment_names(request: HttpRequest) -> list[str]:
    """One option per deployment name: the owner's deployments (live or deleted) and the names
    their logs carry (imported Bedrock logs name a modelId that is no deployment here)."""
    # order_by() drops the model's ordering: with it, DISTINCT would be per (name, created_at),
    # one option per log instead of one per deployment. A set makes it distinct either way.
    logged = owned(InvocationLog, request.user).order_by().values_list("deployment", flat=True)
    served = owned(Deployment, request.user).order_by().values_list("name", flat=True)
    return sorted(set(logged.distinct()) | set(served.distinct()))


@require_GET
def log_detail(request: HttpRequest, log_id: int) -> HttpResponse:
    """One invocation log in full: every prompt message, the whole answer, usage, latency,
    metadata and feedback (the list cuts prompts at 160 characters)."""
    log = get_owned_or_404(InvocationLog, request.user, pk=log_id)
    body = log.request if isinstance(log.request, dict) else {}
    messages = prompt_messages(body)
    messages = messages if isinstance(messages, list) else []
    sampling = {k: v for k, v in body.items() if k not in PROMPT_KEYS}
    context = {
        "log": log,
        "route": ROUTES.get(log.operation, "")
        if log.source == InvocationLog.Source.CONSOLE
        else "",
        "prompt": [_shown(m) for m in messages if isinstance(m, dict)],  # `messages` are flashes
        "sampling": sampling,
        "total_tokens": log.prompt_tokens + log.completion_tokens,
    }
    return render(request, "playground/log_detail.html", context)


def _shown(message: dict[str, Any]) -> dict[str, str]:
    """Role and text of one message; content blocks (Converse, tool calls) shown as JSON."""
    content = message.get("content")
    if not isinstance(content, str):
        content = "" if content is None else json.dumps(content, ensure_ascii=False, indent=2)
    return {"role": str(message.get("role", "")), "content": content}


@require_POST
def log_import(request: HttpRequest) -> HttpResponse:
    """Bedrock model invocation log records (JSONL or .gz) become the user's invocation logs."""
    try:
        report = import_upload(request)
    except DatasetError as error:
        context = {"error": str(error), "report": error.report.as_dict() if error.report else None}
        return render(request, "playground/logs_import_failed.html", context, status=400)
    messages.success(request, f"Imported {report.rows} Bedrock invocation log records.")
    return redirect("deployments:logs")
