"""One training row: recognise its shape, convert it to chat format, and say what is wrong.

Accepted shapes (the first three are converted, and counted so the import can report them):
- chat: OpenAI chat `messages` with string contents (Bedrock's RFT format), plus any extra fields;
- converse: Bedrock Converse bodies, `{"system": [{"text"}], "messages": [{"role", "content":
  [{"text"}]}]}` (also OpenAI-style `[{"type": "text", "text"}]` content parts);
- anthropic: Bedrock invoke bodies for Anthropic models (`anthropic_version`, `system` as text or
  blocks, content blocks `{"type": "text", "text"}`);
- nova: Bedrock invoke bodies for Amazon Nova, `"schemaVersion": "messages-v1"`.
(Bedrock model invocation log records are read by bedrock_logs.py, which uses these converters.)
Inference settings in those bodies (max_tokens, inferenceConfig, …) are dropped; every other field
stays and reaches the reward as metadata.
"""

from __future__ import annotations

from typing import Any

ROLES = ("system", "user", "assistant")
# Body keys that configure inference rather than describe the row.
BODY_SETTINGS = {
    "anthropic": {"anthropic_version", "max_tokens", "temperature", "top_p", "top_k",
                  "stop_sequences", "system", "tools", "tool_choice", "metadata"},
    "converse": {"system", "inferenceConfig", "toolConfig", "additionalModelRequestFields",
                 "modelId", "guardrailConfig"},
    "nova": {"schemaVersion", "system", "inferenceConfig", "toolConfig"},
}  # fmt: skip
SHAPE_NAMES = {
    "chat": "chat format",
    "converse": "Bedrock Converse",
    "anthropic": "Anthropic Messages (invoke)",
    "nova": "Nova messages-v1 (invoke)",
    "bedrock_log": "Bedrock invocation log records",
}


class RowError(ValueError):
    """What is wrong with one row, in words a user can act on."""


def shape_of(row: dict[str, Any]) -> str:
    if row.get("schemaVersion") == "messages-v1":
        return "nova"
    if "anthropic_version" in row:
        return "anthropic"
    messages = row.get("messages")
    if isinstance(row.get("system"), list) or (
        isinstance(messages, list)
        and any(isinstance(m, dict) and isinstance(m.get("content"), list) for m in messages)
    ):
        return "converse"
    return "chat"


def to_chat(row: Any) -> tuple[dict[str, Any], str]:
    """The row in chat format, and the shape it came in. Raises RowError saying what is wrong."""
    if not isinstance(row, dict):
        raise RowError(f"a row must be a JSON object, not {_kind(row)}")
    shape = shape_of(row)
    messages = row.get("messages")
    if messages is None:
        raise RowError("missing `messages` (the conversation to answer)")
    if not isinstance(messages, list):
        raise RowError(f"`messages` must be a list of turns, not {_kind(messages)}")
    if not messages:
        raise RowError("`messages` is empty")
    if shape == "chat":
        converted = [_chat_turn(m, n) for n, m in enumerate(messages, start=1)]
        result = dict(row)
    else:
        converted = _system_turns(row.get("system"), shape)
        converted += [_block_turn(m, n) for n, m in enumerate(messages, start=1)]
        result = {k: v for k, v in row.items() if k not in BODY_SETTINGS[shape]}
    _check_order(converted)
    result["messages"] = converted
    return result, shape


def _chat_turn(message: Any, number: int) -> dict[str, str]:
    if not isinstance(message, dict):
        raise RowError(f"message {number} must be an object, not {_kind(message)}")
    role = _role(message, number)
    content = message.get("content")
    if not isinstance(content, str):
        raise RowError(f"message {number} content must be text, not {_kind(content)}")
    return {"role": role, "content": content}


def _block_turn(message: Any, number: int) -> dict[str, str]:
    if not isinstance(message, dict):
        raise RowError(f"message {number} must be an object, not {_kind(message)}")
    role = _role(message, number)
    content = message.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise RowError(f"message {number} content must be text or a list of blocks")
    return {"role": role, "content": _text_of(content, f"message {number}")}


def _system_turns(system: Any, shape: str) -> list[dict[str, str]]:
    if system is None or system == "" or system == []:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, list):
        return [{"role": "system", "content": _text_of(system, "system")}]
    raise RowError(f"`system` must be text or a list of text blocks ({SHAPE_NAMES[shape]})")


def _text_of(blocks: list[Any], where: str) -> str:
    """Join text blocks ({"text"} or {"type": "text", "text"}); anything else is refused."""
    texts = []
    for block in blocks:
        if not isinstance(block, dict):
            raise RowError(f"{where} has a content block that is {_kind(block)}, not an object")
        kind = block.get("type", "text")
        if kind != "text" or not isinstance(block.get("text"), str):
            other = kind if kind != "text" else next(iter(block), "empty")
            raise RowError(
                f"{where} has a non-text content block ({other}); only text is supported"
            )
        texts.append(block["text"])
    return "\n".join(texts)


def _role(message: dict[str, Any], number: int) -> str:
    role = message.get("role")
    if role not in ROLES:
        raise RowError(f"message {number} has role {role!r}; use one of {', '.join(ROLES)}")
    return role


def _check_order(messages: list[dict[str, str]]) -> None:
    last = messages[-1]
    if last["role"] != "user":
        raise RowError(
            f"the last turn is from {last['role']!r}: it must be the user's, since the model "
            "answers it (put the expected answer in `reference_answer`)"
        )
    if not last["content"].strip():
        raise RowError("the last user turn is empty")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "unknown")


def prompt_messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The prompt: every turn up to and including the last user turn."""
    messages = row.get("messages") or []
    users = [i for i, message in enumerate(messages) if message.get("role") == "user"]
    return messages[: users[-1] + 1] if users else messages
