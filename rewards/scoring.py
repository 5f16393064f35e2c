"""The rewards app's single entry point: score a batch of sampled answers with a reward version.

Training, evaluation and the test bench all call `score_batch`, whatever the reward's kind.
"""

from __future__ import annotations

import math
from typing import Any

from jobs.datasets.formats import prompt_messages
from rewards.graders.registry import GRADERS, run_grader
from rewards.judge.scoring import score_with_judge
from rewards.models import RewardFunction, RewardVersion
from rewards.sandbox.runner import IsolationUnavailable, default_pool
from rewards.types import RewardConfigError, RewardResult, Sample


def score_batch(version: RewardVersion, samples: list[Sample]) -> list[RewardResult]:
    kind = version.reward.kind
    if kind == RewardFunction.Kind.BUILTIN:
        return [_grade_builtin(version, sample) for sample in samples]
    if kind == RewardFunction.Kind.CODE:
        return _run_code(version.code, samples)
    if kind == RewardFunction.Kind.JUDGE:
        return score_with_judge(version, samples)
    raise RewardConfigError(
        f"Reward kind {kind!r} cannot be scored by this version of RFT Console."
    )


def sandbox_batch(samples: list[Sample]) -> dict[str, Any]:
    """What the sandbox needs: each distinct row once, with its prompt, and the samples as
    columns (id, text, row position). A GRPO group's answers share one row object, so a batch of
    64 answers to 8 prompts sends 8 rows, not 64."""
    positions: dict[int, int] = {}
    rows: list[dict[str, Any]] = []
    row_of: list[int] = []
    for sample in samples:
        position = positions.get(id(sample.row))
        if position is None:
            position = positions[id(sample.row)] = len(rows)
            rows.append({"row": sample.row, "prompt": prompt_messages(sample.row)})
        row_of.append(position)
    ids = [sample.id for sample in samples]
    return {"rows": rows, "ids": ids, "texts": [s.output_text for s in samples], "row_of": row_of}


PARALLEL_FROM = 16  # a batch this large of a slow reward is split over the pool's workers


def _run_code(code: str, samples: list[Sample]) -> list[RewardResult]:
    """User code runs only in the sandbox; any failure becomes a per-row error, never a crash."""
    pool = default_pool()
    parallel = len(samples) >= PARALLEL_FROM and pool.worth_splitting(code)
    chunks = split_by_row(samples, pool.size) if parallel else [samples]
    try:
        replies = pool.run_batches(code, [sandbox_batch(chunk) for chunk in chunks])
    except IsolationUnavailable as error:
        raise RewardConfigError(str(error)) from None
    if len(chunks) == 1:
        return _chunk_results(samples, replies[0])
    by_id: dict[str, RewardResult] = {}
    for chunk, reply in zip(chunks, replies, strict=True):
        by_id.update((result.id, result) for result in _chunk_results(chunk, reply))
    return [by_id[sample.id] for sample in samples]


def run_code_reporting(
    code: str, samples: list[Sample]
) -> tuple[list[RewardResult], Exception | None]:
    """Score one batch in the sandbox, as score_batch does for code, and also return the
    exception when the sandbox failed rather than the code (a worker that could not start, died,
    or timed out): OpenAI's grader errors tell a runtime error from a server error."""
    try:
        reply = default_pool().run_batches(code, [sandbox_batch(samples)])[0]
    except IsolationUnavailable as error:
        return [RewardResult(s.id, 0.0, error=str(error)) for s in samples], error
    failure = reply if isinstance(reply, Exception) else None
    return _chunk_results(samples, reply), failure


def split_by_row(samples: list[Sample], parts: int) -> list[list[Sample]]:
    """Up to `parts` chunks of similar size that keep each row's answers (a group) together."""
    groups: dict[int, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(id(sample.row), []).append(sample)
    if len(groups) < parts:
        return [samples]
    chunks: list[list[Sample]] = [[] for _ in range(parts)]
    for group in groups.values():
        min(chunks, key=len).extend(group)
    return chunks


def _chunk_results(samples: list[Sample], reply: dict[str, Any] | Exception) -> list[RewardResult]:
    if isinstance(reply, Exception):  # the worker died, timed out or hit a limit
        return [RewardResult(s.id, 0.0, error=str(reply)) for s in samples]
    output = reply.get("stdout", "")
    if "error" in reply:
        return [RewardResult(s.id, 0.0, error=reply["error"], output=output) for s in samples]
    errors, components = reply["errors"], reply["components"]
    if not errors and not components:  # the common case, without a lookup per row
        pairs = zip(samples, reply["scores"], strict=True)
        return [RewardResult(sample.id, score, [], None, output) for sample, score in pairs]
    results = []
    for position, (sample, score) in enumerate(zip(samples, reply["scores"], strict=True)):
        key = str(position)  # JSON object keys are text
        if key in errors:
            results.append(RewardResult(sample.id, 0.0, error=errors[key], output=output))
        else:
            found = components.get(key, [])
            results.append(RewardResult(sample.id, score, found, output=output))
    return results


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
