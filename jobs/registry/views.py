"""Model registry pages: list, register (a hub id, or a directory for administrators), detail (with
the job that trained it), remove, download as a zip, merge an adapter."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs.models import Checkpoint, Job, MetricPoint, ModelEntry
from jobs.registry.export import zip_response
from jobs.registry.forms import RegisterModelForm
from jobs.registry.services import RegistryError, remove_model, start_registration
from rftconsole.ownership import get_owned_or_404, owned
from rftconsole.queue import queue_on_commit


@require_GET
def model_list(request: HttpRequest) -> HttpResponse:
    entries = owned(ModelEntry, request.user).select_related("base")
    return render(request, "models/list.html", {"entries": entries})


@require_GET
def model_detail(request: HttpRequest, model_id: int) -> HttpResponse:
    entry = get_owned_or_404(ModelEntry, request.user, pk=model_id)
    template = "models/_detail_body.html" if request.htmx else "models/detail.html"
    return render(request, template, {"entry": entry, "training": training_summary(entry)})


def training_summary(entry: ModelEntry) -> dict | None:
    """For a tuned model: the job that made it, base vs tuned validation, its checkpoints."""
    job = Job.objects.filter(output_model=entry).first()
    if job is None:
        return None
    evals = list(MetricPoint.objects.filter(job=job, kind="eval").order_by("step"))
    tuned = next((p for p in evals if p.step == job.output_step), evals[-1] if evals else None)
    return {
        "job": job,
        "base": evals[0].values if evals and evals[0].step == 0 else None,
        "tuned": tuned.values if tuned else None,
        "tuned_step": tuned.step if tuned else None,
        "checkpoints": Checkpoint.objects.filter(job=job),
    }


@require_http_methods(["GET", "POST"])
def model_register(request: HttpRequest) -> HttpResponse:
    form = RegisterModelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            entry = start_registration(
                request.user,
                data["source"],
                data["name"],
                data["description"],
                allow_local_paths=request.user.is_superuser,
            )
        except RegistryError as error:
            form.add_error("source", str(error))
        else:
            messages.success(request, f"Registering “{entry.name}”.")
            return redirect("models:detail", model_id=entry.pk)
    return render(request, "models/register.html", {"form": form})


@require_POST
def model_remove(request: HttpRequest, model_id: int) -> HttpResponse:
    entry = get_owned_or_404(ModelEntry, request.user, pk=model_id)
    try:
        remove_model(entry)
    except RegistryError as error:
        messages.error(request, str(error))
        return redirect("models:detail", model_id=entry.pk)
    messages.success(request, f"Removed “{entry.name}” from the registry.")
    return redirect("models:list")


@require_GET
def model_download(request: HttpRequest, model_id: int) -> HttpResponse:
    entry = get_owned_or_404(ModelEntry, request.user, pk=model_id)
    if entry.status != ModelEntry.Status.READY:
        messages.error(request, "Only a ready model can be downloaded.")
        return redirect("models:detail", model_id=entry.pk)
    return zip_response(entry)


@require_POST
def model_merge(request: HttpRequest, model_id: int) -> HttpResponse:
    entry = get_owned_or_404(ModelEntry, request.user, pk=model_id)
    if not entry.is_adapter:
        messages.error(request, f"“{entry.name}” already holds full weights.")
    else:
        queue_on_commit("jobs.merge_model", entry.pk)
        messages.success(request, f"Merging “{entry.name}”: the merged model appears in Models.")
    return redirect("models:detail", model_id=entry.pk)
