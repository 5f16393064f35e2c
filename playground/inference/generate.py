"""The generating side of a streamed chat answer: `model.generate` in a pool thread, with a
streamer that passes on each token's text and a stopping criterion for cancel and stop sequences.

Kept apart from `playground.inference.streaming` (which the URLconf reaches) so that torch and
transformers are imported only by a process that generates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from playground.inference.pool import Served
from playground.inference.types import Delta, Finish, Sampling, StopScanner


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
        # A NUL can be decoded (random or byte-level models) but PostgreSQL refuses it in text and
        # JSON columns, which would lose the answer's log; U+FFFD keeps the length and the offsets.
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True).replace("\x00", "\ufffd")
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
