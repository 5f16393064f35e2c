"""An OpenAI grader as a reward: score a batch of samples with a version's stored grader, as
training, evaluation and the test bench do through `rewards.scoring.score_batch`.

Each part runs once for the whole batch (running.grade_all): built-in parts in-process, a python
part in one sandbox call, a model part through one judge with its concurrency. A row whose grading
raised any of OpenAI's error flags gets that as its error; a multi grader's parts are the row's
components, by their names, so the live charts show each part.
"""

from __future__ import annotations

from typing import Any

from rewards.models import RewardVersion
from rewards.openai_graders.outcome import Outcome
from rewards.openai_graders.running import grade_all
from rewards.openai_graders.templates import Context
from rewards.types import RewardConfigError, RewardResult, Sample

MAX_ERROR = 2000


def score_with_grader(version: RewardVersion, samples: list[Sample]) -> list[RewardResult]:
    grader = version.config.get("grader")
    if not isinstance(grader, dict) or "type" not in grader:
        raise RewardConfigError(f"{version} has no OpenAI grader in its config.")
    contexts = [Context(sample.output_text, sample.row) for sample in samples]
    outcomes = grade_all(grader, contexts, version.reward.owner)
    return [_result(s, o) for s, o in zip(samples, outcomes, strict=True)]


def _result(sample: Sample, outcome: Outcome) -> RewardResult:
    components: list[dict[str, Any]] = [
        {"name": name, "value": value, "type": "Reward"}
        for name, value in outcome.sub_rewards.items()
    ]
    components += [  # a Metric is logged, not charted as a reward
        {"name": f"{model} tokens", "value": counts["total_tokens"], "type": "Metric"}
        for model, counts in outcome.usage.items()
    ]
    if outcome.problems:
        error = "; ".join(outcome.problems)[:MAX_ERROR]
        return RewardResult(sample.id, 0.0, components, error=error)
    return RewardResult(sample.id, float(outcome.reward), components)
