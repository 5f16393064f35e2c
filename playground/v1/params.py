"""Read an OpenAI chat-completions request, and answer errors in OpenAI's shape.

Clients written for OpenAI branch on the HTTP status and on `error.type` / `error.code`, so both
follow OpenAI: 400 invalid_request_error (with the offending `param`), 401 invalid_api_key,
404 model_not_found, 429 rate_limit_exceeded. Parameters this server does not implement (tools,
logprobs, penalties…) are accepted and ignored, as many OpenAI-compatible servers do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from django.http import JsonResponse

from playground.inference.types import Sampling
from playground.models import check_metadata
from rftconsole.models import ApiKey, ApiKeyScope
from rftconsole.parsers import JSONInputError, strict_loads

ROLES = {"system", "developer", "user", "assistant", "tool"}
MAX_STOP_SEQUENCES = 4  # OpenAI's limit
MAX_CHOICES = 16


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status, message, type_, param, code,
        )  # fmt: skip
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message, "type": self.type, "param": self.param, "code": self.code,
            }
        }  # fmt: skip

    def response(self) -> JsonResponse:
        response = JsonResponse(self.body(), status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


def require_api_scope(api_key: ApiKey, what: str) -> None:
    """A 403 in OpenAI's shape unless the key has the `api` scope: fine-tuning management (files,
    graders that run code and call judges) is not for a key that ships inside a chat app."""
    if not api_key.covers(ApiKeyScope.API):
        raise ApiError(
            403,
            f"This API key (scope '{api_key.scope}') may not {what}. Create a key with the 'api' "
            "scope on the API keys page.",
            code="insufficient_permissions",
        )


def bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param)


def page_limit(text: str | None, default: int, maximum: int) -> int:
    """A list endpoint's `limit` query parameter: a whole number from 1 to `maximum`."""
    if text is None or text == "":
        return default
    digits = len(str(maximum))  # checked first: int() of thousands of digits is an error
    if (
        len(text) > digits
        or not text.isascii()
        or not text.isdigit()
        or not 1 <= int(text) <= maximum
    ):
        raise bad(
            f"Invalid value for 'limit': {text[:20]!r}; use a whole number from 1 to {maximum}.",
            "limit",
        )
    return int(text)


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    max_tokens_given: bool = False


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = strict_loads(raw or b"null")  # RecursionError and NaN used to escape: a 500
    except JSONInputError as error:
        raise bad(f"We could not parse the JSON body of your request: {error}.") from None
    except (ValueError, UnicodeDecodeError):
        raise bad("We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    return body


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad(f"Invalid type for '{name}': expected a number.", name)
    if not low <= value <= high:
        raise bad(f"Invalid value for '{name}': {value} is not between {low:g} and {high:g}.", name)
    return float(value)


def _integer(body: dict[str, Any], name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"Invalid type for '{name}': expected an integer.", name)
    if value < low or (high is not None and value > high):
        limit = f"at least {low}" if high is None else f"between {low} and {high}"
        raise bad(f"Invalid value for '{name}': {value} must be {limit}.", name)
    return value


def _content(value: Any, where: str) -> str:
    """Text content, or the text parts of a content array joined (images are not supported)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad(f"Only text content parts are supported in '{where}'.", where)
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise bad(f"Invalid type for '{where}': expected a string or an array of parts.", where)


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise bad("'messages' must be a non-empty array of messages.", "messages")
    messages = []
    for number, message in enumerate(value):
        where = f"messages[{number}]"
        if not isinstance(message, dict):
            raise bad(f"Invalid type for '{where}': expected an object.", where)
        role = message.get("role")
        if role not in ROLES:
            allowed = ", ".join(sorted(ROLES))
            raise bad(f"Invalid value for '{where}.role': {role!r}; use one of {allowed}.", where)
        role = "system" if role == "developer" else role
        messages.append({"role": role, "content": _content(message.get("content"), where)})
    return messages


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise bad("'stop' must be a non-empty string or an array of them.", "stop")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise bad(f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences.", "stop")
    return tuple(stops)


def parse_chat_request(body: dict[str, Any], default_max_tokens: int) -> ChatRequest:
    """Check every parameter this server uses; raise ApiError(400) naming the first bad one."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("You must provide a model parameter.", "model")
    messages = _messages(body.get("messages"))
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise bad("Invalid type for 'stream': expected a boolean.", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad("Invalid type for 'stream_options': expected an object.", "stream_options")
    if options and not stream:
        raise bad("'stream_options' is only allowed when 'stream' is true.", "stream_options")
    max_completion = _integer(body, "max_completion_tokens", 1)
    max_tokens = max_completion if max_completion is not None else _integer(body, "max_tokens", 1)
    metadata = body.get("metadata") or {}
    try:
        check_metadata(metadata)
    except ValueError as error:
        raise bad(str(error), "metadata") from None
    sampling = Sampling(
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        max_tokens=max_tokens or default_max_tokens,
        n=_integer(body, "n", 1, MAX_CHOICES) or 1,
        stop=_stop(body.get("stop")),
        seed=_integer(body, "seed", -(2**63), 2**64 - 1),
    )
    return ChatRequest(
        model=model,
        messages=messages,
        sampling=sampling,
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        metadata=metadata,
        max_tokens_given=max_tokens is not None,
    )
