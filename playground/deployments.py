"""Deploy a registered model in one click, and take it down again.

`deploy` creates the row (Creating) and, once committed, loads the model into this process's
inference pool in a background thread, then marks it Active or Failed with a plain reason.
A thread, not a Celery task: the pool lives in the web process that serves `/v1/`, and a load in
a worker process would warm the wrong memory. Other web processes load on their first request.
A deployment still Creating after RFT_DEPLOYMENT_LOAD_DEADLINE seconds lost its loading thread
(the web process that loaded it was restarted): `fail_stuck_loads` (run by beat every minute) marks
it Failed with that reason, and the owner deploys again.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import close_old_connections, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from jobs.models import ModelEntry
from jobs.registry.loading import ModelLoadError
from playground.inference.pool import get_pool
from playground.models import DEPLOYMENT_NAME_PATTERN, Deployment
from rftconsole.ownership import owned
from rftconsole.security.audit import audit

logger = logging.getLogger(__name__)

NAME_RE = re.compile(DEPLOYMENT_NAME_PATTERN)


class DeploymentError(ValueError):
    """The deployment cannot be made; the message says what to do."""


def live(owner: AbstractBaseUser) -> QuerySet[Deployment]:
    """The owner's deployments that are not deleted."""
    return owned(Deployment, owner).exclude(status=Deployment.Status.DELETED)


def suggest_name(owner: AbstractBaseUser, entry: ModelEntry) -> str:
    """The model's name made into a valid `model` id, numbered when the owner already uses it."""
    stem = re.sub(r"[^A-Za-z0-9._:\-]+", "-", entry.name).strip("-._:")[:90] or "model"
    if not stem[0].isalnum():
        stem = f"m{stem}"
    name, number = stem, 1
    while live(owner).filter(name=name).exists():
        number += 1
        name = f"{stem}-{number}"
    return name


def deploy(
    owner: AbstractBaseUser,
    entry: ModelEntry,
    name: str | None = None,
    log_requests: bool = True,
    background: bool = True,
) -> Deployment:
    """Create a deployment of `entry` and load it (in a thread unless `background` is False)."""
    if entry.owner_id != owner.pk:
        raise DeploymentError("You can only deploy your own models.")
    if entry.status != ModelEntry.Status.READY:
        raise DeploymentError(
            f"Model {entry.name!r} is {entry.get_status_display().lower()}: only a ready model "
            "can be deployed."
        )
    name = (name or "").strip() or suggest_name(owner, entry)
    if not NAME_RE.fullmatch(name):
        raise DeploymentError(
            f"{name!r} is not a valid deployment name: use up to 100 letters, digits, '.', '_', "
            "':' or '-', starting with a letter or digit."
        )
    if name.startswith("ft:"):
        raise DeploymentError(
            f"{name!r} starts with 'ft:', which names fine-tuning jobs' models on /v1/ (they are "
            "served without a deployment): choose another name."
        )
    with transaction.atomic():
        if live(owner).select_for_update().filter(name=name).exists():
            raise DeploymentError(f"You already have a deployment named {name!r}.")
        deployment = Deployment.objects.create(
            owner=owner, name=name, model=entry, log_requests=log_requests
        )
        audit(owner, "deployment.create", f"deployment {deployment.pk} {name}", model=entry.name)
    if background:
        transaction.on_commit(lambda: _start_loading(deployment.pk))
    else:
        load_deployment(deployment.pk)
        deployment.refresh_from_db()
    return deployment


def _start_loading(deployment_id: int) -> None:
    thread = threading.Thread(
        target=_load_in_thread, args=(deployment_id,), name=f"deploy-{deployment_id}", daemon=True
    )
    thread.start()


def _load_in_thread(deployment_id: int) -> None:
    close_old_connections()
    try:
        load_deployment(deployment_id)
    finally:
        connection.close()  # this thread's own connection


def load_deployment(deployment_id: int) -> str:
    """Load a Creating deployment's model into the pool; mark it Active, or Failed and why."""
    deployment = (
        Deployment.objects.select_related("model", "model__base")
        .filter(pk=deployment_id, status=Deployment.Status.CREATING)
        .first()
    )
    if deployment is None:
        return "gone"
    try:
        get_pool().get(deployment.model)
    except ModelLoadError as error:
        return _mark(deployment, Deployment.Status.FAILED, str(error))
    except Exception as error:  # noqa: BLE001 - any load failure must end in Failed, with a reason
        logger.exception("Loading deployment %s failed", deployment_id)
        reason = f"The model could not be loaded: {type(error).__name__}: {error}"
        return _mark(deployment, Deployment.Status.FAILED, reason)
    return _mark(deployment, Deployment.Status.ACTIVE, "")


def _mark(deployment: Deployment, status: str, reason: str) -> str:
    # Conditional: a deployment deleted while it was loading stays deleted.
    Deployment.objects.filter(pk=deployment.pk, status=Deployment.Status.CREATING).update(
        status=status, status_reason=reason
    )
    return status


def fail_stuck_loads(now: datetime | None = None) -> int:
    """Fail every deployment Creating for longer than the loading deadline; how many were."""
    deadline = settings.RFT_DEPLOYMENT_LOAD_DEADLINE
    cutoff = (now or timezone.now()) - timedelta(seconds=deadline)
    reason = (
        f"Loading did not finish in {deadline} s (the web process restarted?): deploy the model "
        "again."
    )
    return Deployment.objects.filter(
        status=Deployment.Status.CREATING, created_at__lt=cutoff
    ).update(status=Deployment.Status.FAILED, status_reason=reason)


def mark_failed(deployment: Deployment, reason: str) -> None:
    """A deployment whose model stopped loading (e.g. files removed) is Failed, not Active."""
    Deployment.objects.filter(pk=deployment.pk, status=Deployment.Status.ACTIVE).update(
        status=Deployment.Status.FAILED, status_reason=reason
    )


def delete_deployment(deployment: Deployment) -> None:
    """Stop serving it; free its memory here when no other live deployment uses the model."""
    Deployment.objects.filter(pk=deployment.pk).update(
        status=Deployment.Status.DELETED, status_reason="Deleted by its owner."
    )
    deployment.status = Deployment.Status.DELETED
    audit(deployment.owner, "deployment.delete", f"deployment {deployment.pk} {deployment.name}")
    still_used = (
        Deployment.objects.filter(model_id=deployment.model_id)
        .exclude(status=Deployment.Status.DELETED)
        .exists()
    )
    if not still_used:
        get_pool().unload(deployment.model)
