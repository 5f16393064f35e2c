"""State changes of jobs: create one (checked, frozen, queued), claim, pause, stop, resume, set a
status. Small functions, each persisting first and then announcing."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from jobs.events import send_job_event, status_event
from jobs.models import Dataset, Job, JobEvent, ModelEntry
from jobs.training import hyperparameters
from jobs.training.preflight import JobConfigError, default_profile, long_prompts, preflight
from rewards.models import RewardVersion
from rftconsole.celery import GPU_QUEUE, gpu_queue_for
from rftconsole.models import WorkerReport
from rftconsole.queue import queue_on_commit
from rftconsole.security.audit import audit


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
    send_job_event(job.pk, status_event(status, sub_status, message))


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
    send_job_event(job.pk, status_event(job.status))
    return job


def processes_of(job: Job) -> int:
    return hyperparameters.Hyperparameters.of_snapshot(job.config).num_processes


def queue_of(job: Job) -> str:
    """The queue its message goes to: `gpu`, or `gpu.N` for a job of N processes."""
    return gpu_queue_for(processes_of(job))


def enqueue(job: Job) -> None:
    """Send the job to `gpu` (one process) or `gpu.N` (N processes), which only gpu workers that
    can host N processes consume; first say so on the job when none has reported that many."""
    reason = waiting_reason(processes_of(job))
    if reason:  # before it is sent: once sent, a worker may claim it at any moment
        set_status(job, Job.Status.QUEUED, message=reason)
    queue_on_commit("jobs.train_job", job.pk, queue=queue_of(job))


def waiting_reason(processes: int) -> str:
    """Why a job of `processes` processes would wait: no gpu worker has reported that many. Empty
    when one has, and for one process (any gpu worker runs it). Every report counts, however old,
    as for the profile: a worker reports when it starts, and a long-running one must still count."""
    if processes <= 1:
        return ""
    reports = WorkerReport.objects.filter(queue=GPU_QUEUE)
    largest = reports.aggregate(largest=Max("processes"))["largest"]
    if largest is not None and largest >= processes:
        return ""
    waiting = f"Waiting for a gpu worker that can run {processes} processes"
    if largest is None:
        return f"{waiting} (no gpu worker has reported yet)."
    return f"{waiting} (the largest reports {largest})."


def refuse_beyond_capacity(job: Job, capacity: int) -> bool:
    """Fail a claimed job that needs more processes than this worker can host (its queue said it
    could: its devices changed since it started, or the task was sent by hand)."""
    processes = hyperparameters.Hyperparameters.of_snapshot(job.config).num_processes
    if processes <= capacity:
        return False
    message = (
        f"numProcesses is {processes} but worker {job.worker} can host only {capacity} "
        "training processes (its CUDA devices, or CPU cores without CUDA)."
    )
    set_status(job, Job.Status.FAILED, message=message)
    return True


def requeue_or_fail(job: Job, lost: str) -> bool:
    """After its worker or one of its processes died: queue the job again (it resumes from its
    last checkpoint), or fail it once it has used its attempts. True when re-queued."""
    if job.attempts >= settings.RFT_MAX_ATTEMPTS:
        set_status(
            job, Job.Status.FAILED, message=f"{lost}; gave up after {job.attempts} attempts."
        )
        return False
    set_status(job, Job.Status.QUEUED, message=f"{lost}; resuming from the last checkpoint.")
    enqueue(job)
    return True


def request_pause(job: Job) -> None:
    if job.status not in (Job.Status.QUEUED, *Job.ACTIVE) or job.status == Job.Status.STOPPING:
        raise JobActionError(f"A {job.get_status_display().lower()} job cannot be paused.")
    if job.status == Job.Status.QUEUED:
        set_status(job, Job.Status.PAUSED, message="Paused before it started.")
        return
    Job.objects.filter(pk=job.pk).update(requested=Job.Request.PAUSE)
    message = "Pause requested: at the next step."
    JobEvent.objects.create(job=job, status=job.status, message=message)
    send_job_event(job.pk, status_event(job.status, message=message))


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


def snapshot(job: Job, hp: hyperparameters.Hyperparameters, profile: str) -> dict[str, Any]:
    base, data, reward = job.base_model, job.train_dataset, job.reward_version
    validation = job.validation_dataset
    return {
        "launched_at": timezone.now().isoformat(),
        "profile": profile,
        "base_model": {"id": base.pk, "name": base.name, "path": base.path, "kind": base.kind},
        "train_dataset": {"id": data.pk, "name": data.name, "rows": data.row_count},
        "validation": (
            {
                "dataset": {
                    "id": validation.pk,
                    "name": validation.name,
                    "rows": validation.row_count,
                }
            }
            if validation
            else {"split": job.validation_split}
        ),
        "reward": {
            "name": reward.reward.name,
            "version": reward.number,
            "kind": reward.reward.kind,
            "pass_threshold": reward.pass_threshold,
        },
        "hyperparameters": hp.to_bedrock(),  # stored with Bedrock's names, as users gave them
    }


def create_job(
    owner: AbstractBaseUser,
    name: str,
    base_model: ModelEntry,
    train_dataset: Dataset,
    reward_version: RewardVersion,
    validation_dataset: Dataset | None = None,
    validation_split: float = 0.1,
    given: dict[str, Any] | None = None,
    profile: str | None = None,
    launch: bool = True,
) -> Job:
    """Check everything, freeze the config and queue the job on the `gpu` queue."""
    profile = profile or default_profile()
    values, errors = hyperparameters.resolve(given or {}, profile)
    hp = hyperparameters.Hyperparameters.from_bedrock(values)
    if not errors:
        errors = preflight(
            base_model, train_dataset, validation_dataset, validation_split, reward_version, hp
        )
    if errors:
        raise JobConfigError(errors)
    job = Job(
        owner=owner,
        name=name,
        base_model=base_model,
        train_dataset=train_dataset,
        validation_dataset=validation_dataset,
        validation_split=0.0 if validation_dataset else validation_split,
        reward_version=reward_version,
        hyperparameters=given or {},
    )
    too_long = long_prompts(base_model, train_dataset, hp.max_prompt_length)
    job.config = snapshot(job, hp, profile)
    with transaction.atomic():
        job.save()
        if too_long:
            JobEvent.objects.create(
                job=job,
                status=job.status,
                message=f"{too_long} training rows are longer than maxPromptLength "
                f"({hp.max_prompt_length} tokens) and will be skipped.",
            )
        JobEvent.objects.create(job=job, status=job.status, message="Queued for a gpu worker.")
        audit(owner, "job.create", f"job {job.pk} {job.name}", base_model=base_model.name)
        if launch:
            enqueue(job)
    return job
