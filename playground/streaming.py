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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from playground.inference import InferencePool, Served


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


class _ChoiceStreamer(BaseStreamer):
    """Token-by-token text, like TextIteratorStreamer but without waiting for a space: each new
    token's text is passed on unless it ends in half a character (then it waits for the rest).
    Counts the generated tokens, and whether the last one ended the turn."""

    def __init__(self, tokenizer: Any, on_text: Callable[[str, int], None], eos: set[int]) -> None:
        self.tokenizer, self.on_text, self.eos = tokenizer, on_text, eos
        self.ids: list[int] = []
        self.sent = 0  # characters of the decoded text already passed on
        self.prompt_seen = False
        self.tokens, self.ended_with_eos = 0, False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first puts the prompt
            self.prompt_seen = True
            return
        ids = value.reshape(-1).tolist()
        self.tokens += len(ids)
        self.ended_with_eos = bool(ids) and ids[-1] in self.eos
        self.ids += ids
        self._send(final=False)

    def end(self) -> None:
        self._send(final=True)

    def _send(self, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd") and not final:
            return
        new, self.sent = text[self.sent :], len(text)
        if new:
            self.on_text(new, self.tokens)


class _Halt(StoppingCriteria):
    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> Any:
        halt = any(event.is_set() for event in self.events)
        return torch.full((input_ids.shape[0],), halt, dtype=torch.bool, device=input_ids.device)


def _eos_ids(served: Served) -> set[int]:
    ids = served.weights.model.generation_config.eos_token_id
    found = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if served.tokenizer.eos_token_id is not None:
        found.add(served.tokenizer.eos_token_id)
    return found


@torch.inference_mode()
def run_choices(
    served: Served,
    prompt_ids: list[int],
    sampling: Sampling,
    emit: Callable[[Delta | Finish], None],
    cancel: threading.Event,
) -> None:
    """Generate `sampling.n` answers one after the other (seeded once, so a streamed and a plain
    request with the same seed get the same answers), emitting deltas and a finish for each.

    The seed sets torch's process-wide generator: with RFT_INFERENCE_THREADS above 1, two
    seeded requests running at once may draw from each other's sequence."""
    weights, eos = served.weights, _eos_ids(served)
    device = weights.model.device
    input_ids = torch.tensor([prompt_ids], device=device)
    sample = sampling.temperature > 0
    options: dict[str, Any] = {"do_sample": sample, "max_new_tokens": sampling.max_tokens}
    if sample:
        options.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=None)
    else:  # greedy: clear the model's own sampling defaults, which would only warn
        options.update(temperature=None, top_p=None, top_k=None)
    pad = served.tokenizer.pad_token_id
    with weights.lock, weights.activated(served.adapter) as model:
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        for index in range(sampling.n):
            if cancel.is_set():
                return
            scanner, stopped = StopScanner(sampling.stop), threading.Event()

            def on_text(
                text: str,
                tokens: int,
                index: int = index,
                scanner: StopScanner = scanner,
                stopped: threading.Event = stopped,
            ) -> None:
                out = scanner.feed(text)
                if out:
                    emit(Delta(index, out, tokens))
                if scanner.stopped:
                    stopped.set()

            streamer = _ChoiceStreamer(served.tokenizer, on_text, eos)
            model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_Halt(cancel, stopped)]),
                pad_token_id=pad if pad is not None else next(iter(eos), None),
                **options,
            )
            rest = scanner.flush()
            if rest:
                emit(Delta(index, rest, streamer.tokens))
            hit_length = streamer.tokens >= sampling.max_tokens and not streamer.ended_with_eos
            reason = "length" if hit_length and not scanner.stopped else "stop"
            emit(Finish(index, reason, streamer.tokens))


_DONE = object()


async def stream_choices(
    pool: InferencePool, served: Served, prompt_ids: list[int], sampling: Sampling
) -> AsyncIterator[Delta | Finish]:
    """Deltas and finishes as the pool's thread produces them; waits while other generations
    hold the pool's threads. Raises GenerationError if generation fails."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancel = threading.Event()

    def emit(event: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, event)
        except RuntimeError:  # the event loop is gone: nobody is listening any more
            cancel.set()

    def job() -> None:
        try:
            if not cancel.is_set():
                run_choices(served, prompt_ids, sampling, emit, cancel)
        except Exception as error:  # noqa: BLE001 - reported to the waiting request below
            emit(GenerationError(f"Generation failed: {type(error).__name__}: {error}"))
        finally:
            emit(_DONE)

    loop.run_in_executor(pool.executor, job)
    try:
        while True:
            event = await queue.get()
            if event is _DONE:
                return
            if isinstance(event, GenerationError):
                raise event
            yield event
    finally:
        cancel.set()
