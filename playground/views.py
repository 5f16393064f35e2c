"""Console pages for deployments: deploy a model in one click, list, toggle logging, delete.

Views only parse and call playground.deployments; every lookup is scoped to the signed-in user,
so another user's deployment answers 404.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from jobs.models import Dataset, Job, ModelEntry
from playground import sessions as pg
from playground.deployments import DeploymentError, delete_deployment, deploy, live
from playground.models import Deployment, PlaygroundSession
from rftconsole.ownership import get_owned_or_404, owned
from rftconsole.parsers import parse_int


@require_GET
def deployment_list(request: HttpRequest) -> HttpResponse:
    deployments = live(request.user).select_related("model")
    context = {
        "deployments": deployments,
        "loading": any(d.status == Deployment.Status.CREATING for d in deployments),
        "base_url": request.build_absolute_uri("/v1"),
        "example": next((d for d in deployments if d.status == Deployment.Status.ACTIVE), None),
    }
    if request.htmx:
        return render(request, "playground/_deployment_rows.html", context)
    return render(request, "playground/deployments.html", context)


@require_POST
def deploy_model(request: HttpRequest, model_id: int) -> HttpResponse:
    entry = get_owned_or_404(ModelEntry, request.user, pk=model_id)
    try:
        deployment = deploy(
            request.user,
            entry,
            name=request.POST.get("name", ""),
            log_requests=not request.POST.get("no_logs"),
        )
    except DeploymentError as error:
        messages.error(request, str(error))
        return redirect("models:detail", model_id=entry.pk)
    messages.success(
        request, f"Deploying “{entry.name}” as “{deployment.name}”: it loads in the background."
    )
    return redirect("deployments:list")


@require_POST
def deployment_logging(request: HttpRequest, deployment_id: int) -> HttpResponse:
    deployment = get_owned_or_404(Deployment, request.user, pk=deployment_id)
    deployment.log_requests = request.POST.get("log_requests") == "on"
    deployment.save(update_fields=["log_requests"])
    state = "logged" if deployment.log_requests else "no longer logged"
    messages.success(request, f"Requests to “{deployment.name}” are {state}.")
    return redirect("deployments:list")


@require_POST
def deployment_delete(request: HttpRequest, deployment_id: int) -> HttpResponse:
    deployment = get_owned_or_404(Deployment, request.user, pk=deployment_id)
    if deployment.status != Deployment.Status.DELETED:
        delete_deployment(deployment)
        messages.success(request, f"Deleted deployment “{deployment.name}”.")
    return redirect("deployments:list")


# --- the playground ------------------------------------------------------------------------------


def _playground_context(request: HttpRequest, session: PlaygroundSession | None) -> dict:
    owner = request.user
    return {
        "session": session,
        "models": list(pg.choosable_models(owner).select_related("base")),
        "reward_versions": list(pg.reward_versions(owner)),
        "datasets": list(owned(Dataset, owner).order_by("name")),
        "past_sessions": owned(PlaygroundSession, owner)[:30],
        "max_tokens_cap": settings.RFT_INFERENCE_MAX_TOKENS * 8,
    }


def _defaults(request: HttpRequest) -> tuple[dict, Job | None]:
    """What a new session starts with: `?job=<id>` picks the job's base and tuned models, its
    reward and validation data; `?models=<id>[,<id>]` picks models (a tuned one with its base)."""
    owner = request.user
    chosen: list[int] = []
    initial: dict = {
        "reward_version": None,
        "dataset": None,
        "temperature": 0.7,
        "top_p": 1.0,
        "max_tokens": min(256, settings.RFT_INFERENCE_MAX_TOKENS),
    }
    job = None
    if (job_id := parse_int(request.GET.get("job"))) is not None:
        job = get_owned_or_404(Job, owner, pk=job_id)
        chosen = [job.base_model_id] + ([job.output_model_id] if job.output_model_id else [])
        initial["reward_version"] = job.reward_version_id
        initial["dataset"] = job.validation_dataset_id or job.train_dataset_id
    for value in request.GET.get("models", "").replace(",", " ").split():
        entry = owned(ModelEntry, owner).filter(pk=parse_int(value)).first()
        if entry is None:
            continue
        chosen.append(entry.pk)
        if entry.base_id and len(request.GET.get("models", "").split(",")) == 1:
            chosen.append(entry.base_id)  # a tuned model: compare with its base
    unique = list(dict.fromkeys(chosen))[: pg.MAX_MODELS]
    initial["model_ids"] = unique + [None] * (pg.MAX_MODELS - len(unique))
    return initial, job


def playground_index(request: HttpRequest) -> HttpResponse:
    """New session (GET: the form, preselected from ?job= or ?models=; POST: create it)."""
    if request.method == "POST":
        job = None
        if (job_id := parse_int(request.POST.get("job"))) is not None:
            job = owned(Job, request.user).filter(pk=job_id).first()
        try:
            session = pg.create_session(
                request.user, request.POST.getlist("model"), request.POST.dict(), job=job
            )
        except pg.SessionError as error:
            context = _playground_context(request, None)
            context["initial"] = {
                **request.POST.dict(),
                "model_ids": _ints(request.POST.getlist("model")),
            }
            context["error"] = str(error)
            return render(request, "playground/index.html", context, status=400)
        return redirect("playground:session", session_id=session.pk)
    if request.method != "GET":
        return HttpResponse(status=405)
    initial, job = _defaults(request)
    context = _playground_context(request, None)
    context.update(initial=initial, job=job)
    return render(request, "playground/index.html", context)


def _ints(values: list[str]) -> list[int | None]:
    found = [parse_int(value) for value in values][: pg.MAX_MODELS]
    return found + [None] * (pg.MAX_MODELS - len(found))


@require_GET
def playground_session(request: HttpRequest, session_id: int) -> HttpResponse:
    session = get_owned_or_404(PlaygroundSession, request.user, pk=session_id)
    context = _playground_context(request, session)
    context["columns"] = pg.columns(session)
    context["initial"] = {
        "system_prompt": session.system_prompt,
        "temperature": session.temperature,
        "top_p": session.top_p,
        "max_tokens": session.max_tokens,
        "seed": session.seed,
        "reward_version": session.reward_version_id,
        "dataset": session.dataset_id,
    }
    return render(request, "playground/index.html", context)


@require_POST
def playground_clear(request: HttpRequest, session_id: int) -> HttpResponse:
    """Clear chat: every model's conversation starts again (settings and logs are kept)."""
    session = get_owned_or_404(PlaygroundSession, request.user, pk=session_id)
    pg.start_fresh(session)
    messages.success(request, "Chat cleared: the next message starts a new conversation.")
    return redirect("playground:session", session_id=session.pk)


@require_GET
def playground_row(request: HttpRequest) -> HttpResponse:
    """One dataset row as JSON, for "Load a validation row"."""
    try:
        found = pg.validation_row(
            request.user, request.GET.get("dataset"), request.GET.get("index", 0)
        )
    except pg.SessionError as error:
        return JsonResponse({"error": str(error)}, status=400)
    return JsonResponse(found)
