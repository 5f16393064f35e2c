"""Console jobs as OpenAI's fine-tuning objects: ids, `ft:` model names, jobs and checkpoints.

Ids carry the row's pk in one exact form (`ftjob-12`, `ftckpt-7`), so each object has one id and
a malformed id is simply unknown. A job's `fine_tuned_model` is
`ft:<base model>:<user>:<suffix>:<job pk>` and a checkpoint's adds `:ckpt-step-<step>`, as
OpenAI names them; each segment is cut to a safe alphabet, and a name resolves only when it is
exactly the one this module makes for a job of the caller.
"""

from __future__ import annotations

import re
from typing import Any

from jobs.models import Checkpoint, Job, MetricPoint
from jobs.summary import ft_model_name as model_name
from playground.v1.ft_hyperparameters import openai_hyperparameters
from rewards.models import RewardFunction
from rewards.openai_graders.storage import shown_config

JOB_ID = re.compile(r"ftjob-([1-9][0-9]{0,17})")
CHECKPOINT_ID = re.compile(r"ftckpt-([1-9][0-9]{0,17})")
FT_NAME = re.compile(r"ft:[^:]*:[^:]*:[^:]*:([1-9][0-9]{0,17})(?::ckpt-step-([1-9][0-9]{0,9}))?")

# The console's states → OpenAI's (`paused` is OpenAI's too, for reinforcement jobs).
STATUS = {
    Job.Status.QUEUED: "queued",
    Job.Status.VALIDATING: "validating_files",
    Job.Status.TRAINING: "running",
    Job.Status.EVALUATING: "running",
    Job.Status.STOPPING: "running",
    Job.Status.PAUSED: "paused",
    Job.Status.COMPLETED: "succeeded",
    Job.Status.FAILED: "failed",
    Job.Status.STOPPED: "cancelled",
}


def pk_of(pattern: re.Pattern[str], given: str) -> int | None:
    match = pattern.fullmatch(given)
    return int(match.group(1)) if match else None


def fine_tuned_model(job: Job) -> str | None:
    """The tuned model's name once the job succeeded with one, else None (as OpenAI's)."""
    if job.status == Job.Status.COMPLETED and job.output_model_id is not None:
        return model_name(job)
    return None


def _seconds(moment: Any) -> int | None:
    return int(moment.timestamp()) if moment else None


def _grader(job: Job) -> dict[str, Any]:
    """The job's grader as OpenAI shows it (keys masked); a console reward of another kind is
    named as such, since it has no OpenAI form."""
    version = job.reward_version
    if version.reward.kind == RewardFunction.Kind.OPENAI_GRADER:
        return shown_config(version.config).get("grader", {})
    return {
        "type": "console_reward",
        "name": version.reward.name,
        "version": version.number,
        "kind": version.reward.kind,
    }


def job_object(job: Job) -> dict[str, Any]:
    """OpenAI's FineTuningJob for a console job (every console job is listed, not only those
    made through this API)."""
    config = job.config
    hyperparameters = openai_hyperparameters(
        config.get("hyperparameters", {}), config.get("profile", "cpu")
    )
    validation = (config.get("validation") or {}).get("dataset")
    failed = job.status == Job.Status.FAILED
    return {
        "id": f"ftjob-{job.pk}",
        "object": "fine_tuning.job",
        "created_at": _seconds(job.created_at),
        "finished_at": _seconds(job.finished_at),
        "model": config.get("base_model", {}).get("name", job.base_model.name),
        "fine_tuned_model": fine_tuned_model(job),
        "organization_id": f"user-{job.owner.get_username()}",
        "status": STATUS.get(job.status, job.status),
        "error": (
            {"code": "job_failed", "message": job.status_reason, "param": None} if failed else None
        ),
        "training_file": f"file-{job.train_dataset_id}",
        "validation_file": f"file-{validation['id']}" if validation else None,
        "hyperparameters": {
            key: hyperparameters[key]
            for key in ("n_epochs", "batch_size", "learning_rate_multiplier")
        },
        "method": {
            "type": "reinforcement",
            "reinforcement": {"grader": _grader(job), "hyperparameters": hyperparameters},
        },
        "seed": config.get("hyperparameters", {}).get("seed", 0),
        "result_files": [],
        "trained_tokens": None,
        "integrations": [],
        "metadata": job.metadata or None,
        "user_provided_suffix": job.suffix or None,
        "estimated_finish": None,
        # The console's own view of the job, for clients that want more than OpenAI's fields.
        "console": {
            "name": job.name,
            "status": job.status,
            "sub_status": job.sub_status,
            "current_step": job.current_step,
            "total_steps": job.total_steps,
            "reward": f"{job.reward_version.reward.name} v{job.reward_version.number}",
        },
    }


def checkpoint_metrics(checkpoint: Checkpoint, train: MetricPoint | None) -> dict[str, Any]:
    """OpenAI's checkpoint metrics where an RFT run has them; reward names for the rest."""
    values = train.values if train else {}
    return {
        "step": checkpoint.step,
        "train_loss": values.get("loss"),
        "train_reward_mean": values.get("reward_mean"),
        "valid_reward_mean": checkpoint.validation_reward,
        "valid_accuracy": checkpoint.validation_accuracy,
        "full_valid_loss": None,
        "full_valid_mean_token_accuracy": None,
        "train_mean_token_accuracy": None,
        "valid_loss": None,
        "valid_mean_token_accuracy": None,
    }


def checkpoint_object(checkpoint: Checkpoint, train: MetricPoint | None) -> dict[str, Any]:
    job = checkpoint.job
    return {
        "id": f"ftckpt-{checkpoint.pk}",
        "object": "fine_tuning.job.checkpoint",
        "created_at": _seconds(checkpoint.created_at),
        "fine_tuned_model_checkpoint": model_name(job, checkpoint.step),
        "fine_tuning_job_id": f"ftjob-{job.pk}",
        "metrics": checkpoint_metrics(checkpoint, train),
        "step_number": checkpoint.step,
    }
