"""State changes of jobs: small functions, each persisting first and then announcing."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs.live import send_job_event
from jobs.models import Job, JobEvent
from rftconsole.audit import audit


class JobActionError(ValueError):
    """The action does not apply to the job in its current state; the message says why."""


def set_status(
    job: Job, status: str, sub_status: str = "", message: str = "", **fields: Any
) -> None:
    """Move a job to `status`, record the change on its timeline and announce it."""
    job.status, job.sub_status = status, sub_status
    if status in (Job.Status.FAILED, Job.Status.PAUSED, Job.Status.STOPPED) or message:
        job.status_reason = message
    if status in Job.FINISHED:
        job.finished_at = timezone.now()
    for name, value in fields.items():
        setattr(job, name, value)
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(
            status=status,
            sub_status=sub_status,
            status_reason=job.status_reason,
            finished_at=job.finished_at,
            **fields,
        )
        JobEvent.objects.create(job=job, status=status, sub_status=sub_status, message=message)
    send_job_event(
        job.pk, {"type": "status", "status": status, "sub_status": sub_status, "message": message}
    )


def claim(job_id: int, worker: str) -> Job | None:
    """Atomically take a queued job; a second delivery of the same job gets None."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.VALIDATING,
        worker=worker,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        started_at=now,
    )
    if not claimed:
        return None
    job = Job.objects.get(pk=job_id)
    JobEvent.objects.create(job=job, status=job.status, message=f"Claimed by worker {worker}.")
    send_job_event(
        job.pk, {"type": "status", "status": job.status, "sub_status": "", "message": ""}
    )
    return job


def enqueue(job: Job) -> None:
    from jobs.tasks import train_job

    transaction.on_commit(lambda: train_job.apply_async(args=[job.pk], queue="gpu"))


def request_pause(job: Job) -> None:
    if job.status not in (Job.Status.QUEUED, *Job.ACTIVE) or job.status == Job.Status.STOPPING:
        raise JobActionError(f"A {job.get_status_display().lower()} job cannot be paused.")
    if job.status == Job.Status.QUEUED:
        set_status(job, Job.Status.PAUSED, message="Paused before it started.")
        return
    Job.objects.filter(pk=job.pk).update(requested=Job.Request.PAUSE)
    message = "Pause requested: at the next step."
    JobEvent.objects.create(job=job, status=job.status, message=message)
    send_job_event(
        job.pk, {"type": "status", "status": job.status, "sub_status": "", "message": message}
    )


def request_stop(job: Job) -> None:
    if job.status in Job.FINISHED:
        raise JobActionError(f"The job is already {job.get_status_display().lower()}.")
    audit(job.owner, "job.stop", f"job {job.pk} {job.name}")
    if job.status in (Job.Status.QUEUED, Job.Status.PAUSED):
        set_status(job, Job.Status.STOPPED, message="Stopped by the user before training resumed.")
        return
    Job.objects.filter(pk=job.pk).update(requested=Job.Request.STOP)
    set_status(job, Job.Status.STOPPING, message="Stop requested: finishing the current step.")


def resume(job: Job) -> None:
    if job.status != Job.Status.PAUSED:
        raise JobActionError("Only a paused job can be resumed.")
    set_status(
        job, Job.Status.QUEUED, message="Resumed: continues from its last checkpoint.", requested=""
    )
    enqueue(job)
