"""`ft:` model names at `/v1/chat/completions` and `/v1/models`, with no deploy click.

A succeeded job's `fine_tuned_model` (and each of its checkpoints' names) is served as soon as
the job has it: the name resolves to the job's tuned model (or the checkpoint's files), and the
inference pool loads it on first use, as it loads a deployment's model after a restart. It is
served through an unsaved Deployment carrying the name, so logging and responses work unchanged.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser

from jobs.models import Checkpoint, Job, ModelEntry
from playground.models import Deployment
from playground.v1.ft_objects import FT_NAME, fine_tuned_model, model_name
from playground.v1.params import ApiError
from rftconsole.ownership import owned


def _not_found(name: str, why: str = "does not exist or you do not have access to it") -> ApiError:
    return ApiError(404, f"The model `{name[:200]}` {why}.", param="model", code="model_not_found")


def _checkpoint_entry(job: Job, step: int, name: str) -> tuple[ModelEntry, datetime]:
    checkpoint = Checkpoint.objects.filter(job=job, step=step).first()
    if checkpoint is None or not Path(checkpoint.path).is_dir():
        raise _not_found(name, "is not a kept checkpoint (the best 3 and the last are kept)")
    base = job.base_model
    adapter = (Path(checkpoint.path) / "adapter_config.json").is_file()
    if adapter and base.is_adapter:
        raise _not_found(
            name, "is a checkpoint of a job on an adapter model: use its fine_tuned_model"
        )
    entry = ModelEntry(
        owner=job.owner,
        name=name,
        kind=ModelEntry.Kind.TUNED,
        status=ModelEntry.Status.READY,
        path=checkpoint.path,
        is_adapter=adapter,
        base=base if adapter else None,
        context_length=base.context_length,
        has_chat_template=base.has_chat_template,
    )
    return entry, checkpoint.created_at


def ft_deployment(owner: AbstractBaseUser, name: str) -> Deployment:
    """The `ft:` name served as a deployment (never saved), or OpenAI's 404 saying why not."""
    match = FT_NAME.fullmatch(name)
    jobs = owned(Job, owner).select_related("owner", "output_model__base", "base_model")
    job = jobs.filter(pk=int(match.group(1))).first() if match else None
    if job is None or model_name(job) != name.rsplit(":ckpt-step-", 1)[0]:
        raise _not_found(name)
    if match.group(2):
        entry, created = _checkpoint_entry(job, int(match.group(2)), name)
    elif fine_tuned_model(job) is not None and job.output_model is not None:
        entry, created = job.output_model, job.finished_at or job.created_at
    else:
        status = job.get_status_display().lower()
        raise _not_found(name, f"is not ready: its job ftjob-{job.pk} is {status}")
    deployment = Deployment(owner=owner, name=name, model=entry, status=Deployment.Status.ACTIVE)
    deployment.created_at = created  # what /v1/models shows as `created`
    return deployment


def ft_models(owner: AbstractBaseUser) -> list[tuple[str, int]]:
    """Every succeeded job's `fine_tuned_model` of the owner, with its finish time."""
    jobs = owned(Job, owner).filter(status=Job.Status.COMPLETED, output_model__isnull=False)
    return [
        (model_name(job), int((job.finished_at or job.created_at).timestamp()))
        for job in jobs.select_related("owner").order_by("pk")
    ]
