"""Custom code scored in the sandbox, a batch at a time: the batch a worker receives (each
distinct row once), its split over workers when the code is slow, and per-row results from the
reply. Used by `rewards.scoring` (code rewards) and `rewards.openai_graders` (python graders);
separate so that both can import it without importing each other.
"""

from __future__ import annotations

from typing import Any

from jobs.datasets.formats import prompt_messages
from rewards.sandbox.runner import IsolationUnavailable, default_pool
from rewards.types import RewardConfigError, RewardResult, Sample


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


def run_code(code: str, samples: list[Sample]) -> list[RewardResult]:
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
