"""Any checkpoint of a job, not only the published one: its validation answers, and "Use as
model", which copies its weights into the registry as a tuned model that can be deployed,
compared in the playground or evaluated like any other.

Service (`checkpoint_as_model`) and the two views; routes in jobs/urls.py. Every lookup goes
through the signed-in user's job, so another user's checkpoint or answers answer 404.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from jobs.models import Checkpoint, Job, ModelEntry, ValidationAnswers
from jobs.registry.inspection import RegistryError
from jobs.registry.services import free_model_name, register_produced
from rftconsole.ownership import get_owned_or_404, owned
from rftconsole.parsers import parse_int
from rftconsole.paths import models_dir, safe_child

# What the Trainer saves beside the weights to resume training; a model does not need it.
TRAINING_STATE = ("optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin")


def checkpoint_source(checkpoint: Checkpoint) -> str:
    """The registry `source` of a checkpoint's model: how "Use as model" finds it again."""
    return f"job:{checkpoint.job_id}:step:{checkpoint.step}"


def checkpoint_model(owner: AbstractBaseUser, checkpoint: Checkpoint) -> ModelEntry | None:
    """The model this checkpoint already is: the job's published output, or an earlier use."""
    job = checkpoint.job
    if job.output_model_id and job.output_step == checkpoint.step:
        return owned(ModelEntry, owner).filter(pk=job.output_model_id).first()
    return owned(ModelEntry, owner).filter(source=checkpoint_source(checkpoint)).first()


def checkpoint_as_model(owner: AbstractBaseUser, checkpoint: Checkpoint) -> ModelEntry:
    """Register the checkpoint's weights as a tuned model of `owner` (once: a second call returns
    the same model). RegistryError, in words, when its files are gone or cannot be used."""
    existing = checkpoint_model(owner, checkpoint)
    if existing is not None:
        return existing
    job = checkpoint.job
    source = Path(checkpoint.path)
    if not source.is_dir():
        raise RegistryError(
            f"The files of the step {checkpoint.step} checkpoint are gone (pruned to save disk, "
            "or removed): it cannot become a model. Use a checkpoint whose files are kept."
        )
    if not ((source / "adapter_config.json").exists() or (source / "config.json").exists()):
        raise RegistryError(
            f"The step {checkpoint.step} checkpoint has no model weights (no adapter_config.json "
            "or config.json): it cannot become a model."
        )
    if job.base_model.is_adapter and (source / "adapter_config.json").exists():
        raise RegistryError(
            "This job trained on top of a tuned model: its checkpoints are adapters of merged "
            "weights that are not kept. Use the job's published model."
        )
    target = safe_child(models_dir(), f"job-{job.pk}-step-{checkpoint.step}")
    shutil.rmtree(target, ignore_errors=True)
    try:
        shutil.copytree(
            source, target, ignore=shutil.ignore_patterns(*TRAINING_STATE, "rng_state*.pth")
        )
    except (OSError, shutil.Error) as error:  # pruned mid-copy by a running job, or a full disk
        shutil.rmtree(target, ignore_errors=True)
        raise RegistryError(
            f"The step {checkpoint.step} checkpoint could not be copied "
            f"({type(error).__name__}): its files changed or the disk is full. Try again."
        ) from error
    reward = checkpoint.validation_reward
    description = f"Checkpoint of job “{job.name}” (step {checkpoint.step}" + (
        f", validation reward {reward:.3f})" if reward is not None else ")"
    )
    name = free_model_name(owner, f"{job.name}-step-{checkpoint.step}")
    return register_produced(
        owner, name, target, job.base_model, checkpoint_source(checkpoint), description
    )


def answered_steps(job: Job) -> set[int]:
    """The steps whose validation answers are kept (0: the base model's)."""
    return set(ValidationAnswers.objects.filter(job=job).values_list("step", flat=True))


def checkpoint_rows(job: Job, answered: set[int] | None = None) -> list[dict[str, Any]]:
    """The job page's checkpoints card: each checkpoint with its validation, whether it is the
    published one, whether its files are kept, its model if it is one, and its answers."""
    answered = answered_steps(job) if answered is None else answered
    checkpoints = list(Checkpoint.objects.filter(job=job).order_by("step"))
    models = _checkpoint_models(job, checkpoints)
    rows = []
    for checkpoint in checkpoints:
        rows.append(
            {
                "checkpoint": checkpoint,
                "published": bool(job.output_model_id) and job.output_step == checkpoint.step,
                "files": Path(checkpoint.path).is_dir(),
                "model": models.get(checkpoint.step),
                "answers": checkpoint.step in answered,
            }
        )
    return rows


def _checkpoint_models(job: Job, checkpoints: list[Checkpoint]) -> dict[int, ModelEntry]:
    """checkpoint_model for every checkpoint of `job` in one query (not one per checkpoint), by
    step: the published output for the output step, else the newest model made from it."""
    if not checkpoints:
        return {}
    step_of = {checkpoint_source(checkpoint): checkpoint.step for checkpoint in checkpoints}
    published = job.output_step if job.output_model_id else None
    entries = ModelEntry.objects.filter(owner_id=job.owner_id).filter(
        Q(source__in=step_of) | Q(pk=job.output_model_id or 0)
    )
    found: dict[int, ModelEntry] = {}
    for entry in entries.order_by("-created_at", "-pk"):  # newest first, as .first() picks
        if entry.pk == job.output_model_id and published is not None:
            found[published] = entry
        step = step_of.get(entry.source)
        if step is not None and step != published:
            found.setdefault(step, entry)
    return found


@require_POST
def use_checkpoint(request: HttpRequest, job_id: int, checkpoint_id: int) -> HttpResponse:
    """ "Use as model": register the checkpoint and open its model page (deploy, evaluate)."""
    job = get_owned_or_404(Job, request.user, pk=job_id)
    checkpoint = Checkpoint.objects.filter(job=job, pk=checkpoint_id).select_related("job").first()
    if checkpoint is None:
        raise Http404("No checkpoint matches the given query.")
    try:
        entry = checkpoint_as_model(request.user, checkpoint)
    except RegistryError as error:
        messages.error(request, str(error))
        return redirect("jobs:detail", job_id=job.pk)
    messages.success(request, f"Step {checkpoint.step} is the model “{entry.name}”.")
    return redirect("models:detail", model_id=entry.pk)


@require_GET
def validation_answers(request: HttpRequest, job_id: int) -> HttpResponse:
    """What the validation at `?step=` answered, row by row (the latest when no step is given)."""
    job = get_owned_or_404(Job, request.user, pk=job_id)
    saved = list(ValidationAnswers.objects.filter(job=job).order_by("step"))
    steps = [s.step for s in saved]
    step = parse_int(request.GET.get("step"))
    if request.GET.get("step") and step not in steps:
        raise Http404("No validation answers at that step.")
    current = next((s for s in saved if s.step == step), saved[-1] if saved else None)
    checkpoint = Checkpoint.objects.filter(job=job, step=current.step).first() if current else None
    context = {
        "job": job,
        "steps": steps,
        "current": current,
        "checkpoint": checkpoint,
        "published": current is not None and job.output_step == current.step,
    }
    return render(request, "jobs/validation_answers.html", context)
