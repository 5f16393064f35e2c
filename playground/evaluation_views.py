"""Console pages of evaluations: the list, the form (prefilled from `?job=` or `?model=`), the
result page (polled by htmx while it runs), cancel, delete and the CSV / JSONL exports.

Views parse and call playground.evaluations; every lookup is the signed-in user's, so another
user's evaluation, job or model answers 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs.models import Job, ModelEntry
from playground import evaluations as ev
from playground.evaluation_exports import FORMATS, export_lines, filename
from playground.evaluation_forms import EvaluationForm
from playground.models import Evaluation
from rftconsole.ownership import get_owned_or_404, owned
from rftconsole.parsers import parse_int


@require_GET
def evaluation_list(request: HttpRequest) -> HttpResponse:
    evaluations = owned(Evaluation, request.user)[:100]
    return render(request, "playground/evaluation_list.html", {"evaluations": evaluations})


def _initial(request: HttpRequest) -> tuple[dict[str, Any], Job | None]:
    """Form defaults: a job's (`?job=`), or a model as model A (`?model=`)."""
    initial: dict[str, Any] = {}
    job = None
    if "job" in request.GET:
        job = get_owned_or_404(Job, request.user, pk=parse_int(request.GET["job"]))
        defaults = ev.job_defaults(request.user, job)
        refs = defaults.pop("models")
        initial.update(defaults)
        initial.update({f"model_{x}": ref for x, ref in zip("abc", refs, strict=False)})
    elif "model" in request.GET:
        entry = get_owned_or_404(ModelEntry, request.user, pk=parse_int(request.GET["model"]))
        initial["model_a"] = f"model:{entry.pk}"
    return initial, job


@require_http_methods(["GET", "POST"])
def evaluation_new(request: HttpRequest) -> HttpResponse:
    initial, job = _initial(request)
    posted = request.POST if request.method == "POST" else None  # an empty POST is still a POST
    form = EvaluationForm(request.user, posted, initial=initial)
    error = ""
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        version = next(
            (v for v in ev.reward_versions(request.user) if v.pk == data["reward_version"]), None
        )
        try:
            if version is None:  # the choices are the user's own: only a deleted one lands here
                raise ev.EvaluationError("That reward version no longer exists.")
            evaluation = ev.create_evaluation(
                request.user,
                data["models"],
                data["dataset"],
                version,
                form.settings(),
                row_limit=data["rows"],
                job=job,
            )
        except ev.EvaluationError as problem:
            error = str(problem)
        else:
            return redirect("playground:evaluation-detail", evaluation_id=evaluation.pk)
    context = {"form": form, "job": job, "error": error}
    status = 400 if request.method == "POST" else 200
    return render(request, "playground/evaluation_new.html", context, status=status)


@require_GET
def evaluation_detail(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    evaluation = get_owned_or_404(Evaluation, request.user, pk=evaluation_id)
    if request.htmx and not evaluation.finished:  # the poll while it runs
        return render(request, "playground/_evaluation_progress.html", {"evaluation": evaluation})
    if request.htmx:  # it has just finished: reload the whole page, so the results show
        response = HttpResponse()
        response["HX-Refresh"] = "true"
        return response
    sort = request.GET.get("sort", "row")
    if sort not in ev.SORTS:
        sort = "row"
    rows = ev.sorted_rows(evaluation, sort) if evaluation.status == Evaluation.Status.DONE else []
    context = {
        "evaluation": evaluation,
        "rows": [(row, ev.score_diff(row)) for row in rows],
        "sort": sort,
        "sorts": ev.SORTS,
        "stats": ev.display_stats(evaluation.summary.get("models", [])),
    }
    return render(request, "playground/evaluation_detail.html", context)


@require_POST
def evaluation_cancel(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    evaluation = get_owned_or_404(Evaluation, request.user, pk=evaluation_id)
    if ev.cancel(evaluation):
        messages.success(request, f"Cancelled “{evaluation}”.")
    else:
        messages.error(request, f"“{evaluation}” has already finished.")
    return redirect("playground:evaluation-detail", evaluation_id=evaluation.pk)


@require_POST
def evaluation_delete(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    evaluation = get_owned_or_404(Evaluation, request.user, pk=evaluation_id)
    running = not evaluation.finished
    ev.delete_evaluation(evaluation)
    stopped = " Its run stops after the batch it is on." if running else ""
    messages.success(request, f"Deleted “{evaluation}” and its answers.{stopped}")
    return redirect("playground:evaluation-list")


@require_GET
def evaluation_export(request: HttpRequest, evaluation_id: int, fmt: str) -> HttpResponse:
    evaluation = get_owned_or_404(Evaluation, request.user, pk=evaluation_id)
    if fmt not in FORMATS:
        message = f"Unknown export format {fmt!r}: use csv or jsonl."
        return HttpResponse(message, status=400, content_type="text/plain")
    response = StreamingHttpResponse(export_lines(evaluation, fmt), content_type=FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename(evaluation, fmt)}"'
    return response
