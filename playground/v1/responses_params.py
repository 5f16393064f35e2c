"""Read a `/v1/responses` request (OpenAI's Responses API) into a chat request.

Text in, text out: `input` (a string, or message items whose content is text), `instructions`
(the system message), `max_output_tokens`, `temperature`, `top_p`, `metadata`, `stream`, `store`,
and `text.format` for structured output (json_object, json_schema, as chat's `response_format`:
playground.v1.structured). Nothing is stored beyond the deployment's invocation log, so
`store: true` is accepted like `store: false`, and `previous_response_id` is refused. Tools,
reasoning and the other features this server does not implement are refused with a 400 naming
them unless they ask for nothing (`tools: []`, `reasoning: {}`…); any key the Responses API does
not have is refused too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from playground.inference.types import Sampling
from playground.models import check_metadata
from playground.v1.params import ChatRequest, _integer, _number, bad
from playground.v1.structured import text_format_grammar

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
TEXT_PARTS = {"input_text", "output_text"}
USED = {
    "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "stream",
    "store", "metadata", "user", "safety_identifier", "prompt_cache_key", "parallel_tool_calls",
    "service_tier", "text",
}  # fmt: skip
# Accepted only when they ask for nothing this server would have to do.
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "tools": (None, []),
    "tool_choice": (None, "auto", "none"),
    "previous_response_id": (None,),
    "conversation": (None,),
    "prompt": (None,),
    "reasoning": (None, {}),
    "truncation": (None, "disabled"),
    "include": (None, []),
    "background": (None, False),
    "top_logprobs": (None, 0),
    "max_tool_calls": (None,),
    "stream_options": (None, {}),
}
WHY_NOT = {
    "tools": "tools are not supported on /v1/responses; use /v1/chat/completions",
    "tool_choice": "tools are not supported on /v1/responses",
    "previous_response_id": "this server does not store responses; send the whole conversation "
    "as `input` instead",
    "conversation": "this server does not store conversations; send them as `input`",
    "prompt": "stored prompt templates are not supported",
    "reasoning": "reasoning options are not supported by these models",
    "truncation": "only 'disabled' is supported: an input longer than the context is refused",
    "include": "no extra output data is available",
    "background": "background responses need stored responses, which this server does not keep",
    "top_logprobs": "logprobs are not supported on /v1/responses; use /v1/completions",
    "max_tool_calls": "tools are not supported on /v1/responses",
    "stream_options": "no stream options are supported",
}


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name, value in body.items():
        if name in NEUTRAL:
            if value not in NEUTRAL[name]:
                raise bad(f"'{name}' is not supported: {WHY_NOT[name]}.", name)
        elif name not in USED:
            raise bad(f"Unrecognized request argument supplied: {name}", name)


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for number, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in TEXT_PARTS:
                raise bad(
                    f"'{where}.content[{number}]': only text parts (input_text, output_text) are "
                    "supported.",
                    "input",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise bad(f"'{where}.content[{number}].text' must be a string.", "input")
            texts.append(text)
        return "".join(texts)
    raise bad(f"Invalid type for '{where}.content': expected a string or text parts.", "input")


def _messages(value: Any) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise bad("'input' must be a string or a non-empty array of message items.", "input")
    messages = []
    for number, item in enumerate(value):
        where = f"input[{number}]"
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            kind = item.get("type") if isinstance(item, dict) else type(item).__name__
            raise bad(f"'{where}': only message items are supported, not {kind!r}.", "input")
        role = item.get("role")
        if role not in ROLES:
            allowed = ", ".join(sorted(ROLES))
            raise bad(f"Invalid value for '{where}.role': {role!r}; use one of {allowed}.", "input")
        messages.append({"role": ROLES[role], "content": _text(item.get("content"), where)})
    return messages


def _optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise bad(f"Invalid type for '{name}': expected a string.", name)
    return value


def parse_responses_request(body: dict[str, Any], default_max_tokens: int) -> ChatRequest:
    """The request as a chat request (instructions first, as the system message)."""
    _refuse_unsupported(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("You must provide a model parameter.", "model")
    messages = _messages(body.get("input"))
    instructions = _optional_string(body, "instructions")
    if instructions:
        messages.insert(0, {"role": "system", "content": instructions})
    for name in ("user", "safety_identifier", "prompt_cache_key", "service_tier"):
        _optional_string(body, name)
    for name in ("stream", "store", "parallel_tool_calls"):
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise bad(f"Invalid type for '{name}': expected a boolean.", name)
    metadata = body.get("metadata") or {}
    try:
        check_metadata(metadata)
    except ValueError as error:
        raise bad(str(error), "metadata") from None
    max_tokens = _integer(body, "max_output_tokens", 1)
    sampling = Sampling(
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        max_tokens=max_tokens or default_max_tokens,
    )
    grammar = text_format_grammar(body.get("text"))
    if grammar is not None:
        sampling = replace(sampling, grammar=grammar)
    return ChatRequest(
        model=model,
        messages=messages,
        sampling=sampling,
        stream=bool(body.get("stream")),
        metadata=metadata,
        max_tokens_given=max_tokens is not None,
    )
