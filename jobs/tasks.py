"""Celery tasks of the jobs app. Tasks take ids and exit quietly when the row is gone."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from jobs.actions import claim, refuse_beyond_capacity, requeue_or_fail
from jobs.datasets.importer import sweep_incoming
from jobs.models import Job, ModelEntry
from jobs.registry.export import export_merged
from jobs.registry.inspection import RegistryError, inspect_model_dir, resolve_hub_id
from jobs.registry.services import apply_facts
from jobs.training.reconnect import drop_connection
from rftconsole.capacity import worker_capacity


@shared_task(name="jobs.fetch_model")
def fetch_model(entry_id: int) -> str:
    """Download (or find in the local cache) a hub model, then inspect and mark it ready."""
    entry = ModelEntry.objects.filter(pk=entry_id, status=ModelEntry.Status.REGISTERING).first()
    if entry is None:
        return "gone"
    try:
        path = resolve_hub_id(entry.source)  # never a local directory: see start_registration
        apply_facts(entry, path, inspect_model_dir(path))
    except RegistryError as error:
        entry.status, entry.status_reason = ModelEntry.Status.FAILED, str(error)
    entry.save()
    return entry.status


@shared_task(name="jobs.train_job", acks_late=True, reject_on_worker_lost=True)
def train_job(job_id: int) -> str:
    """Claim the job (a second delivery does nothing) and run it, beating a heartbeat meanwhile."""
    from jobs.training.engine import run_job  # imports torch: not in the default-queue worker

    job = claim(job_id, train_job.request.hostname or socket.gethostname())
    if job is None:
        return "not claimed"
    if refuse_beyond_capacity(job, worker_capacity()):
        return Job.Status.FAILED
    with heartbeat(job_id):
        run_job(job)
    return Job.objects.filter(pk=job_id).values_list("status", flat=True).first() or "gone"


@contextmanager
def heartbeat(job_id: int, every: float = 5.0) -> Iterator[None]:
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every):
                try:
                    Job.objects.filter(pk=job_id).update(heartbeat_at=timezone.now())
                except DatabaseError:  # the database restarted: beat again on a new connection
                    drop_connection()
        finally:
            connection.close()  # this thread's own DB connection

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@shared_task(name="jobs.reap_stale_jobs")
def reap_stale_jobs() -> list[int]:
    """Re-queue jobs whose worker stopped beating (resume from checkpoint), or fail them."""
    cutoff = timezone.now() - timedelta(seconds=settings.RFT_HEARTBEAT_TIMEOUT)
    requeued = []
    for job in Job.objects.filter(status__in=Job.ACTIVE, heartbeat_at__lt=cutoff):
        lost = f"Worker {job.worker} stopped responding at step {job.current_step}"
        if requeue_or_fail(job, lost):
            requeued.append(job.pk)
    return requeued


@shared_task(name="jobs.sweep_incoming_uploads")
def sweep_incoming_uploads() -> int:
    """Periodic (beat): remove dataset uploads a killed web process left half-written."""
    return len(sweep_incoming())


@shared_task(name="jobs.merge_model")
def merge_model(entry_id: int) -> str:
    entry = ModelEntry.objects.filter(pk=entry_id).first()
    return export_merged(entry).name if entry else "gone"
