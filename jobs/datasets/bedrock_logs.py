"""Bedrock model invocation log records (`"schemaType": "ModelInvocationLog"`), the JSON lines
Bedrock writes to S3 and CloudWatch Logs, read into a prompt, a response and their metadata.

The input body goes through the same converters as a dataset row (Converse, Anthropic Messages,
Nova messages-v1, OpenAI-style chat); only its conversation is kept, since inference settings say
nothing about the task. The output body gives the response text: Converse and Nova
(`output.message.content[].text`), Anthropic (`content[].text`) and OpenAI (`choices[0].message.
content`), and for the streaming operations the same shapes or a list of streamed chunks.

What cannot become a prompt and a response is refused with the reason: a failed call
(`errorCode`), a body Bedrock stored in S3 instead of the record (`inputBodyS3Path`), an image or
document block, an output without text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobs.datasets.formats import RowError, to_chat

SCHEMA_TYPE = "ModelInvocationLog"
OPERATIONS = ("Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream")
# Fields a dataset row gets from the record; request metadata never replaces them.
# Anthropic's streamed event types: message_start, content_block_delta, message_stop, …
ANTHROPIC_EVENTS = ("message_", "content_block_")
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
    if isinstance(body, dict) and isinstance(body.get("prompt"), str):
        raise RowError(
            "the input body is a raw `prompt` string (a Llama- or Mistral-style completion "
            "body), not a conversation; only Converse, Anthropic, Nova and OpenAI-style chat "
            "bodies are read"
        )
    try:
        chat, _ = to_chat(body)
    except RowError as error:
        raise RowError(f"input body: {error}") from None
    return chat["messages"]


def response_text(body: Any) -> str:
    """The text of an output body (or of a list of streamed chunks); raises RowError if none."""
    texts = _chunk_texts(body) if isinstance(body, list) else _message_texts(body)
    if texts is None:
        raise RowError("the output body is not a Converse, Anthropic, Nova or OpenAI response")
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
