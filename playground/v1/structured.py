"""`response_format`: structured outputs by constrained decoding (playground.inference.constraints).

- `{"type": "text"}` (the default): no constraint.
- `{"type": "json_object"}`: the answer is one JSON object, any keys.
- `{"type": "json_schema", "json_schema": {"name", "schema", "strict", "description"}}`: the answer
  is JSON that validates against `schema`, with `strict` true or false alike (this server always
  enforces the schema). A schema llguidance cannot enforce (an unknown type, an unsupported
  keyword such as `not`) is a 400 naming `response_format` with llguidance's reason, never an
  answer that ignores part of it.

The Responses API's `text.format` (`{"type": "json_schema", "name", "schema", "strict"}` or
`{"type": "json_object"}`) is read by `text_format_grammar` into the same grammars.

As with OpenAI, an answer cut by `max_tokens` (finish_reason "length") may be unfinished JSON.
Stop sequences still apply and can cut it too.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from playground.inference.constraints import GrammarError, json_schema_grammar
from playground.v1.params import ChatRequest, bad

PARAM = "response_format"
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for json_schema.name
MAX_SCHEMA_CHARS = 100_000


def response_format_grammar(value: Any) -> str | None:
    """The grammar `response_format` asks for (None for text), or ApiError(400)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad(f"Invalid type for '{PARAM}': expected an object.", PARAM)
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return json_schema_grammar({"type": "object"})
    if kind == "json_schema":
        return named_schema_grammar(value.get("json_schema"), f"{PARAM}.json_schema", PARAM)
    raise bad(
        f"Invalid value for '{PARAM}.type': {kind!r}; use 'text', 'json_object' or 'json_schema'.",
        PARAM,
    )


def named_schema_grammar(spec: Any, where: str, param: str) -> str:
    """A `{"name", "schema", "strict", "description"}` object's grammar: chat's
    `response_format.json_schema`, or the Responses API's `text.format` (which adds `type`)."""
    if not isinstance(spec, dict):
        raise bad(
            f"Missing or invalid '{where}': expected an object with 'name' and 'schema'.", param
        )
    name = spec.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise bad(
            f"Invalid '{where}.name': {name!r}; use 1 to 64 letters, digits, '_' or '-'.", param
        )
    if not isinstance(spec.get("strict", False), bool):
        raise bad(f"Invalid type for '{where}.strict': expected a boolean.", param)
    if not isinstance(spec.get("description", ""), str):
        raise bad(f"Invalid type for '{where}.description': expected a string.", param)
    schema = spec.get("schema", {})
    return schema_grammar(schema, f"{where}.schema", param)


def schema_grammar(schema: Any, where: str, param: str) -> str:
    """A JSON schema's grammar, or a 400 naming `param` with llguidance's reason."""
    if not isinstance(schema, dict):
        raise bad(f"Invalid type for '{where}': expected a JSON schema object.", param)
    if len(repr(schema)) > MAX_SCHEMA_CHARS:
        raise bad(f"'{where}' is too large (at most {MAX_SCHEMA_CHARS:,} characters).", param)
    try:
        return json_schema_grammar(schema)
    except GrammarError as error:
        raise bad(f"Invalid schema for '{where}': {error}", param) from None


def apply_response_format(body: dict[str, Any], chat: ChatRequest) -> None:
    """Read `response_format` into the request's sampling (its grammar)."""
    grammar = response_format_grammar(body.get(PARAM))
    if grammar is not None:
        chat.sampling = replace(chat.sampling, grammar=grammar)


TEXT = "text"


def text_format_grammar(value: Any) -> str | None:
    """The grammar a Responses API `text` object asks for (None for plain text), or a 400."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise bad(f"Invalid type for '{TEXT}': expected an object.", TEXT)
    extra = sorted(set(value) - {"format", "verbosity"})
    if extra:
        raise bad(f"Unknown parameter: '{TEXT}.{extra[0]}'.", TEXT)
    if value.get("verbosity") not in (None, "medium"):
        raise bad(f"'{TEXT}.verbosity' is not supported: these models have no verbosity.", TEXT)
    fmt = value.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise bad(f"Invalid type for '{TEXT}.format': expected an object.", TEXT)
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return json_schema_grammar({"type": "object"})
    if kind == "json_schema":
        return named_schema_grammar(fmt, f"{TEXT}.format", TEXT)
    raise bad(
        f"Invalid value for '{TEXT}.format.type': {kind!r}; use 'text', 'json_object' or "
        "'json_schema'.",
        TEXT,
    )
