"""The rewards app's single entry point: score a batch of sampled answers with a reward version.

Training, evaluation and the test bench all call `score_batch`, whatever the reward's kind.
"""

from __future__ import annotations

import math

from rewards.code_batches import (  # noqa: F401 - also imported from here by tests and benches
    PARALLEL_FROM,
    _chunk_results,
    run_code,
    run_code_reporting,
    sandbox_batch,
    split_by_row,
)
from rewards.code_batches import run_code as _run_code  # noqa: F401 - its name in older callers
from rewards.graders.registry import GRADERS, run_grader
from rewards.judge.scoring import score_with_judge
from rewards.models import RewardFunction, RewardVersion
from rewards.openai_graders.batch import score_with_grader
from rewards.types import RewardConfigError, RewardResult, Sample


def score_batch(version: RewardVersion, samples: list[Sample]) -> list[RewardResult]:
    kind = version.reward.kind
    if kind == RewardFunction.Kind.BUILTIN:
        return [_grade_builtin(version, sample) for sample in samples]
    if kind == RewardFunction.Kind.CODE:
        return run_code(version.code, samples)
    if kind == RewardFunction.Kind.JUDGE:
        return score_with_judge(version, samples)
    if kind == RewardFunction.Kind.OPENAI_GRADER:
        return score_with_grader(version, samples)
    raise RewardConfigError(
        f"Reward kind {kind!r} cannot be scored by this version of RFT Console."
    )


def _grade_builtin(version: RewardVersion, sample: Sample) -> RewardResult:
    grader_name = version.config.get("grader", "")
    grader = GRADERS.get(grader_name)
    if grader is None:
        known = ", ".join(sorted(GRADERS))
        raise RewardConfigError(f"Unknown built-in grader {grader_name!r} (known: {known}).")
    try:
        grade = run_grader(version.config, sample.output_text, sample.row)
    except (ValueError, TypeError, KeyError) as error:  # a misconfigured option, for this row
        return RewardResult(sample.id, 0.0, error=f"{type(error).__name__}: {error}")
    if not math.isfinite(grade.score):
        return RewardResult(sample.id, 0.0, grade.components, f"score {grade.score} is not finite")
    return RewardResult(sample.id, float(grade.score), grade.components)
