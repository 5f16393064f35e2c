"""Choose invocation logs by request metadata and turn them into a dataset, like Bedrock's "use
invocation logs" data source: Equals / Not equals filters on metadata keys, joined by one AND or
one OR, then every matching request becomes a training row that goes through the usual importer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import reduce
from typing import Any, Literal

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact, IsNull

from jobs.datasets.importer import DatasetError, ImportReport, check_name, import_lines
from jobs.models import Dataset
from playground.models import InvocationLog
from rftconsole.ownership import owned

Operator = Literal["equals", "not_equals"]
Combine = Literal["and", "or"]
OPERATORS = ("equals", "not_equals")
COMBINES = ("and", "or")
MAX_FILTERS = 16  # Bedrock's andAll / orAll take at most 16 filters
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# Row fields the console writes itself; metadata keys with these names are left out of rows.
ROW_FIELDS = ("messages", "reference_answer", "feedback", "log_id", "deployment")


class LogFilterError(ValueError):
    """A filter that cannot be applied, in words a user can act on."""


@dataclass(frozen=True)
class LogFilter:
    key: str
    operator: Operator
    value: str

    def __str__(self) -> str:
        sign = "=" if self.operator == "equals" else "≠"
        return f"{self.key} {sign} {self.value!r}"


def check_key(key: Any) -> str:
    """Refuse keys that could be anything but one plain metadata key.

    Only letters, digits, `_`, `-` and `.` (at most 64): nothing that reads as a path or a lookup.
    A key of digits only is refused too: Django's JSON key paths take it for an array index.
    """
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise LogFilterError(
            f"Metadata key {key!r} is not allowed: use 1 to 64 letters, digits, '_', '-' or '.'."
        )
    if key.isdigit():
        raise LogFilterError(f"Metadata key {key!r} is not allowed: it needs a non-digit.")
    return key


def metadata_equals(key: str, value: str) -> Q:
    """Logs whose metadata has `key` set to `value` (the key is checked first)."""
    return Q(_key_equals(check_key(key), value))


def _key_equals(key: str, value: str) -> Q:
    # An explicit key transform, not `request_metadata__<key>` kwargs: a key such as "contains"
    # or "a__b" would there be read as a lookup or a nested path. Same SQL on SQLite/PostgreSQL.
    return Q(Exact(KeyTextTransform(key, "request_metadata"), value))


def _condition(number: int, given: LogFilter) -> Q:
    try:
        key = check_key(given.key)
    except LogFilterError as error:
        raise LogFilterError(f"Filter {number}: {error}") from None
    if given.operator not in OPERATORS:
        raise LogFilterError(
            f"Filter {number}: operator {given.operator!r} is unknown; use equals or not_equals."
        )
    if not isinstance(given.value, str):
        raise LogFilterError(f"Filter {number}: the value of {key!r} must be text.")
    equals = _key_equals(key, given.value)
    if given.operator == "equals":
        return equals
    # Not equals also matches logs without the key (as Bedrock's notEquals does): "not from
    # project X" should include requests that named no project at all.
    absent = Q(IsNull(KeyTextTransform(key, "request_metadata"), True))
    return absent | ~equals


def filter_logs(
    owner: AbstractBaseUser,
    filters: Iterable[LogFilter],
    combine: Combine = "and",
    deployment: str | None = None,
) -> QuerySet[InvocationLog]:
    """The owner's logs matching every filter ("and") or any filter ("or"); no filter: all."""
    filters = list(filters)
    if combine not in COMBINES:
        raise LogFilterError(f"Combine filters with 'and' or 'or', not {combine!r}.")
    if len(filters) > MAX_FILTERS:
        raise LogFilterError(f"{len(filters)} filters; at most {MAX_FILTERS} are allowed.")
    logs = owned(InvocationLog, owner)
    if deployment:
        logs = logs.filter(deployment=deployment)
    if not filters:
        return logs
    conditions = [_condition(n, f) for n, f in enumerate(filters, start=1)]
    joined = reduce(lambda a, b: (a & b) if combine == "and" else (a | b), conditions)
    return logs.filter(joined)


def prompt_messages(request: Any) -> Any:
    """What a logged request asked, as chat messages, whichever /v1 route it came to: a chat's
    `messages`; a Responses call's `instructions` (as the system message) and `input` (a string
    or message items); a legacy completion's `prompt`, one `prompt` message per prompt (token
    ids shown as JSON). Anything else (malformed, or an imported log) is `messages` unchanged."""
    if not isinstance(request, dict) or "messages" in request:
        return request.get("messages") if isinstance(request, dict) else None
    if "input" in request:
        return _responses_messages(request)
    if "prompt" in request:
        prompt = request["prompt"]
        many = isinstance(prompt, list) and all(isinstance(p, str | list) for p in prompt)
        prompts = prompt if many and prompt else [prompt]
        shown = [p if isinstance(p, str) else json.dumps(p) for p in prompts]
        return [{"role": "prompt", "content": text} for text in shown]
    return None


def _responses_messages(request: dict[str, Any]) -> list[Any]:
    given = request["input"]
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given
    messages: list[Any] = []
    if isinstance(request.get("instructions"), str) and request["instructions"]:
        messages.append({"role": "system", "content": request["instructions"]})
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            messages.append(item)
            continue
        content = item.get("content")
        if isinstance(content, list):  # input_text / output_text parts, joined as the endpoint does
            texts = [p.get("text") for p in content if isinstance(p, dict)]
            content = "".join(t for t in texts if isinstance(t, str))
        role = "system" if item.get("role") == "developer" else item.get("role")
        messages.append({"role": role, "content": content})
    return messages


def request_messages(request: Any) -> Any:
    """The request's messages (prompt_messages), ending at the last user turn when the chat ends
    with the assistant (a logged multi-turn chat): the model is trained to answer the user, not
    to continue itself.

    Anything malformed is passed on unchanged, so the importer names the problem by log (a
    legacy completion's `prompt` messages too: a raw prompt is not a conversation).
    """
    messages = prompt_messages(request)
    if not isinstance(messages, list) or not messages:
        return messages
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "assistant":
        return messages
    for index in range(len(messages) - 1, -1, -1):
        turn = messages[index]
        if isinstance(turn, dict) and turn.get("role") == "user":
            return messages[: index + 1]
    return messages


def log_row(log: InvocationLog, use_response_as_reference: bool) -> dict[str, Any]:
    """One dataset row: the prompt, optionally the response as reference, and metadata as extra
    fields for the reward (metadata never replaces the fields the console writes)."""
    row: dict[str, Any] = {"messages": request_messages(log.request)}
    if use_response_as_reference:
        row["reference_answer"] = log.response_text
    if log.feedback:
        row["feedback"] = log.feedback
    row["log_id"] = log.pk
    row["deployment"] = log.deployment
    if log.source == InvocationLog.Source.BEDROCK:  # the fields a direct import of it would have
        row.update(_bedrock_fields(log))
    metadata = log.request_metadata if isinstance(log.request_metadata, dict) else {}
    row.update({k: v for k, v in metadata.items() if k not in ROW_FIELDS and k not in row})
    return row


def _bedrock_fields(log: InvocationLog) -> dict[str, str]:
    timestamp = log.logged_at.isoformat().replace("+00:00", "Z") if log.logged_at else ""
    return {
        "modelId": log.model_id,
        "operation": log.operation,
        "timestamp": timestamp,
        "requestId": log.request_id,
    }


def _lines(
    logs: QuerySet[InvocationLog], use_response_as_reference: bool
) -> Iterator[tuple[int, bytes]]:
    for log in logs.iterator(chunk_size=500):
        row = log_row(log, use_response_as_reference)
        yield log.pk, json.dumps(row, ensure_ascii=False).encode("utf-8")


def log_rows(logs: QuerySet[InvocationLog], use_response_as_reference: bool) -> Iterator[bytes]:
    """One JSONL line per log, streamed from the database (never all logs in memory)."""
    for _, line in _lines(logs, use_response_as_reference):
        yield line


def dataset_from_logs(
    owner: AbstractBaseUser,
    name: str,
    filters: Iterable[LogFilter],
    combine: Combine = "and",
    use_response_as_reference: bool = False,
    deployment: str | None = None,
    description: str = "",
) -> tuple[Dataset, ImportReport]:
    """Store the matching logs (oldest first) as a dataset; raises DatasetError on any problem,
    with the report's problems naming the log each comes from."""
    name = check_name(owner, name)
    filters = list(filters)
    try:
        logs = filter_logs(owner, filters, combine, deployment)
    except LogFilterError as error:
        raise DatasetError(str(error)) from None
    logs = logs.order_by("created_at", "pk")
    if not logs.exists():
        raise DatasetError("No invocation logs match these filters.")
    log_ids: list[int] = []  # by line, to name the log behind each problem

    def lines() -> Iterator[bytes]:
        for log_id, line in _lines(logs, use_response_as_reference):
            log_ids.append(log_id)
            yield line

    try:
        dataset, report = import_lines(
            owner,
            name,
            lines(),
            description=description or describe_filters(filters, combine, deployment),
            source=Dataset.Source.LOGS,
        )
    except DatasetError as error:
        if error.report is not None:
            _name_logs(error.report, log_ids)
        raise
    assert dataset is not None
    return dataset, report


def describe_filters(filters: list[LogFilter], combine: Combine, deployment: str | None) -> str:
    """Where the rows came from, as the dataset's default description."""
    parts = [f"deployment {deployment!r}"] if deployment else []
    if filters:
        parts.append(f" {combine.upper()} ".join(str(f) for f in filters))
    return "From invocation logs" + (": " + "; ".join(parts) if parts else " (all).")


def _name_logs(report: ImportReport, log_ids: list[int]) -> None:
    report.problems = [
        (line, f"log {log_ids[line - 1]}: {text}" if 0 < line <= len(log_ids) else text)
        for line, text in report.problems
    ]
