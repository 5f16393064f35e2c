"""Publish a job's result: the best checkpoint becomes a registered tuned model."""

from __future__ import annotations

import shutil
from pathlib import Path

from trl import GRPOTrainer

from jobs.models import Checkpoint, Job, ModelEntry
from jobs.registry.services import free_model_name, register_produced
from jobs.training.group import barrier, broadcast, is_main
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
) -> tuple[ModelEntry | None, int]:
    """Register the best checkpoint (validation reward) as a tuned model; return it and its step.

    In a group every rank takes part (a sharded model is gathered from all of them); rank 0 alone
    writes and registers, the others get (None, step). `hp` defaults to the job's snapshot, for
    callers that publish without running the engine.
    """
    hp = hp or Hyperparameters.of_snapshot(job.config)
    best = broadcast(chosen_checkpoint(job, hp) if is_main() else None)
    if best is not None and best[0] != trainer.state.global_step:
        trainer._load_from_checkpoint(best[1])  # the Trainer's own loader: adapters or full weights
    target = safe_child(models_dir(), f"job-{job.pk}")  # the id names it; job.name never does
    step = best[0] if best else trainer.state.global_step
    if is_main():
        shutil.rmtree(target, ignore_errors=True)
    if hp.distributed != "ddp":
        barrier()  # the old files are gone before anyone writes
        trainer.save_model(str(target))  # gathers the shards; rank 0 writes
    elif is_main():
        model = trainer.model
        if job.base_model.is_adapter and hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()  # an adapter of a merged tuned model: full weights
        model.save_pretrained(target)
    if not is_main():
        return None, step
    trainer.processing_class.save_pretrained(target)
    accuracy = best[2] if best else None
    description = f"Tuned by job “{job.name}” (step {step}" + (
        f", validation accuracy {accuracy:.0%})" if accuracy is not None else ")"
    )
    name = free_model_name(job.owner, f"{job.name}-tuned")
    entry = register_produced(job.owner, name, target, job.base_model, f"job:{job.pk}", description)
    return entry, step


def chosen_checkpoint(job: Job, hp: Hyperparameters) -> tuple[int, str, float | None] | None:
    """(step, path, validation accuracy) of the checkpoint to publish; None: the last weights."""
    best = None if hp.final_model == "last" else best_checkpoint(job)
    return (best.step, best.path, best.validation_accuracy) if best else None
