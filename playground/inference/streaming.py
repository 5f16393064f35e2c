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

from playground.inference.pool import InferencePool, Served
from playground.inference.types import Delta, Finish, GenerationError, Sampling

if TYPE_CHECKING:  # the generating side (torch) is generate.py, imported on first use
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase


def chat_prompt_ids(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
) -> list[int]:
    """The prompt's token ids, through the chat template when the model has one; a model without
    one gets a plain `role: content` transcript (what it was most likely trained on). `tools`
    (checked by playground.v1.tools to be ones the template renders) go to the template."""
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(
            messages, tools=tools, add_generation_prompt=True, tokenize=False
        )
    else:
        prompt = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
    return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


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
                from playground.inference.generate import run_choices  # imports torch

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
