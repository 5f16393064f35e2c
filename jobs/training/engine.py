"""Run one claimed job with TRL's GRPOTrainer: the same path for Celery jobs and `manage.py train`.

Validating (tokenizer, data, weights) → step-0 validation of the base → Training (resuming from the
last checkpoint when there is one) → Evaluating → the best checkpoint becomes a tuned model.
"""

from __future__ import annotations

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
from jobs.training.evaluation import evaluate_loaded, pick_rows
from jobs.training.hyperparameters import Hyperparameters
from jobs.training.output import publish_output
from jobs.training.reconnect import reconnecting
from jobs.training.reward_bridge import RewardBridge
from jobs.training.schedule import total_steps
from jobs.training.validation_answers import save_answers
from rftconsole.paths import data_dir, safe_child

logger = logging.getLogger(__name__)


class JobFailure(RuntimeError):
    """A failure with a reason meant for the user."""


def job_dir(job: Job) -> Path:
    """Checkpoints and scratch of one job, named by its id (job.name is only a label)."""
    return safe_child(data_dir(), "jobs", str(job.pk))


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
    return GRPOConfig(
        output_dir=str(output_dir),
        num_train_epochs=hp.epoch_count,
        max_steps=hp.max_steps or -1,
        per_device_train_batch_size=hp.batch_size,
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
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        disable_tqdm=True,
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
    try:
        _run(job)
    except JobFailure as failure:
        set_status(job, Job.Status.FAILED, message=str(failure))
    except Exception as error:  # noqa: BLE001 - any crash fails the job with its reason
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
    set_status(job, Job.Status.VALIDATING, "Reading the data")
    tokenizer = load_tokenizer(job.base_model.path)
    data = prepare(job, tokenizer, hp)
    check_data(job, data, hp)
    set_status(job, Job.Status.VALIDATING, "Loading the base model")
    model = load_base(job)

    def evaluate(current: PreTrainedModel, step: int | None = None) -> dict[str, Any]:
        """Validate `current`; with a step, its answers are kept for that checkpoint's page."""
        was_training = current.training
        current.eval()
        rows = pick_rows(data.validation, hp.eval_samples or None, hp.seed)  # same rows each time

        def keep(rows: list[dict], answers: list[str], results: list) -> None:
            if step is not None:
                reconnecting(
                    lambda: save_answers(job, step, rows, answers, results),
                    f"validation answers of step {step}",
                )

        result = evaluate_loaded(
            current, tokenizer, rows, job.reward_version, sampling(hp), on_rows=keep
        )
        current.train(was_training)
        return result.summary()

    if not MetricPoint.objects.filter(job=job, kind="eval", step=0).exists():
        set_status(job, Job.Status.EVALUATING, "Validating the base model (step 0)")
        record_metric(job, "eval", 0, 0.0, evaluate(model, 0))
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
    resume_from = latest_checkpoint(job)
    set_status(
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
        set_status(
            job,
            Job.Status.VALIDATING,
            "Reading the data",
            f"{data.skipped_long} training rows are longer than maxPromptLength "
            f"({hp.max_prompt_length} tokens) and were skipped.",
        )


def finish(job: Job, trainer: GRPOTrainer, callback: JobCallback, hp: Hyperparameters) -> None:
    requested = Job.objects.filter(pk=job.pk).values_list("requested", flat=True).first()
    Job.objects.filter(pk=job.pk).update(requested="", training_seconds=callback.training_seconds())
    if requested == Job.Request.PAUSE:
        reason = callback.pause_reason or "Paused by the user. Resume continues from this step."
        set_status(job, Job.Status.PAUSED, message=reason)
        return
    step = trainer.state.global_step
    if not MetricPoint.objects.filter(job=job, kind="eval", step=step).exists():
        set_status(job, Job.Status.EVALUATING, f"Validating the final model (step {step})")
        record_metric(
            job, "eval", step, trainer.state.epoch or 0.0, callback.evaluate(trainer.model, step)
        )
    set_status(job, Job.Status.EVALUATING, "Saving the tuned model")
    output, output_step = publish_output(job, trainer, hp)
    published = {"output_model": output, "output_step": output_step}
    if requested == Job.Request.STOP:
        message = (
            f"Stopped at step {step}; {output.name} is its best checkpoint (step {output_step})."
        )
        set_status(job, Job.Status.STOPPED, message=message, **published)
    else:
        set_status(job, Job.Status.COMPLETED, **published)
