"""The rollouts page: how many groups a step keeps (rolloutGroups), each answer's GRPO advantage as
TRL computes it, and Metric components shown apart from reward scores."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import pytest
import torch
from django.contrib.auth.models import User
from django.test import Client

from jobs.models import Rollout
from jobs.summary import rollout_groups
from jobs.training import reward_bridge
from jobs.training.hyperparameters import Hyperparameters, resolve
from jobs.training.reward_bridge import RewardBridge
from rewards.types import RewardResult
from tests.support.job_rows import make_job


def fake_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Score answers by their text ("0.5" scores 0.5), without running a reward."""

    def score_batch(version: Any, samples: list[Any]) -> list[RewardResult]:
        return [RewardResult(s.id, float(s.output_text)) for s in samples]

    monkeypatch.setattr(reward_bridge, "score_batch", score_batch)


def call(bridge: RewardBridge, groups: int, size: int) -> None:
    prompts = [f"prompt {g}" for g in range(groups) for _ in range(size)]
    rows = [json.dumps({"reference_answer": g}) for g in range(groups) for _ in range(size)]
    completions = [str(i % 2) for i in range(groups * size)]
    bridge(prompts, completions, rows)


def test_rollout_groups_is_a_bounded_hyperparameter_added_after_final_model_with_default_2() -> (
    None
):
    values, errors = resolve({}, "cpu")
    assert values["rolloutGroups"] == 2 and not errors
    names = list(values)  # added at the end in its time: the later ones follow it
    assert names[names.index("finalModel") + 1] == "rolloutGroups"
    assert resolve({"rolloutGroups": 65}, "cpu")[1] == {"rolloutGroups": "must be between 1 and 64"}
    assert resolve({"rolloutGroups": 0}, "cpu")[1] == {"rolloutGroups": "must be between 1 and 64"}
    assert Hyperparameters.from_bedrock({"rolloutGroups": 12}).rollout_groups == 12
    # a job stored before rolloutGroups existed still resolves, with the default
    assert Hyperparameters.from_bedrock({"epochCount": 1}).rollout_groups == 2


def test_the_bridge_keeps_as_many_groups_per_step_as_rollout_groups_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_scores(monkeypatch)
    default = RewardBridge(None, samples_per_prompt=4)  # type: ignore[arg-type]
    call(default, groups=8, size=4)
    assert len(default.take_step().groups) == 2  # control: the default
    many = RewardBridge(None, samples_per_prompt=4, rollout_groups=6)  # type: ignore[arg-type]
    call(many, groups=4, size=4)  # two generation batches in one step
    call(many, groups=4, size=4)
    step = many.take_step()
    assert len(step.groups) == 6 and step.samples == 32
    assert [g["prompt"] for g in step.groups] == [f"prompt {i}" for i in (0, 1, 2, 3, 0, 1)]
    assert all(len(g["completions"]) == 4 for g in step.groups)
    assert len(many.take_step().groups) == 0  # a new step starts empty


def trl_advantages(rewards: list[float | None], scale: str = "group") -> list[float]:
    """What TRL's GRPOTrainer computes for one group (sum_then_normalize, one reward function)."""
    values = torch.tensor([math.nan if r is None else r for r in rewards], dtype=torch.float32)
    mean = torch.nanmean(values)
    present = values[~torch.isnan(values)]
    std = present.std() if present.numel() > 1 else torch.tensor(math.nan)
    advantages = values - mean
    if scale != "none":
        advantages = advantages / (std + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0).tolist()


def rollout(job: Any, rewards: list[float | None]) -> Rollout:
    completions = [
        {
            "text": f"answer {i}",
            "reward": 0.0 if r is None else r,
            "components": [
                {"name": "correct", "value": r or 0.0, "type": "Reward"},
                {"name": "answer_chars", "value": 120.0 + i, "type": "Metric"},
                {"name": "length", "value": 7.0, "type": "Metric"},
            ],
            "error": "ValueError: no answer" if r is None else None,
        }
        for i, r in enumerate(rewards)
    ]
    prompt = [{"role": "user", "content": "2+2?"}]
    return Rollout.objects.create(job=job, step=1, prompt=prompt, completions=completions)


@pytest.mark.parametrize(
    "rewards", [[1.0, 0.0, 0.0, 1.0], [1.0, 0.5, 0.25, 0.0], [1.0, None, 0.0, 0.0], [1.0, 1.0]]
)
def test_each_answers_advantage_is_what_trl_computes(alice: User, rewards: list[Any]) -> None:
    job = make_job(alice)
    [group] = rollout_groups([rollout(job, rewards)], "all")
    shown = [c["advantage"] for c in group["completions"]]
    assert shown == pytest.approx(trl_advantages(rewards), abs=1e-5)
    [unscaled] = rollout_groups([rollout(job, rewards)], "all", scale_rewards="none")
    assert [c["advantage"] for c in unscaled["completions"]] == pytest.approx(
        trl_advantages(rewards, "none"), abs=1e-5
    )


def test_advantages_control_the_population_std_would_be_wrong(alice: User) -> None:
    rewards = [1.0, 0.0, 0.0, 0.0]
    [group] = rollout_groups([rollout(make_job(alice), rewards)], "all")
    best = group["completions"][0]["advantage"]
    assert best == pytest.approx(0.75 / (statistics.stdev(rewards) + 1e-4))  # 1.5
    assert best != pytest.approx(0.75 / statistics.pstdev(rewards))  # 1.73: not what TRL uses
    # sorted by reward, each answer keeps its own advantage
    [highest] = rollout_groups([rollout(make_job(alice, "b"), rewards)], "highest")
    assert highest["completions"][0]["advantage"] == pytest.approx(best)


def test_metric_components_are_shown_apart_and_labelled_with_their_unit(
    alice: User, alice_client: Client, bob_client: Client
) -> None:
    job = make_job(alice)
    rollout(job, [1.0, 0.0])
    [group] = rollout_groups(Rollout.objects.filter(job=job), "all")
    first = group["completions"][0]
    assert [c["name"] for c in first["components"]] == ["correct"]
    assert [(m["name"], m["unit"]) for m in first["metrics"]] == [
        ("answer_chars", "characters"),
        ("length", ""),
    ]
    html = alice_client.get(f"/jobs/{job.pk}/rollouts/").content.decode()
    assert "metric answer_chars = 120 characters" in html and "metric length = 7" in html
    assert 'aria-label="Metrics (not part of the reward)"' in html
    assert "advantage 0.71" in html and "advantage -0.71" in html  # ±0.5 / sample std 0.707
    assert "mean 0.5 · std 0.707" in html  # the group's std is the one the advantages use
    assert bob_client.get(f"/jobs/{job.pk}/rollouts/").status_code == 404
