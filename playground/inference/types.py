"""What a streamed generation is asked for and what it reports: plain data, no torch.

The async side (streaming.py, the endpoint, the websocket) and the generating side (generate.py,
which imports torch) both use these, so neither needs to import the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias) pairs
    logprobs: bool = False  # report each generated token's log-probability
    top_logprobs: int = 0  # and this many most likely tokens at each position
    # An llguidance grammar the answer must match (response_format, a required tool call):
    # built and checked by playground.inference.constraints, enforced in generate.py.
    grammar: str | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's log-probability under the model's raw next-token distribution, and
    (for a generated token) the most likely tokens at its position, best first."""

    id: int
    token: str  # the text the tokenizer decodes this one token to
    logprob: float
    top: tuple[TokenLogprob, ...] = ()
    bytes: tuple[int, ...] = ()  # its own bytes: UTF-8 of `token`, unless part of a character


@dataclass(frozen=True)
class Delta:
    index: int
    text: str
    tokens: int  # generated so far in this choice: the count, should the finish never come
    # With `logprobs`: the tokens whose text starts in `text` (see generate.py for the rule).
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class Finish:
    index: int
    reason: str  # "stop" (end of turn or a stop sequence) or "length" (max_tokens reached)
    completion_tokens: int
    # Every generated token id (the end-of-turn token and any past a stop sequence included):
    # /v1/completions scores the returned tokens from these.
    ids: tuple[int, ...] = ()


class GenerationError(RuntimeError):
    """Generation failed in its worker thread; the message says why."""


class StopScanner:
    """Passes text through until a stop sequence appears, which is cut with all after it."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self.pending += text
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            out, self.pending = self.pending[: min(hits)], ""
            return out
        keep = self._partial_stop_length()
        cut = len(self.pending) - keep
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.stopped else self.pending), ""
        return out

    def _partial_stop_length(self) -> int:
        longest = max((len(s) - 1 for s in self.stops), default=0)
        for size in range(min(longest, len(self.pending)), 0, -1):
            tail = self.pending[-size:]
            if any(s.startswith(tail) for s in self.stops):
                return size
        return 0
