"""Celery tasks of the jobs app. Tasks take ids and exit quietly when the row is gone."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from jobs.actions import claim, enqueue, queue_of, refuse_beyond_capacity, requeue_or_fail
from jobs.datasets.importer import sweep_incoming
from jobs.models import Job, JobEvent, ModelEntry
from jobs.registry.export import export_merged
from jobs.registry.inspection import RegistryError, inspect_model_dir, resolve_hub_id
from jobs.registry.services import apply_facts
from jobs.training.reconnect import drop_connection
from rftconsole.capacity import worker_capacity
from rftconsole.system import work_in_hand


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
    """Re-queue jobs whose worker stopped beating (resume from checkpoint), or fail them; send
    again the message of a queued job that an idle worker should have taken long ago."""
    cutoff = timezone.now() - timedelta(seconds=settings.RFT_HEARTBEAT_TIMEOUT)
    requeued = []
    for job in Job.objects.filter(status__in=Job.ACTIVE, heartbeat_at__lt=cutoff):
        lost = f"Worker {job.worker} stopped responding at step {job.current_step}"
        if requeue_or_fail(job, lost):
            requeued.append(job.pk)
    return requeued + resend_lost_messages(cutoff)


def resend_lost_messages(queued_before: datetime) -> list[int]:
    """A job's message can be lost on its way to a worker (one killed while it waited for work
    can take the next message with it). A job queued since before `queued_before` while a worker
    of its queue sits idle has no message left: send it again. A second message is harmless (only
    the first claim takes the job), so a wrong guess costs one no-op delivery."""
    waiting = list(Job.objects.filter(status=Job.Status.QUEUED))
    stale = [job for job in waiting if queued_since(job) < queued_before]
    if not stale:
        return []  # the common case asks the workers nothing
    workers = work_in_hand()
    resent = []
    for job in stale:
        try:
            queue = queue_of(job)
        except (KeyError, TypeError, ValueError):  # no launch snapshot: nothing a worker can run
            continue
        if queue in workers.idle_queues and not workers.holds("jobs.train_job", job.pk):
            JobEvent.objects.create(
                job=job, status=job.status, message="Its queue message was lost: sent again."
            )
            enqueue(job)
            resent.append(job.pk)
    return resent


def queued_since(job: Job) -> datetime:
    """When the job last entered the queue (its timeline's latest `queued` entry)."""
    event = job.events.filter(status=Job.Status.QUEUED).order_by("-created_at", "-pk").first()
    return event.created_at if event else job.created_at


@shared_task(name="jobs.sweep_incoming_uploads")
def sweep_incoming_uploads() -> int:
    """Periodic (beat): remove dataset uploads a killed web process left half-written."""
    return len(sweep_incoming())


@shared_task(name="jobs.merge_model")
def merge_model(entry_id: int) -> str:
    entry = ModelEntry.objects.filter(pk=entry_id).first()
    return export_merged(entry).name if entry else "gone"
