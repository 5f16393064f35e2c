"""Dataset pages: list, upload (with a progress bar), preview as chat, token stats, split, delete.
The importer and the tools do the work; these views only route and render."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import AbstractBaseUser
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs.datasets.importer import DatasetError
from jobs.datasets.tools import page_of_rows, remove_dataset, split_dataset, token_stats
from jobs.datasets.transfers import download_response, imported
from jobs.models import Dataset, ModelEntry, ready_models
from playground.logs import LogFilter
from playground.logs import dataset_from_logs as build_from_logs
from playground.models import InvocationLog
from rftconsole.ownership import get_owned_or_404, owned
from rftconsole.parsers import parse_int

PAGE_ROWS = 10


@require_GET
def dataset_list(request: HttpRequest) -> HttpResponse:
    return render(request, "datasets/list.html", {"datasets": owned(Dataset, request.user)})


@require_http_methods(["GET", "POST"])
def dataset_upload(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        max_mb = settings.RFT_DATASET_MAX_BYTES // 1024**2
        return render(request, "datasets/upload.html", {"max_mb": max_mb})
    given = {
        "name": request.POST.get("name", ""),
        "description": request.POST.get("description", ""),
        "file": request.FILES.get("file"),
        "dry_run": request.POST.get("dry_run") == "on",
    }
    try:
        dataset, report = imported(request, given)  # type: ignore[arg-type]
    except DatasetError as error:
        report = error.report.as_dict() if error.report else None
        context = {"error": str(error), "report": report}
        return render(request, "datasets/_import_result.html", context)
    if dataset is None:
        return render(request, "datasets/_import_result.html", {"report": report, "dry_run": True})
    messages.success(request, f"Imported “{dataset.name}”: {dataset.row_count} rows.")
    target = reverse("datasets:detail", args=[dataset.pk])
    if request.htmx:
        return HttpResponse(headers={"HX-Redirect": target})
    return redirect(target)


@require_GET
def dataset_detail(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_owned_or_404(Dataset, request.user, pk=dataset_id)
    context = {"dataset": dataset, "models": stats_models(request.user), **_page(dataset, request)}
    return render(request, "datasets/detail.html", context)


def stats_models(user: AbstractBaseUser) -> list[ModelEntry]:
    """Ready models for the token counts, the first being the default: base models before tuned
    ones, the oldest base first (the starter model, the one training starts from), rather than
    whichever tuned model happens to be newest."""
    return list(ready_models(user).order_by("kind", "created_at", "pk"))  # "base" < "tuned"


@require_GET
def dataset_rows(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_owned_or_404(Dataset, request.user, pk=dataset_id)
    return render(request, "datasets/_rows.html", {"dataset": dataset, **_page(dataset, request)})


def _page(dataset: Dataset, request: HttpRequest) -> dict:
    offset = max(0, min(parse_int(request.GET.get("offset")) or 0, dataset.row_count - 1))
    rows = page_of_rows(dataset, offset, PAGE_ROWS)
    return {
        "rows": [(offset + i + 1, row) for i, row in enumerate(rows)],
        "offset": offset,
        "previous": max(0, offset - PAGE_ROWS) if offset else None,
        "next": offset + PAGE_ROWS if offset + PAGE_ROWS < dataset.row_count else None,
        "last_shown": offset + len(rows),
    }


@require_GET
def dataset_stats(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_owned_or_404(Dataset, request.user, pk=dataset_id)
    entry = get_owned_or_404(ModelEntry, request.user, pk=parse_int(request.GET.get("model"), 0))
    stats = token_stats(dataset, entry)
    return render(request, "datasets/_stats.html", {"stats": stats, "entry": entry})


@require_POST
def dataset_split(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_owned_or_404(Dataset, request.user, pk=dataset_id)
    try:
        fraction = float(request.POST.get("fraction", "0.1"))
        seed = parse_int(request.POST.get("seed") or "0")
        if seed is None:
            raise DatasetError("The seed must be a whole number.")
        train, validation = split_dataset(request.user, dataset, fraction, seed)
    except (ValueError, DatasetError) as error:
        messages.error(request, str(error))
        return redirect("datasets:detail", dataset_id=dataset.pk)
    messages.success(
        request,
        f"Split into “{train.name}” ({train.row_count} rows) and "
        f"“{validation.name}” ({validation.row_count} rows).",
    )
    return redirect("datasets:list")


@require_GET
def dataset_download(request: HttpRequest, dataset_id: int) -> FileResponse:
    dataset = get_owned_or_404(Dataset, request.user, pk=dataset_id)
    return download_response(request, dataset)


@require_POST
def dataset_delete(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_owned_or_404(Dataset, request.user, pk=dataset_id)
    try:
        remove_dataset(dataset)
    except DatasetError as error:
        messages.error(request, str(error))
        return redirect("datasets:detail", dataset_id=dataset.pk)
    messages.success(request, f"Deleted “{dataset.name}” and its file.")
    return redirect("datasets:list")


FILTER_ROWS = 4


@require_http_methods(["GET", "POST"])
def dataset_from_logs(request: HttpRequest) -> HttpResponse:
    """Bedrock's "invocation logs" data source: filter logged requests by metadata, keep them."""
    post = request.POST
    context = {
        "filter_rows": range(FILTER_ROWS),
        "log_count": owned(InvocationLog, request.user).count(),
        "given": post,
    }
    if request.method == "POST":
        filters = [
            LogFilter(
                post.get(f"key_{i}", "").strip(),
                post.get(f"op_{i}", "equals"),
                post.get(f"value_{i}", ""),
            )  # type: ignore[arg-type]
            for i in range(FILTER_ROWS)
            if post.get(f"key_{i}", "").strip()
        ]
        try:
            dataset, _ = build_from_logs(
                request.user,
                post.get("name", ""),
                filters,
                "or" if post.get("combine") == "or" else "and",
                use_response_as_reference=post.get("use_response") == "on",
                deployment=post.get("deployment", "").strip() or None,
                description=post.get("description", ""),
            )
        except DatasetError as error:
            context["error"] = str(error)
            context["report"] = error.report.as_dict() if error.report else None
        else:
            messages.success(request, f"Built “{dataset.name}” from {dataset.row_count} logs.")
            return redirect("datasets:detail", dataset_id=dataset.pk)
    return render(request, "datasets/from_logs.html", context)
