"""Run one claimed job with TRL's GRPOTrainer: the same path for Celery jobs and `manage.py train`.

Validating (tokenizer, data, weights) → step-0 validation of the base → Training (resuming from the
last checkpoint when there is one) → Evaluating → the best checkpoint becomes a tuned model.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from jobs.actions import set_status
from jobs.models import Checkpoint, Job, MetricPoint
from jobs.registry.loading import SamplingSettings, load_for_inference, load_tokenizer
from jobs.training.callback import JobCallback, record_metric
from jobs.training.data import JobData, prepare, to_hf_dataset
from jobs.training.distributed import (
    installed_names,
    trainer_settings,
    unsupported,
    vllm_available,
)
from jobs.training.facts import WorkerFacts, job_dir, record_launch
from jobs.training.group import broadcast, is_main, world_size
from jobs.training.hyperparameters import Hyperparameters
from jobs.training.launch import run_group
from jobs.training.output import publish_output
from jobs.training.reconnect import reconnecting
from jobs.training.reward_bridge import RewardBridge
from jobs.training.schedule import total_steps
from jobs.training.validation import Validator

logger = logging.getLogger(__name__)


class JobFailure(RuntimeError):
    """A failure with a reason meant for the user."""


def sampling(hp: Hyperparameters) -> SamplingSettings:
    return SamplingSettings(
        temperature=hp.temperature, max_new_tokens=hp.inference_max_tokens, seed=hp.seed
    )


def load_base(job: Job) -> PreTrainedModel:
    base = job.base_model
    if base.is_adapter:  # iterative RFT: train on top of the merged tuned model
        model, _ = load_for_inference(base)
        return model.merge_and_unload()
    return AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)


def grpo_config(hp: Hyperparameters, output_dir: Path) -> GRPOConfig:
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    choices = trainer_settings(hp, cuda, bf16, vllm_available())
    known = {field.name for field in dataclasses.fields(GRPOConfig)}
    return GRPOConfig(
        output_dir=str(output_dir),
        num_train_epochs=hp.epoch_count,
        max_steps=hp.max_steps or -1,
        # Each of the job's processes takes its share of a step's completions (whole groups:
        # hyperparameters checks batchSize % (numProcesses × samples)); one step is the same
        # batch whatever the process count, so curves and step counts compare.
        per_device_train_batch_size=hp.batch_size // world_size(),
        num_generations=hp.training_sample_per_prompt,
        max_completion_length=hp.inference_max_tokens,
        learning_rate=hp.learning_rate,
        lr_scheduler_type="constant",
        temperature=hp.temperature,
        beta=hp.beta,
        loss_type=hp.loss_type,
        seed=hp.seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=hp.eval_interval,
        report_to=[],
        disable_tqdm=True,
        # the device, precision, checkpointing, sharding and vLLM choices (distributed.py)
        **installed_names(choices, known),
    )


def peft_config(hp: Hyperparameters) -> Any:
    if hp.lora_rank == 0:
        return None  # full fine-tuning
    from peft import LoraConfig

    targets = hp.lora_targets
    return LoraConfig(
        r=hp.lora_rank,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules=targets
        if targets == "all-linear"
        else [t.strip() for t in targets.split(",")],
        task_type="CAUSAL_LM",
    )


def latest_checkpoint(job: Job) -> str | None:
    checkpoint = Checkpoint.objects.filter(job=job).order_by("-step").first()
    return checkpoint.path if checkpoint and Path(checkpoint.path).is_dir() else None


def run_job(job: Job) -> None:
    """Run a claimed job: in this process, or as a group of processes (numProcesses > 1)."""
    hp = Hyperparameters.of_snapshot(job.config)
    worker = WorkerFacts.here()
    reason = unsupported(hp, worker.cuda, worker.devices, worker.deepspeed)
    if reason:
        set_status(job, Job.Status.FAILED, message=f"This worker cannot run the job: {reason}.")
        return
    if hp.num_processes > 1:
        run_group(job, hp, worker)
        return
    record_launch(job, hp, worker, None)
    try:
        _run(job)
    except Exception as error:  # noqa: BLE001 - any crash fails the job with its reason
        fail(job, error)


def run_rank(job: Job) -> None:
    """One rank of a group (jobs/training/rank.py). A failure is not recorded here: the rank
    reports it and exits non-zero, torchrun ends the group, and the launcher settles the job (a
    rank whose peer was killed fails too, and must not fail the job: it resumes)."""
    _run(job)


def fail(job: Job, error: Exception) -> None:
    if isinstance(error, JobFailure):
        set_status(job, Job.Status.FAILED, message=str(error))
        return
    logger.exception("job %s crashed", job.pk)
    set_status(job, Job.Status.FAILED, message=failure_reason(error))


def failure_reason(error: Exception) -> str:
    # A full disk surfaces as OSError from torch.save, or as a library's own error (safetensors
    # wraps it) that only says "No space left on device" in its text.
    text = f"{type(error).__name__}: {error}"
    if getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in text:
        return (
            f"The disk is full ({text}). Free space under the data directory and start the job "
            "again; the checkpoints saved before are intact."
        )
    return text


def _run(job: Job) -> None:
    hp = Hyperparameters.of_snapshot(job.config)  # resolved once; everything below reads it
    announce(job, Job.Status.VALIDATING, "Reading the data")
    tokenizer = load_tokenizer(job.base_model.path)
    data = prepare(job, tokenizer, hp)
    check_data(job, data, hp)
    announce(job, Job.Status.VALIDATING, "Loading the base model")
    model = load_base(job)

    evaluate = Validator(job, tokenizer, data.validation, hp.eval_samples or None, sampling(hp))
    # every rank validates its share; rank 0, which alone can read and write, decides whether
    if broadcast(
        is_main() and not MetricPoint.objects.filter(job=job, kind="eval", step=0).exists()
    ):
        announce(job, Job.Status.EVALUATING, "Validating the base model (step 0)")
        values = evaluate(model, 0)
        if is_main():
            record_metric(job, "eval", 0, 0.0, values)
    bridge = RewardBridge(job.reward_version, hp.training_sample_per_prompt, hp.rollout_groups)
    config = grpo_config(hp, job_dir(job) / "checkpoints")
    callback = JobCallback(job, bridge, evaluate, job.training_seconds, hp=hp)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=bridge,
        args=config,
        train_dataset=to_hf_dataset(data.train),
        processing_class=tokenizer,
        peft_config=peft_config(hp),
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # metrics go to the database, not to stdout
    resume_from = broadcast(latest_checkpoint(job) if is_main() else None)  # one path for all
    announce(
        job,
        Job.Status.TRAINING,
        f"Resuming from step {resume_from.rsplit('-', 1)[-1]}" if resume_from else "Training",
        total_steps=total_steps(len(data.train), hp),  # the wizard's estimate, same function
    )
    trainer.train(resume_from_checkpoint=resume_from)
    finish(job, trainer, callback, hp)


def check_data(job: Job, data: JobData, hp: Hyperparameters) -> None:
    prompts_per_step = hp.batch_size // hp.training_sample_per_prompt
    if len(data.train) < prompts_per_step:
        raise JobFailure(
            f"Only {len(data.train)} training rows fit maxPromptLength ({hp.max_prompt_length} "
            f"tokens; {data.skipped_long} were longer): fewer than one batch of {prompts_per_step}."
        )
    if not data.validation:
        raise JobFailure("The validation set is empty: choose a validation dataset or a split.")
    if data.skipped_long:
        announce(
            job,
            Job.Status.VALIDATING,
            "Reading the data",
            f"{data.skipped_long} training rows are longer than maxPromptLength "
            f"({hp.max_prompt_length} tokens) and were skipped.",
        )


def needs_validation(job: Job, step: int) -> bool:
    """Whether `step` has no validation yet (a resumed job may have it): rank 0 reads, all know."""
    missing = is_main() and not MetricPoint.objects.filter(job=job, kind="eval", step=step).exists()
    return broadcast(missing)


def announce(job: Job, status: str, sub_status: str = "", message: str = "", **fields: Any) -> None:
    """set_status on rank 0 (or the only process); the other ranks of a group stay silent."""
    if is_main():
        set_status(job, status, sub_status, message, **fields)


def finish(job: Job, trainer: GRPOTrainer, callback: JobCallback, hp: Hyperparameters) -> None:
    """After the training loop, on every rank of a group (validating and saving a sharded model
    need them all); rank 0 reads the job's request and alone writes."""
    requested = broadcast(
        reconnecting(callback.requested, "the job's requests") if is_main() else None
    )
    if is_main():
        Job.objects.filter(pk=job.pk).update(
            requested="", training_seconds=callback.training_seconds()
        )
    if requested == Job.Request.PAUSE:
        reason = callback.pause_reason or "Paused by the user. Resume continues from this step."
        announce(job, Job.Status.PAUSED, message=reason)
        return
    step = trainer.state.global_step
    if broadcast(
        is_main() and not MetricPoint.objects.filter(job=job, kind="eval", step=step).exists()
    ):
        announce(job, Job.Status.EVALUATING, f"Validating the final model (step {step})")
        values = callback.evaluate(trainer.model, step)
        if is_main():
            record_metric(job, "eval", step, trainer.state.epoch or 0.0, values)
    announce(job, Job.Status.EVALUATING, "Saving the tuned model")
    output, output_step = publish_output(job, trainer, hp)
    if output is None:
        return  # a rank other than 0: its part of the save is done
    published = {"output_model": output, "output_step": output_step}
    if requested == Job.Request.STOP:
        message = (
            f"Stopped at step {step}; {output.name} is its best checkpoint (step {output_step})."
        )
        set_status(job, Job.Status.STOPPED, message=message, **published)
    else:
        set_status(job, Job.Status.COMPLETED, **published)
