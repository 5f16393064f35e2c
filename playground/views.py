"""Console pages for deployments: deploy a model in one click, list, toggle logging, delete.

Views only parse and call playground.deployments; every lookup is scoped to the signed-in user,
so another user's deployment answers 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from jobs.models import ModelEntry
from playground.deployments import DeploymentError, delete_deployment, deploy, live
from playground.models import Deployment
from rftconsole.ownership import get_owned_or_404


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
