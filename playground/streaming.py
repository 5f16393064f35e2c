"""Generate chat answers token by token in the pool's worker threads, for async callers.

A generation runs in one of the pool's threads (never on the event loop, never in Django's one
thread for sync code) and reports text deltas and a finish event per choice through an asyncio
queue. Closing the async iterator (the client went away) stops the generation at the next token.
Stop sequences are cut out as OpenAI does: text that may be the start of a stop sequence is
held back until it is known not to be.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from playground.inference import InferencePool, Served

if TYPE_CHECKING:  # the generating side (torch) is playground.generate, imported on first use
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class Delta:
    index: int
    text: str
    tokens: int  # generated so far in this choice: the count, should the finish never come


@dataclass(frozen=True)
class Finish:
    index: int
    reason: str  # "stop" (end of turn or a stop sequence) or "length" (max_tokens reached)
    completion_tokens: int


class GenerationError(RuntimeError):
    """Generation failed in its worker thread; the message says why."""


def chat_prompt_ids(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]
) -> list[int]:
    """The prompt's token ids, through the chat template when the model has one; a model without
    one gets a plain `role: content` transcript (what it was most likely trained on)."""
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        prompt = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
    return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


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


_DONE = object()


class ChoiceStream:
    """Deltas and finishes as the pool's thread produces them (an async iterator); waits while
    other generations hold the pool's threads. Raises GenerationError if generation fails.

    The generation is submitted when the stream is made, not on the first iteration: a request
    writes its log and sends its response headers while the model already works. Closing the
    stream (`aclose`, e.g. through `contextlib.aclosing`) or dropping it unread stops the
    generation at its next token; the pool's thread holds no reference to the stream."""

    def __init__(
        self, pool: InferencePool, served: Served, prompt_ids: list[int], sampling: Sampling
    ) -> None:
        loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._cancel = threading.Event()
        self._done = False
        work = _Generation(loop, self._queue, self._cancel)
        loop.run_in_executor(pool.executor, work.run, served, prompt_ids, sampling)

    def __aiter__(self) -> ChoiceStream:
        return self

    async def __anext__(self) -> Delta | Finish:
        if self._done:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is _DONE:
            self._done = True
            raise StopAsyncIteration
        if isinstance(event, GenerationError):
            self._done = True
            self._cancel.set()
            raise event
        return event

    async def aclose(self) -> None:
        self._done = True
        self._cancel.set()

    def __del__(self) -> None:
        self._cancel.set()


@dataclass
class _Generation:
    """The pool thread's side of a ChoiceStream: runs the model, hands events to the loop."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Any]
    cancel: threading.Event

    def emit(self, event: object) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the event loop is gone: nobody is listening any more
            self.cancel.set()

    def run(self, served: Served, prompt_ids: list[int], sampling: Sampling) -> None:
        try:
            if not self.cancel.is_set():
                from playground.generate import run_choices

                run_choices(served, prompt_ids, sampling, self.emit, self.cancel)
        except Exception as error:  # noqa: BLE001 - reported to the waiting request below
            self.emit(GenerationError(f"Generation failed: {type(error).__name__}: {error}"))
        finally:
            self.emit(_DONE)


def stream_choices(
    pool: InferencePool, served: Served, prompt_ids: list[int], sampling: Sampling
) -> ChoiceStream:
    """Start generating now; the answer's events come from the returned stream."""
    return ChoiceStream(pool, served, prompt_ids, sampling)
