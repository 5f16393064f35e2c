from django import template

from playground.logs import prompt_messages
from rewards.sandbox.bwrap import available_reward_libs

register = template.Library()


@register.filter
def compact_count(value: int | None) -> str:
    """942976 -> '943 K', 1_540_000_000 -> '1.54 B'."""
    if value is None:
        return "—"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return str(value)


@register.filter
def as_json(value: object) -> str:
    """A value as JSON text (strings stay as they are): how users wrote it in their data."""
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@register.filter
def last_user_turn(messages: list[dict] | None) -> str:
    """The question a completion answers: the last user message's text."""
    for message in reversed(messages or []):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


@register.filter
def asked(request: object) -> str:
    """The question a logged request asked, whichever /v1 route it came to: the last user
    message's text (or a legacy completion's prompt)."""
    messages = prompt_messages(request)
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") in ("user", "prompt"):
            return str(message.get("content", ""))
    return ""


@register.filter
def metadata_of(row: dict) -> dict:
    """A row's extra fields: what its reward receives as metadata, besides the conversation."""
    return {k: v for k, v in row.items() if k not in {"messages", "reference_answer"}}


@register.simple_tag
def reward_libraries() -> str:
    """The curated libraries reward code may import besides the standard library."""
    return ", ".join(available_reward_libs()) or "none installed"
