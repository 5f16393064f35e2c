"""Jobs as rows, without training: a job with its config snapshot, metric points and rollouts."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from jobs.models import Dataset, Job, JobEvent, MetricPoint, ModelEntry, Rollout
from rewards.models import RewardFunction, RewardVersion

HYPERPARAMETERS = {"batchSize": 32, "learningRate": 0.001, "trainingSamplePerPrompt": 8}


def make_job(owner: User, name: str = "arith", **fields: Any) -> Job:
    hp = {**HYPERPARAMETERS, **fields.pop("hp", {})}
    base, _ = ModelEntry.objects.get_or_create(
        owner=owner, name="starter", defaults={"source": "/m", "path": "/m", "status": "ready"}
    )
    data, _ = Dataset.objects.get_or_create(
        owner=owner,
        name="arithmetic-train",
        defaults={"path": "/d", "row_count": 200, "size_bytes": 1},
    )
    reward, _ = RewardFunction.objects.get_or_create(
        owner=owner, name=fields.pop("reward", "arithmetic"), defaults={"kind": "builtin"}
    )
    version = reward.versions.first() or RewardVersion.objects.create(reward=reward, number=1)
    config = {
        "profile": "cpu",
        "base_model": {"id": base.pk, "name": base.name, "path": "/m", "kind": "base"},
        "train_dataset": {"id": data.pk, "name": data.name, "rows": 200},
        "validation": {"split": 0.1},
        "reward": {"name": reward.name, "version": 1, "kind": "builtin", "pass_threshold": 1.0},
        "hyperparameters": hp,
    }
    job = Job.objects.create(
        owner=owner,
        name=name,
        base_model=base,
        train_dataset=data,
        reward_version=version,
        hyperparameters={"learningRate": hp["learningRate"]},
        config=config,
        **fields,
    )
    JobEvent.objects.create(job=job, status=Job.Status.QUEUED, message="Queued for a gpu worker.")
    return job


def add_points(job: Job, steps: range, evals: dict[int, float] | None = None) -> None:
    """Train points at `steps` and eval points {step: accuracy}."""
    for step in steps:
        MetricPoint.objects.create(
            job=job, kind="train", step=step, epoch=step / 10, values=train_values(step)
        )
    for step, accuracy in (evals or {}).items():
        MetricPoint.objects.create(
            job=job,
            kind="eval",
            step=step,
            epoch=step / 10,
            values={"accuracy": accuracy, "mean_reward": accuracy, "rows": 20},
        )


def train_values(step: int) -> dict[str, float]:
    return {
        "reward_mean": 0.2 + step / 100,
        "reward_std": 0.3,
        "component/format": 0.5,
        "loss": 0.01,
        "entropy": 1.2,
        "completion_length_mean": 30.0,
        "frac_reward_zero_std": 0.25,
        "tokens_per_second": 800.0,
        "step_seconds": 2.0,
    }


def add_rollout(job: Job, step: int, rewards: list[float | None], errors: int = 0) -> Rollout:
    completions = [
        {
            "text": f"answer {i} #### {i}",
            "reward": reward,
            "components": [{"name": "format", "value": reward or 0.0, "type": "Reward"}],
            "error": "ZeroDivisionError: division by zero" if i < errors else None,
        }
        for i, reward in enumerate(rewards)
    ]
    return Rollout.objects.create(
        job=job,
        step=step,
        prompt=[
            {"role": "system", "content": "Answer after ####."},
            {"role": "user", "content": f"What is {step} + 1?"},
        ],
        reference_answer={"final_answer": str(step + 1)},
        completions=completions,
        reward_output=f"graded step {step}",
    )
