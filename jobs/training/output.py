"""Publish a job's result: the best checkpoint becomes a registered tuned model."""

from __future__ import annotations

import shutil
from pathlib import Path

from trl import GRPOTrainer

from jobs.models import Checkpoint, Job, ModelEntry
from jobs.registry.services import free_model_name, register_produced
from jobs.training.hyperparameters import Hyperparameters
from rftconsole.paths import models_dir, safe_child


def best_checkpoint(job: Job) -> Checkpoint | None:
    """Highest validation reward; the later step wins a tie."""
    candidates = [
        c
        for c in Checkpoint.objects.filter(job=job)
        if c.validation_reward is not None and Path(c.path).is_dir()
    ]
    return max(candidates, key=lambda c: (c.validation_reward, c.step), default=None)


def publish_output(
    job: Job, trainer: GRPOTrainer, hp: Hyperparameters | None = None
) -> tuple[ModelEntry, int]:
    """Register the best checkpoint (validation reward) as a tuned model; return it and its step.

    `hp` defaults to the job's snapshot, for callers that publish without running the engine.
    """
    last_wanted = (hp or Hyperparameters.of_snapshot(job.config)).final_model == "last"
    best = None if last_wanted else best_checkpoint(job)
    if best is not None and best.step != trainer.state.global_step:
        trainer._load_from_checkpoint(
            best.path
        )  # the Trainer's own loader: adapters or full weights
    target = safe_child(models_dir(), f"job-{job.pk}")  # the id names it; job.name never does
    shutil.rmtree(target, ignore_errors=True)
    model = trainer.model
    if job.base_model.is_adapter and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()  # an adapter of a merged tuned model: ship full weights
    model.save_pretrained(target)
    trainer.processing_class.save_pretrained(target)
    step = best.step if best else trainer.state.global_step
    accuracy = best.validation_accuracy if best else None
    description = f"Tuned by job “{job.name}” (step {step}" + (
        f", validation accuracy {accuracy:.0%})" if accuracy is not None else ")"
    )
    name = free_model_name(job.owner, f"{job.name}-tuned")
    entry = register_produced(job.owner, name, target, job.base_model, f"job:{job.pk}", description)
    return entry, step
