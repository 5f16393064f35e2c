"""Bedrock model invocation log records (`"schemaType": "ModelInvocationLog"`), the JSON lines
Bedrock writes to S3 and CloudWatch Logs, read into a prompt, a response and their metadata.

The input body goes through the same converters as a dataset row (Converse, Anthropic Messages,
Nova messages-v1, OpenAI-style chat); only its conversation is kept, since inference settings say
nothing about the task. Llama and Mistral InvokeModel bodies (a raw `prompt` in the model's chat
markers) are read by bedrock_bodies. The output body gives the response text: Converse and Nova
(`output.message.content[].text`), Anthropic (`content[].text`), OpenAI (`choices[0].message.
content`), Llama (`generation`) and Mistral (`outputs[0].text`), and for the streaming operations
the same shapes or a list of streamed chunks.

A line may also be a CloudWatch Logs envelope (a subscription/Firehose `DATA_MESSAGE`, or `aws
logs get-log-events` / `filter-log-events` output): `line_rows` gives one row per log event.

What cannot become a prompt and a response is refused with the reason: a failed call
(`errorCode`), a body Bedrock stored in S3 instead of the record (`inputBodyS3Path`), an image or
document block, a tool call or result in the prompt, a raw prompt without chat markers, an output
without text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jobs.datasets.bedrock_bodies import completion_text, prompt_messages
from jobs.datasets.formats import RowError, to_chat
from rftconsole.parsers import JSONInputError, strict_loads

SCHEMA_TYPE = "ModelInvocationLog"
OPERATIONS = ("Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream")
# Fields a dataset row gets from the record; request metadata never replaces them.
# Anthropic's streamed event types: message_start, content_block_delta, message_stop, …
ANTHROPIC_EVENTS = ("message_", "content_block_")
# Tool blocks in a prompt: Converse/Nova (keys) and Anthropic (`type`).
TOOL_BLOCKS = ("toolUse", "toolResult", "tool_use", "tool_result")
RECORD_FIELDS = ("messages", "reference_answer", "modelId", "operation", "timestamp", "requestId")


@dataclass
class LogRecord:
    """One invocation, as the console keeps it."""

    messages: list[dict[str, str]]
    response_text: str
    model_id: str
    operation: str
    timestamp: str
    request_id: str
    metadata: dict[str, str] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0

    def as_row(self) -> dict[str, Any]:
        """A dataset row: the prompt, the response as reference, and the rest for the reward."""
        row: dict[str, Any] = {
            "messages": self.messages,
            "reference_answer": self.response_text,
            "modelId": self.model_id,
            "operation": self.operation,
            "timestamp": self.timestamp,
            "requestId": self.request_id,
        }
        row.update({k: v for k, v in self.metadata.items() if k not in RECORD_FIELDS})
        return row


def is_log_record(row: Any) -> bool:
    return isinstance(row, dict) and row.get("schemaType") == SCHEMA_TYPE


def read_record(record: dict[str, Any]) -> LogRecord:
    """The record's prompt, response and metadata; raises RowError saying what is wrong."""
    if record.get("errorCode"):
        raise RowError(
            f"the call failed ({_text(record['errorCode'])}): a failed invocation has no "
            "response to learn from"
        )
    operation = record.get("operation")
    if operation not in OPERATIONS:
        raise RowError(f"operation {operation!r} is not one of {', '.join(OPERATIONS)}")
    given_input, given_output = _part(record, "input"), _part(record, "output")
    messages = _prompt(_body(given_input, "input"))
    response = response_text(_body(given_output, "output"))
    return LogRecord(
        messages=messages,
        response_text=response,
        model_id=_required_text(record, "modelId"),
        operation=operation,
        timestamp=_required_text(record, "timestamp"),
        request_id=_text(record.get("requestId") or ""),
        metadata=_metadata(record.get("requestMetadata")),
        input_tokens=_count(given_input.get("inputTokenCount")),
        output_tokens=_count(given_output.get("outputTokenCount")),
    )


def _part(record: dict[str, Any], name: str) -> dict[str, Any]:
    part = record.get(name)
    if not isinstance(part, dict):
        raise RowError(f"the record has no `{name}` object")
    return part


def _body(part: dict[str, Any], name: str) -> Any:
    if f"{name}BodyS3Path" in part and f"{name}BodyJson" not in part:
        raise RowError(
            f"the {name} body is stored in S3 ({_text(part[f'{name}BodyS3Path'])}), not in the "
            f"record: Bedrock does that for large bodies; fetch it into `{name}BodyJson` first"
        )
    if f"{name}BodyJson" not in part:
        raise RowError(f"the record has no `{name}.{name}BodyJson`")
    return part[f"{name}BodyJson"]


def _prompt(body: Any) -> list[dict[str, str]]:
    if isinstance(body, dict) and isinstance(body.get("prompt"), str) and "messages" not in body:
        try:
            return prompt_messages(body["prompt"])  # Llama or Mistral chat markers
        except RowError as error:
            raise RowError(f"input body: {error}") from None
    _check_tools(body)
    try:
        chat, _ = to_chat(body)
    except RowError as error:
        raise RowError(f"input body: {error}") from None
    return chat["messages"]


def _check_tools(body: Any) -> None:
    """Tool calls and results in the prompt are refused by name: a conversation of text turns is
    what a training row holds, and dropping them would change what the answer replies to."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for number, message in enumerate(messages if isinstance(messages, list) else [], start=1):
        if not isinstance(message, dict):
            continue
        found = "a `tool` role" if message.get("role") == "tool" else None
        if message.get("tool_calls"):
            found = "`tool_calls`"
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict):
                kind = block.get("type") if block.get("type") in TOOL_BLOCKS else None
                kind = kind or next((k for k in TOOL_BLOCKS if k in block), None)
                found = f"a {kind} block" if kind else found
        if found:
            raise RowError(
                f"input body: message {number} has {found} (a tool call or its result); only "
                "conversations of text turns are read, so records of tool use are not imported"
            )


def response_text(body: Any) -> str:
    """The text of an output body (or of a list of streamed chunks); raises RowError if none."""
    completion = completion_text(body)  # Llama `generation`, Mistral `outputs[].text`
    texts = _chunk_texts(body) if isinstance(body, list) else _message_texts(body)
    if completion is not None:
        text = completion
    elif texts is None:
        raise RowError(
            "the output body is not a Converse, Anthropic, Nova, OpenAI, Llama or Mistral response"
        )
    else:
        text = "".join(texts) if isinstance(body, list) else "\n".join(texts)
    if not text.strip():
        raise RowError("the output has no text (only tool calls, images or an empty answer)")
    return text


def _message_texts(body: Any) -> list[str] | None:
    """Texts of a whole response, or None when the shape is not one we know."""
    if not isinstance(body, dict):
        return None
    output = body.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    if isinstance(message, dict) and isinstance(message.get("content"), list):
        return _block_texts(message["content"])  # Converse, ConverseStream, Nova
    if isinstance(body.get("content"), list):
        return _block_texts(body["content"])  # Anthropic Messages
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        content = (choices[0].get("message") or {}).get("content")
        if isinstance(content, str):
            return [content]  # OpenAI chat completion
        if content is None:
            return []
    return None


def _block_texts(blocks: list[Any]) -> list[str]:
    """The text blocks; reasoning, tool-use and other blocks are not the answer."""
    return [
        block["text"]
        for block in blocks
        if isinstance(block, dict)
        and isinstance(block.get("text"), str)
        and block.get("type", "text") == "text"
    ]


def _chunk_texts(chunks: list[Any]) -> list[str] | None:
    """Texts of streamed chunks: Converse/Nova `contentBlockDelta`, Anthropic
    `content_block_delta`, OpenAI `choices[0].delta.content`; None when no chunk is one of them."""
    texts, known = [], False
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        if isinstance(chunk.get("contentBlockDelta"), dict):
            known = True
            texts.append(_delta_text(chunk["contentBlockDelta"].get("delta")))
        elif str(chunk.get("type", "")).startswith(ANTHROPIC_EVENTS):
            known = True
            if chunk["type"] == "content_block_delta":
                texts.append(_delta_text(chunk.get("delta")))
        elif isinstance(chunk.get("choices"), list):
            known = True
            for choice in chunk["choices"]:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                texts.append(_delta_text(delta, "content"))
    return texts if known else None


def _delta_text(delta: Any, key: str = "text") -> str:
    value = delta.get(key) if isinstance(delta, dict) else None
    return value if isinstance(value, str) else ""


def _metadata(given: Any) -> dict[str, str]:
    if given is None:
        return {}
    if not isinstance(given, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in given.items()
    ):
        raise RowError("`requestMetadata` must be an object of string keys and string values")
    return dict(given)


def _required_text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise RowError(f"the record has no `{name}`")
    return value


def _count(value: Any) -> int:
    """A token count as logged; anything that is not a sensible count reads as unknown (0)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    return 0


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


@dataclass(frozen=True)
class LineRow:
    """One row a line gives: the line itself, or one event of a CloudWatch Logs envelope, whose
    `message` (the record as a JSON string) is parsed only when the row is read."""

    where: str = ""  # "" for the line itself, "event 2" inside an envelope
    value: Any = None
    message: str | None = None
    error: str = ""

    def row(self) -> Any:
        """The row; raises RowError when the event cannot be one."""
        if self.error:
            raise RowError(self.error)
        if self.message is None:
            return self.value
        try:
            return strict_loads(self.message)
        except JSONInputError as error:
            raise RowError(f"the message is not a record: {error}") from None
        except json.JSONDecodeError as error:
            raise RowError(
                f"the message is not a JSON record: {error.msg} (column {error.colno})"
            ) from None

    def problem(self, error: RowError) -> str:
        """What is wrong, with the event's place in its line (`event 2: …`)."""
        return f"{self.where}: {error}" if self.where else str(error)


def line_rows(parsed: Any) -> list[LineRow]:
    """The rows of one parsed line: none for a blank line or a CloudWatch Logs CONTROL_MESSAGE,
    one per log event for a CloudWatch Logs envelope (a subscription/Firehose `DATA_MESSAGE` with
    `logEvents`, or an `aws logs get-log-events` / `filter-log-events` output with `events`), and
    otherwise the line itself."""
    if parsed is None:
        return []
    if not isinstance(parsed, dict) or "schemaType" in parsed or "messages" in parsed:
        return [LineRow(value=parsed)]
    if "messageType" in parsed:
        kind = parsed["messageType"]
        if kind == "CONTROL_MESSAGE":  # CloudWatch Logs checking that the destination is reachable
            return []
        if kind != "DATA_MESSAGE":
            error = (
                f"CloudWatch Logs messageType {kind!r} is neither DATA_MESSAGE nor CONTROL_MESSAGE"
            )
            return [LineRow(error=error)]
        return _events(parsed.get("logEvents"), "logEvents")
    if isinstance(parsed.get("events"), list):
        return _events(parsed["events"], "events")
    return [LineRow(value=parsed)]


def _events(events: Any, name: str) -> list[LineRow]:
    if not isinstance(events, list):
        return [LineRow(error=f"the CloudWatch Logs envelope has no `{name}` list")]
    rows = []
    for number, event in enumerate(events, start=1):
        where = f"event {number}"
        message = event.get("message") if isinstance(event, dict) else None
        if isinstance(message, str):
            rows.append(LineRow(where=where, message=message))
        else:
            rows.append(LineRow(where=where, error="the log event has no `message` string"))
    return rows
