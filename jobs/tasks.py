"""Celery tasks of the jobs app. Tasks take ids and exit quietly when the row is gone."""

from __future__ import annotations

from celery import shared_task

from jobs.models import ModelEntry
from jobs.registry import RegistryError, apply_facts, inspect_model_dir, resolve_source


@shared_task(name="jobs.fetch_model")
def fetch_model(entry_id: int) -> str:
    """Download (or find in the local cache) a hub model, then inspect and mark it ready."""
    entry = ModelEntry.objects.filter(pk=entry_id, status=ModelEntry.Status.REGISTERING).first()
    if entry is None:
        return "gone"
    try:
        path = resolve_source(entry.source)
        apply_facts(entry, path, inspect_model_dir(path))
    except RegistryError as error:
        entry.status, entry.status_reason = ModelEntry.Status.FAILED, str(error)
    entry.save()
    return entry.status
