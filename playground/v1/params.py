"""Read an OpenAI chat-completions request, and answer errors in OpenAI's shape.

Clients written for OpenAI branch on the HTTP status and on `error.type` / `error.code`, so both
follow OpenAI: 400 invalid_request_error (with the offending `param`), 401 invalid_api_key,
404 model_not_found, 429 rate_limit_exceeded. Nothing is silently ignored: every parameter of
OpenAI's request is in PARAMETERS, either honoured or refused with a 400 that names it and says
what to do instead (a refused parameter's no-op values, e.g. `store: false`, are accepted), and
any other key is refused as OpenAI refuses it ("Unrecognized request argument supplied").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from django.http import JsonResponse

from playground.inference.types import Sampling
from playground.models import check_metadata
from playground.v1.parameter_table import PARAMETERS, Refused
from rftconsole.models import ApiKey, ApiKeyScope
from rftconsole.parsers import JSONInputError, strict_loads

ROLES = {"system", "developer", "user", "assistant", "tool"}
MAX_STOP_SEQUENCES = 4  # OpenAI's limit
MAX_CHOICES = 16
MAX_TOP_LOGPROBS = 20  # OpenAI's limit
MAX_LOGIT_BIAS = 300  # tokens one request may bias


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


def check_parameters(body: dict[str, Any]) -> None:
    """Refuse any key OpenAI's request does not have, then any unsupported value."""
    for name in body:
        if name not in PARAMETERS:
            name = name[:100]
            raise ApiError(400, f"Unrecognized request argument supplied: {name}", param=name)
    for name, support in PARAMETERS.items():
        if isinstance(support, Refused) and not support.allows(body.get(name)):
            what = "value for" if support.accepts else "parameter"
            message = f"Unsupported {what} '{name}': {support.why}"
            raise ApiError(400, message, param=name, code=support.code())
    for name in ("user", "safety_identifier", "prompt_cache_key"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise bad(f"Invalid type for '{name}': expected a string.", name)
    if body.get("prompt_cache_retention") not in (None, "in_memory", "24h"):
        message = "Invalid value for 'prompt_cache_retention': use 'in_memory' or '24h'."
        raise bad(message, "prompt_cache_retention")
    if not isinstance(body.get("prompt_cache_options") or {}, dict):
        message = "Invalid type for 'prompt_cache_options': expected an object."
        raise bad(message, "prompt_cache_options")


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
    tools: Any = None  # a playground.v1.tools.ToolSpec (which imports this module), or None


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


# A message's fields in OpenAI's request (and in a reply's message sent back as history): `name`,
# `refusal` and `annotations` are accepted and not shown to the model (chat templates have no
# place for them); tool_calls, tool_call_id and function_call are read by the tools module.
MESSAGE_FIELDS = {
    "role", "content", "name", "refusal", "annotations", "audio",
    "tool_calls", "tool_call_id", "function_call",
}  # fmt: skip


def _check_fields(message: dict[str, Any], where: str) -> None:
    for name in message:
        if name not in MESSAGE_FIELDS:
            text = f"Unrecognized field '{str(name)[:100]}' in '{where}'."
            raise ApiError(400, text, param=f"{where}.{str(name)[:100]}")
    if message.get("audio") is not None:
        raise ApiError(
            400,
            f"Unsupported field '{where}.audio': the models served here read text only.",
            param=f"{where}.audio",
            code="unsupported_parameter",
        )


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise bad("'messages' must be a non-empty array of messages.", "messages")
    messages = []
    for number, message in enumerate(value):
        where = f"messages[{number}]"
        if not isinstance(message, dict):
            raise bad(f"Invalid type for '{where}': expected an object.", where)
        _check_fields(message, where)
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


def _stream_options(body: dict[str, Any], stream: bool) -> dict[str, Any]:
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad("Invalid type for 'stream_options': expected an object.", "stream_options")
    if options and not stream:
        raise bad("'stream_options' is only allowed when 'stream' is true.", "stream_options")
    for name, value in options.items():
        where = f"stream_options.{str(name)[:100]}"
        if name not in ("include_usage", "include_obfuscation"):
            raise bad(f"Unrecognized request argument supplied: {where}", where)
        if value is not None and not isinstance(value, bool):
            raise bad(f"Invalid type for '{where}': expected a boolean.", where)
    if options.get("include_obfuscation"):
        raise ApiError(
            400,
            "Unsupported value for 'stream_options.include_obfuscation': this server does not pad "
            "stream events against size side channels; set it to false or leave it out.",
            param="stream_options.include_obfuscation",
            code="unsupported_value",
        )
    return options


def _logit_bias(value: Any) -> tuple[tuple[int, float], ...]:
    """Token id strings to biases from -100 to 100; the ids are checked against the model's
    vocabulary once it is known (check_vocabulary)."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise bad("Invalid type for 'logit_bias': expected an object of token ids.", "logit_bias")
    if len(value) > MAX_LOGIT_BIAS:
        raise bad(f"'logit_bias' takes at most {MAX_LOGIT_BIAS} tokens.", "logit_bias")
    pairs = []
    for key, bias in value.items():
        if not (key.isascii() and key.isdigit() and len(key) <= 9):
            message = f"Invalid key in 'logit_bias': {key[:20]!r} is not a token id (a number)."
            raise bad(message, "logit_bias")
        number = isinstance(bias, int | float) and not isinstance(bias, bool)
        if not number or not math.isfinite(bias) or not -100 <= bias <= 100:
            message = (
                f"Invalid value in 'logit_bias' for token {key}: use a number from -100 to 100"
            )
            raise bad(message + ".", "logit_bias")
        pairs.append((int(key), float(bias)))
    return tuple(pairs)


def check_vocabulary(sampling: Sampling, size: int) -> None:
    """A 400 for a logit_bias token id outside the model's vocabulary (ids 0 to size - 1)."""
    for token_id, _ in sampling.logit_bias:
        if token_id >= size:
            raise bad(
                f"Invalid key in 'logit_bias': token id {token_id} is not in this model's "
                f"vocabulary (ids 0 to {size - 1}).",
                "logit_bias",
            )


def _logprobs(body: dict[str, Any]) -> tuple[bool, int]:
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise bad("Invalid type for 'logprobs': expected a boolean.", "logprobs")
    top = _integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if top is not None and not logprobs:
        raise bad("'logprobs' must be set to true if 'top_logprobs' is used.", "top_logprobs")
    return bool(logprobs), top or 0


def parse_chat_request(body: dict[str, Any], default_max_tokens: int) -> ChatRequest:
    """Check every parameter (PARAMETERS); raise ApiError(400) naming the first bad one."""
    check_parameters(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("You must provide a model parameter.", "model")
    messages = _messages(body.get("messages"))
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise bad("Invalid type for 'stream': expected a boolean.", "stream")
    options = _stream_options(body, stream)
    max_completion = _integer(body, "max_completion_tokens", 1)
    max_tokens = max_completion if max_completion is not None else _integer(body, "max_tokens", 1)
    metadata = body.get("metadata") or {}
    try:
        check_metadata(metadata)
    except ValueError as error:
        raise bad(str(error), "metadata") from None
    logprobs, top_logprobs = _logprobs(body)
    sampling = Sampling(
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        max_tokens=max_tokens or default_max_tokens,
        n=_integer(body, "n", 1, MAX_CHOICES) or 1,
        stop=_stop(body.get("stop")),
        seed=_integer(body, "seed", -(2**63), 2**64 - 1),
        presence_penalty=_number(body, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        logit_bias=_logit_bias(body.get("logit_bias")),
        logprobs=logprobs,
        top_logprobs=top_logprobs,
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
