"""The invocation logs page: browse and filter what deployments and the playground answered."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from playground.logs import LogFilterError, metadata_equals
from playground.models import InvocationLog
from rftconsole.ownership import owned

PAGE_SIZE = 50


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
    deployments = owned(InvocationLog, request.user).values_list("deployment", flat=True).distinct()
    context = {"page": page, "given": given, "error": error, "deployments": sorted(deployments)}
    return render(request, "playground/logs.html", context)
