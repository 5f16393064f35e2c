"""Read a legacy `/v1/completions` request: every key is used, accepted as a no-op, or refused.

A parameter this server cannot honour (`suffix`, `best_of` above 1) answers 400 naming it, and so
does any key OpenAI's completions API does not have: a client never gets an answer that silently
ignored what it asked for. Penalties and `logit_bias` apply as on chat completions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from playground.inference.types import Sampling
from playground.models import check_metadata
from playground.v1.params import MAX_CHOICES, _integer, _logit_bias, _number, _stop, bad

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for completions
MAX_LOGPROBS = 5  # OpenAI's limit for the legacy `logprobs`
MAX_PROMPTS = 64  # a harness batches prompts; each becomes `n` choices
USED = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "stream",
    "stream_options", "echo", "logprobs", "user", "metadata", "presence_penalty",
    "frequency_penalty", "logit_bias",
}  # fmt: skip
# Accepted only with the value that changes nothing; anything else is refused by name.
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "suffix": (None, ""),
    "best_of": (None, 1),
}
WHY_NOT = {
    "suffix": "inserting text before a suffix needs a fill-in-the-middle model",
    "best_of": "only one candidate is generated per choice; use n for several",
}

Prompt = str | list[int]


@dataclass
class CompletionRequest:
    model: str
    prompts: list[Prompt]
    sampling: Sampling  # max_tokens 0 (scoring only) is kept in `max_tokens`
    max_tokens: int
    max_tokens_given: bool
    echo: bool = False
    logprobs: int | None = None
    stream: bool = False
    include_usage: bool = False
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.sampling.n


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prompts(value: Any) -> list[Prompt]:
    """A string, strings, token ids, or arrays of token ids (what lm-eval sends), as a list."""
    prompts: list[Prompt] | None = None
    if isinstance(value, str):
        prompts = [value]
    elif isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            prompts = list(value)
        elif all(_is_id(item) for item in value):
            prompts = [list(value)]
        elif all(isinstance(i, list) and i and all(_is_id(t) for t in i) for i in value):
            prompts = [list(item) for item in value]
    if prompts is None:
        raise bad(
            "'prompt' must be a string, an array of strings, an array of token ids or an array "
            "of token-id arrays.",
            "prompt",
        )
    if len(prompts) > MAX_PROMPTS:
        raise bad(f"'prompt' takes at most {MAX_PROMPTS} prompts in one request.", "prompt")
    return prompts


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad(f"Invalid type for '{name}': expected a boolean.", name)
    return value


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name in body:
        if name in NEUTRAL:
            if body[name] not in NEUTRAL[name] or isinstance(body[name], bool):
                raise bad(f"'{name}' is not supported: {WHY_NOT[name]}.", name)
        elif name not in USED:
            raise bad(f"Unrecognized request argument supplied: {name}", name)


def parse_completion_request(body: dict[str, Any]) -> CompletionRequest:
    """Check every parameter; raise ApiError(400) naming the first bad or unsupported one."""
    _refuse_unsupported(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("You must provide a model parameter.", "model")
    prompts = _prompts(body.get("prompt"))
    stream = _flag(body, "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad("Invalid type for 'stream_options': expected an object.", "stream_options")
    if options and not stream:
        raise bad("'stream_options' is only allowed when 'stream' is true.", "stream_options")
    logprobs = _integer(body, "logprobs", 0, MAX_LOGPROBS)
    if logprobs is not None and stream:
        raise bad(
            "'logprobs' is not supported with 'stream' here: ask without streaming.", "logprobs"
        )
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise bad("Invalid type for 'user': expected a string.", "user")
    metadata = body.get("metadata") or {}
    try:
        check_metadata(metadata)
    except ValueError as error:
        raise bad(str(error), "metadata") from None
    max_tokens = _integer(body, "max_tokens", 0)
    n = _integer(body, "n", 1, MAX_CHOICES) or 1
    if len(prompts) * n > MAX_PROMPTS:
        raise bad(f"'n' times the prompts may be at most {MAX_PROMPTS} choices.", "n")
    wanted = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    sampling = Sampling(
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        max_tokens=max(wanted, 1),
        n=n,
        stop=_stop(body.get("stop")),
        seed=_integer(body, "seed", -(2**63), 2**64 - 1),
        # as on chat: OpenAI's additive penalties and logit_bias (playground.inference.logits)
        presence_penalty=_number(body, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        logit_bias=_logit_bias(body.get("logit_bias")),
    )
    return CompletionRequest(
        model=model,
        prompts=prompts,
        sampling=sampling,
        max_tokens=wanted,
        max_tokens_given=max_tokens is not None,
        echo=_flag(body, "echo"),
        logprobs=logprobs,
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        metadata=metadata,
    )
