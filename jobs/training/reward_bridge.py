"""The bridge between TRL's reward-function call and the rewards app's `score_batch`.

TRL calls it once per generation batch. It scores through the single rewards entry point, returns
None for samples whose reward failed (TRL then ignores them), and keeps per-step statistics and a
bounded sample of groups that the job callback persists with the step's metrics.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

from rewards.models import RewardVersion
from rewards.scoring import score_batch
from rewards.types import RewardResult, Sample

DEFAULT_ROLLOUT_GROUPS = 2  # the job's `rolloutGroups` hyperparameter sets it (1 to 64)


@dataclass
class StepRewards:
    scores: list[float] = field(default_factory=list)
    errors: int = 0
    samples: int = 0
    components: dict[str, list[float]] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""  # what the reward code printed (first batch of the step)

    def summary(self) -> dict[str, float]:
        """Errors and samples, the distribution of the scores (min, p10, p25, median, p75, p90,
        max: the chart draws them as bands), then each component's mean."""
        values: dict[str, float] = {
            "reward_errors": float(self.errors),
            "reward_samples": float(self.samples),
        }
        if self.scores:
            ordered = sorted(self.scores)
            values["reward_min"], values["reward_max"] = ordered[0], ordered[-1]
            for name, fraction in (
                ("p10", 0.1),
                ("p25", 0.25),
                ("median", 0.5),
                ("p75", 0.75),
                ("p90", 0.9),
            ):
                # linear between the closest ranks (numpy's default)
                position = fraction * (len(ordered) - 1)
                low = int(position)
                high = min(low + 1, len(ordered) - 1)
                values[f"reward_{name}"] = ordered[low] + (ordered[high] - ordered[low]) * (
                    position - low
                )
        for name, numbers in self.components.items():
            values[f"component/{name}"] = statistics.fmean(numbers)
        return values


def merge_steps(parts: list[StepRewards], rollout_groups: int) -> StepRewards:
    """One step's rewards from every rank (rank order); a single part is returned as is."""
    if len(parts) == 1:
        return parts[0]
    merged = StepRewards()
    for part in parts:
        merged.scores += part.scores
        merged.errors += part.errors
        merged.samples += part.samples
        for name, numbers in part.components.items():
            merged.components.setdefault(name, []).extend(numbers)
        merged.groups += part.groups[: rollout_groups - len(merged.groups)]
        merged.output = merged.output or part.output
    return merged


class RewardBridge:
    __name__ = "reward"  # TRL names the logged series after the function

    def __init__(
        self,
        version: RewardVersion,
        samples_per_prompt: int,
        rollout_groups: int = DEFAULT_ROLLOUT_GROUPS,
    ) -> None:
        self.version = version
        self.samples_per_prompt = samples_per_prompt
        self.rollout_groups = rollout_groups  # groups kept per step for the rollouts page
        self.current = StepRewards()

    def take_step(self) -> StepRewards:
        finished, self.current = self.current, StepRewards()
        return finished

    def __call__(
        self, prompts: list[Any], completions: list[Any], row: list[str], **_: Any
    ) -> list[float | None]:
        texts = [_completion_text(c) for c in completions]
        parsed = {text: json.loads(text) for text in set(row)}  # a group's answers share one row
        rows = [parsed[text] for text in row]
        samples = [
            Sample(str(i), text, r) for i, (text, r) in enumerate(zip(texts, rows, strict=True))
        ]
        results = score_batch(self.version, samples)
        self._record(prompts, texts, rows, results)
        return [None if result.error else result.score for result in results]

    def _record(
        self,
        prompts: list[Any],
        texts: list[str],
        rows: list[dict[str, Any]],
        results: list[RewardResult],
    ) -> None:
        step = self.current
        step.samples += len(results)
        for result in results:
            if result.error:
                step.errors += 1
                continue
            step.scores.append(result.score)
            for component in result.components:
                if component.get("type", "Reward") == "Reward":
                    step.components.setdefault(component["name"], []).append(
                        float(component["value"])
                    )
        if results and results[0].output and not step.output:
            step.output = results[0].output[:8000]
        size = self.samples_per_prompt
        for start in range(0, len(results), size):
            if len(step.groups) >= self.rollout_groups:
                break
            step.groups.append(
                {
                    "prompt": prompts[start],
                    "reference_answer": rows[start].get("reference_answer"),
                    "completions": [
                        {
                            "text": texts[i],
                            "reward": results[i].score,
                            "components": results[i].components,
                            "error": results[i].error,
                        }
                        for i in range(start, min(start + size, len(results)))
                    ],
                }
            )


def _completion_text(completion: Any) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return str(completion[-1].get("content", "")) if completion else ""
    return str(completion)
