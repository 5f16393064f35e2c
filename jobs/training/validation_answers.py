"""Keep what each validation answered, row by row, so the job page can show a checkpoint's
answers (as OpenAI shows per checkpoint). Called from the engine's evaluate closure through the
`on_rows` hook of jobs/training/evaluation.py; at most ValidationAnswers.MAX_ROWS rows per eval.
"""

from __future__ import annotations

from typing import Any

from jobs.datasets.formats import prompt_messages
from jobs.models import Job, ValidationAnswers
from rewards.types import RewardResult

MAX_TEXT = 4000  # characters kept of each prompt turn and answer: a page, not an archive


def _cut(text: Any) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " […]"


def answer_rows(
    rows: list[dict[str, Any]], answers: list[str], results: list[RewardResult]
) -> list[dict[str, Any]]:
    """One entry per row (at most MAX_ROWS): the prompt as sent, the answer, reward and error."""
    kept = []
    for row, answer, result in list(zip(rows, answers, results, strict=True))[
        : ValidationAnswers.MAX_ROWS
    ]:
        prompt = [
            {"role": str(m.get("role", "")), "content": _cut(m.get("content"))}
            for m in prompt_messages(row)
            if isinstance(m, dict)
        ]
        kept.append(
            {
                "prompt": prompt,
                "answer": _cut(answer),
                "reward": None if result.error else result.score,
                "error": result.error,
                "reference_answer": row.get("reference_answer"),
            }
        )
    return kept


def save_answers(
    job: Job,
    step: int,
    rows: list[dict[str, Any]],
    answers: list[str],
    results: list[RewardResult],
) -> ValidationAnswers:
    """Store (or replace, for a replayed step) the answers of the validation at `step`."""
    saved, _ = ValidationAnswers.objects.update_or_create(
        job=job,
        step=step,
        defaults={"answers": answer_rows(rows, answers, results), "rows": len(rows)},
    )
    return saved
