"""Every parameter of OpenAI's chat completions request, and what this server does with it.

Plain data (no imports of the app), read by `params.check_parameters` and mirrored by README's
table "What /v1/chat/completions supports". A parameter is honoured (parsed in params.py),
parsed by the structured-output and tools modules, an accepted hint that cannot change an
answer, or Refused: a 400 naming it that says why and what to use instead, while its no-op
values (null, and a default such as `store: false`) are accepted. A key not listed here is
refused as OpenAI refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HONOURED = "honoured"
HINT = "accepted"  # an identifier or caching hint: it cannot change an answer, so it is accepted
ELSEWHERE = "structured outputs / tools"  # parsed by the structured-output and tools modules


@dataclass(frozen=True)
class Refused:
    """A parameter this server cannot honour: null and the values in `accepts` (its defaults,
    which change nothing) are accepted; any other value is refused with `why`."""

    why: str
    accepts: tuple[Any, ...] = ()

    def allows(self, value: Any) -> bool:
        return value is None or any(value == a and type(value) is type(a) for a in self.accepts)

    def code(self) -> str:
        return "unsupported_value" if self.accepts else "unsupported_parameter"


TEXT_ONLY = "The models served here read and write text only."
PARAMETERS: dict[str, str | Refused] = {
    "model": HONOURED,
    "messages": HONOURED,
    "stream": HONOURED,
    "stream_options": HONOURED,  # include_usage; include_obfuscation only false
    "temperature": HONOURED,
    "top_p": HONOURED,
    "n": HONOURED,
    "stop": HONOURED,
    "seed": HONOURED,
    "max_tokens": HONOURED,
    "max_completion_tokens": HONOURED,
    "metadata": HONOURED,  # kept with the invocation log
    "presence_penalty": HONOURED,
    "frequency_penalty": HONOURED,
    "logit_bias": HONOURED,
    "logprobs": HONOURED,
    "top_logprobs": HONOURED,
    "response_format": ELSEWHERE,
    "tools": ELSEWHERE,
    "tool_choice": ELSEWHERE,
    "parallel_tool_calls": ELSEWHERE,
    "functions": ELSEWHERE,
    "function_call": ELSEWHERE,
    "user": HINT,
    "safety_identifier": HINT,
    "prompt_cache_key": HINT,  # there is no prompt cache: every prompt is computed in full
    "prompt_cache_retention": HINT,
    "prompt_cache_options": HINT,
    "store": Refused(
        "Stored chat completions (store: true) are not supported. Every request to a deployment "
        "is kept as an invocation log anyway (its id is in the X-Invocation-Log-Id header) "
        "unless the deployment opts out; leave 'store' out or set it to false.",
        (False,),
    ),
    "modalities": Refused(f"{TEXT_ONLY} Leave 'modalities' out or use [\"text\"].", (["text"],)),
    "audio": Refused(f"{TEXT_ONLY} Leave 'audio' out."),
    "service_tier": Refused(
        "This server has one service tier (no flex, scale, priority or fast processing): leave "
        "'service_tier' out or use 'auto' or 'default'.",
        ("auto", "default"),
    ),
    "verbosity": Refused(
        "The models served here have no verbosity control: ask for a shorter or longer answer in "
        "the prompt and bound it with 'max_completion_tokens'. Leave 'verbosity' out or use "
        "'medium' (the default).",
        ("medium",),
    ),
    "reasoning_effort": Refused(
        "The models served here are not reasoning models (there is no separate reasoning to "
        "shorten or lengthen): leave 'reasoning_effort' out."
    ),
    "prediction": Refused(
        "Predicted outputs are not implemented here; leave 'prediction' out (the answer is the "
        "same without it)."
    ),
    "web_search_options": Refused(
        "The models served here cannot search the web: leave 'web_search_options' out and put "
        "what they need into the messages."
    ),
    "moderation": Refused(
        "This server runs no moderation model: leave 'moderation' out and moderate the input and "
        "the answer on your side."
    ),
}
