"""The TrainerCallback that connects a TRL run to the console.

Every logged step is persisted first (the DB is the source of truth), then announced. Validation
runs every `evalInterval` steps; each checkpoint is recorded with its validation reward and only
the best 3 plus the last are kept. Pause, stop and the wall-clock budget act at step boundaries.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from jobs.events import metric_event, send_job_event
from jobs.models import Checkpoint, Job, MetricPoint, Rollout
from jobs.training.group import barrier, broadcast, gather, is_main
from jobs.training.hyperparameters import Hyperparameters
from jobs.training.reconnect import reconnecting
from jobs.training.reward_bridge import RewardBridge, StepRewards, merge_steps

KEEP_BEST_CHECKPOINTS = 3
MAX_REWARD_ERROR_RATE = 0.5

# TRL's log keys → the console's metric names.
LOG_KEYS = {
    "reward": "reward_mean",
    "reward_std": "reward_std",
    "frac_reward_zero_std": "frac_reward_zero_std",
    "loss": "loss",
    "kl": "kl",
    "entropy": "entropy",
    "grad_norm": "grad_norm",
    "learning_rate": "learning_rate",
    "completions/mean_length": "completion_length_mean",
    "completions/max_length": "completion_length_max",
    "completions/clipped_ratio": "clipped_ratio",
    "num_tokens": "num_tokens",
}


class RewardErrorsExceeded(RuntimeError):
    pass


def record_metric(job: Job, kind: str, step: int, epoch: float, values: dict[str, Any]) -> None:
    """Upsert by (job, kind, step): a step replayed after a resume replaces, never duplicates.

    A non-finite number (a diverged loss) is stored as null: JSON columns refuse NaN.
    """
    values = {k: None if _not_finite(v) else v for k, v in values.items()}
    reconnecting(
        lambda: MetricPoint.objects.update_or_create(
            job=job, kind=kind, step=step, defaults={"epoch": epoch, "values": values}
        ),
        f"{kind} step {step}",
    )
    send_job_event(job.pk, metric_event(kind, step, epoch, values))


def log_number(value: Any) -> float | None:
    """A value TRL logged, as a float; None (missing) when it is None, NaN or not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def reward_failure(errors: int, samples: int, step: int) -> RewardErrorsExceeded | None:
    """The documented failure when more than MAX_REWARD_ERROR_RATE of a step's rewards failed."""
    if not samples or errors / samples <= MAX_REWARD_ERROR_RATE:
        return None
    return RewardErrorsExceeded(
        f"{errors} of {samples} rewards failed at step {step}: more than half the rewards "
        f"failed (the limit is {MAX_REWARD_ERROR_RATE:.0%}). The rollout inspector shows the "
        "errors."
    )


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


class JobCallback(TrainerCallback):
    def __init__(
        self,
        job: Job,
        bridge: RewardBridge,
        # (model, step) -> eval metric values; in a group every rank calls it (validation.py)
        evaluate: Callable[[Any, int], dict[str, Any]],
        previous_seconds: float,
        hp: Hyperparameters | None = None,
    ) -> None:
        self.job = job
        self.bridge = bridge
        self.evaluate = evaluate
        # The engine passes the ones it resolved; benches and tests build a callback from a job.
        self.hp = hp or Hyperparameters.of_snapshot(job.config)
        self.previous_seconds = previous_seconds
        self.started = time.monotonic()
        self.step_started = time.monotonic()
        self.last_tokens = 0.0
        self.last_eval: dict[str, Any] | None = None
        self.pause_reason = ""

    def training_seconds(self) -> float:
        return self.previous_seconds + time.monotonic() - self.started

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        step = state.global_step
        if step % self.hp.eval_interval == 0 or step == state.max_steps:
            values = self.evaluate(kwargs["model"], step)  # every rank its share of the rows
            if is_main():
                self.last_eval = values
                record_metric(self.job, "eval", step, state.epoch or 0.0, values)
            control.should_save = True
        requested = broadcast(self.decide(step) if is_main() else None)  # one decision for all
        if requested:
            control.should_save = True
            control.should_training_stop = True
        return control

    def decide(self, step: int) -> str | None:
        """Rank 0's look at the user's requests and the wall-clock budget after `step`."""
        requested = reconnecting(self.requested, "the job's requests")
        budget = self.hp.max_wall_clock_minutes * 60
        if not requested and budget and self.training_seconds() >= budget:
            requested = Job.Request.PAUSE
            self.pause_reason = (
                f"Paused: reached maxWallClockMinutes ({self.hp.max_wall_clock_minutes} min) "
                f"at step {step}. Resume to continue, or raise the budget in a clone."
            )
            Job.objects.filter(pk=self.job.pk).update(requested=requested)
        return requested

    def requested(self) -> str | None:
        return Job.objects.filter(pk=self.job.pk).values_list("requested", flat=True).first()

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs or "reward" not in logs:
            return  # the end-of-training summary, not a step
        step, rewards = state.global_step, self.step_rewards()
        # Checked before anything reads TRL's numbers: when every reward failed TRL logs the mean
        # as None (or NaN), and the reason to show is the reward's, not a conversion error.
        failure = reward_failure(rewards.errors, rewards.samples, step)
        if not is_main():  # every rank raises the same failure; rank 0 alone records the step
            if failure:
                raise failure
            return
        values = {
            ours: log_number(logs[theirs]) for theirs, ours in LOG_KEYS.items() if theirs in logs
        }
        values.update(rewards.summary())
        seconds = time.monotonic() - self.step_started
        tokens = values.get("num_tokens", self.last_tokens)
        values["step_seconds"] = round(seconds, 3)
        values["tokens_per_second"] = (
            round((tokens - self.last_tokens) / seconds, 1) if seconds else 0.0
        )
        self.step_started, self.last_tokens = time.monotonic(), tokens
        # Peak GPU memory so far (torch's allocator, rank 0's device), for bench/gpu_check.sh.
        if torch.cuda.is_available():
            values["gpu_memory_peak_gib"] = round(torch.cuda.max_memory_allocated() / 1024**3, 3)
        rollouts = [
            Rollout(job=self.job, step=step, reward_output=rewards.output, **group)
            for group in rewards.groups
        ]
        reconnecting(lambda: self.replace_rollouts(step, rollouts), f"rollouts of step {step}")
        record_metric(self.job, "train", step, state.epoch or 0.0, values)
        reconnecting(
            lambda: Job.objects.filter(pk=self.job.pk).update(
                current_step=step, training_seconds=self.training_seconds()
            ),
            f"the job's step {step}",
        )
        if failure:
            raise failure

    def step_rewards(self) -> StepRewards:
        """This step's rewards: with several ranks, every rank's scored completions together."""
        return merge_steps(gather(self.bridge.take_step()), self.bridge.rollout_groups)

    def replace_rollouts(self, step: int, rollouts: list[Rollout]) -> None:
        Rollout.objects.filter(job=self.job, step=step).delete()  # a replayed step replaces its own
        Rollout.objects.bulk_create(rollouts)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        barrier()  # every rank has written its part (its RNG state) before the row says "saved"
        if not is_main():
            return
        step = state.global_step
        path = Path(args.output_dir) / f"checkpoint-{step}"
        evaluation = self.last_eval or {}
        defaults = {
            "path": str(path),
            "validation_reward": evaluation.get("mean_reward"),
            "validation_accuracy": evaluation.get("accuracy"),
        }
        reconnecting(
            lambda: Checkpoint.objects.update_or_create(job=self.job, step=step, defaults=defaults),
            f"checkpoint {step}",
        )
        reconnecting(lambda: prune_checkpoints(self.job), "the checkpoints kept")


def prune_checkpoints(job: Job) -> None:
    """Keep the best KEEP_BEST_CHECKPOINTS by validation reward, plus the most recent."""
    checkpoints = list(Checkpoint.objects.filter(job=job).order_by("step"))
    if not checkpoints:
        return
    ranked = sorted(
        checkpoints,
        key=lambda c: (c.validation_reward is not None, c.validation_reward or 0, c.step),
    )
    keep = {c.pk for c in ranked[-KEEP_BEST_CHECKPOINTS:]} | {checkpoints[-1].pk}
    for checkpoint in checkpoints:
        if checkpoint.pk not in keep:
            shutil.rmtree(checkpoint.path, ignore_errors=True)
            checkpoint.delete()
