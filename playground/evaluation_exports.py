"""An evaluation's rows as CSV (one line per row, a column group per model) or JSONL (one
object per row, the prompt as chat messages), streamed so a large run never sits in memory."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from jobs.datasets.formats import prompt_messages
from playground.models import Evaluation, EvaluationRow

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # spreadsheets run cells that start so


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content", "")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ gets a quote mark first."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
    if text.startswith(FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def row_object(evaluation: Evaluation, row: EvaluationRow) -> dict[str, Any]:
    return {
        "index": row.index,
        "messages": prompt_messages(row.row),
        "reference_answer": row.row.get("reference_answer"),
        "skipped": row.skipped or None,
        "answers": [
            {"model": c["ref"], "label": c["label"], **answer}
            for c, answer in zip(evaluation.candidates, row.answers, strict=True)
        ],
    }


def csv_lines(evaluation: Evaluation) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: list[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(v) for v in values])
        return buffer.getvalue()

    header: list[Any] = ["row", "prompt", "reference_answer", "skipped"]
    for candidate in evaluation.candidates:
        label = candidate["label"]
        header += [f"{label} answer", f"{label} score", f"{label} passed", f"{label} error"]
    yield line(header)
    for row in evaluation.rows.iterator(chunk_size=200):
        values: list[Any] = [
            row.index + 1,
            last_user_text(prompt_messages(row.row)),
            row.row.get("reference_answer"),
            row.skipped,
        ]
        for answer in row.answers:
            values += [answer["text"], answer["score"], answer["passed"], answer["error"]]
        yield line(values)


def jsonl_lines(evaluation: Evaluation) -> Iterator[str]:
    for row in evaluation.rows.iterator(chunk_size=200):
        yield json.dumps(row_object(evaluation, row), ensure_ascii=False) + "\n"


def export_lines(evaluation: Evaluation, fmt: str) -> Iterator[str]:
    """Lines of `fmt` ("csv" or "jsonl"); callers check the format against FORMATS first."""
    return csv_lines(evaluation) if fmt == "csv" else jsonl_lines(evaluation)


def filename(evaluation: Evaluation, fmt: str) -> str:
    return f"evaluation-{evaluation.pk}.{fmt}"  # the id names it; the name is user text
