"""The generating side of a streamed chat answer: `model.generate` in a pool thread, with a
streamer that passes on each token's text and a stopping criterion for cancel and stop sequences.

With `logprobs`, each Delta carries the entries of the tokens whose text starts in it: a token's
entry goes out with the delta that carries the first character of its text, so text that the
stop scanner holds back (it may be the start of a stop sequence) holds its tokens' entries back
with it. When a stop sequence cuts the answer, the tokens that start at or after the cut (the
stop sequence's own) are dropped, as their text is; a token that straddles the cut is kept. A
token without text of its own (a special token) goes out with the next text, or with the last
delta. The token that ends the turn has no entry: it is not part of the content.

Kept apart from `playground.inference.streaming` (which the URLconf reaches) so that torch and
transformers are imported only by a process that generates.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import torch
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from playground.inference.constraints import grammar_processors
from playground.inference.logits import RawLogprobs, logits_processors
from playground.inference.pool import Served
from playground.inference.types import Delta, Finish, Sampling, StopScanner, TokenLogprob

OnText = Callable[[str, int, tuple[TokenLogprob, ...]], None]


class _ChoiceStreamer(BaseStreamer):
    """Token-by-token text, like TextIteratorStreamer but without waiting for a space: each new
    token's text is passed on unless it ends in half a character (then it waits for the rest).
    Counts the generated tokens, and whether the last one ended the turn. With a recorder, each
    token's logprob entry goes with the text it is part of."""

    def __init__(
        self, tokenizer: Any, on_text: OnText, eos: set[int], recorder: RawLogprobs | None = None
    ) -> None:
        self.tokenizer, self.on_text, self.eos, self.recorder = tokenizer, on_text, eos, recorder
        self.ids: list[int] = []
        self.entries: list[TokenLogprob] = []  # of the tokens whose text is not passed on yet
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
        if self.recorder is not None:
            for token_id in ids:
                entry = self.recorder.entry(token_id, self.tokenizer)
                if token_id not in self.eos:
                    self.entries.append(entry)
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
        if new or (final and self.entries):
            entries, self.entries = tuple(self.entries), []
            self.on_text(new, self.tokens, entries)


class _ChoiceOutput:
    """One choice's text through its stop scanner, as Delta events; each logprob entry goes out
    with the delta that carries the first character of its token's text (module docstring)."""

    def __init__(self, index: int, stops: tuple[str, ...], emit: Callable[[Delta], None]) -> None:
        self.index, self.emit = index, emit
        self.scanner = StopScanner(stops)
        self.stopped = threading.Event()  # a stop sequence appeared: halt generation
        self.fed = self.passed = 0  # characters fed to the scanner, and passed on by it
        self.waiting: deque[tuple[int, TokenLogprob]] = deque()  # (where its text starts, entry)

    def text(self, text: str, tokens: int, entries: tuple[TokenLogprob, ...]) -> None:
        self.waiting.extend((self.fed, entry) for entry in entries)
        self.fed += len(text)
        out = self.scanner.feed(text)
        self.passed += len(out)
        if out:
            self.emit(Delta(self.index, out, tokens, self._due()))
        if self.scanner.stopped:
            self.stopped.set()

    def finish(self, tokens: int) -> None:
        rest = self.scanner.flush()
        self.passed += len(rest)
        # After a stop sequence, what still waits is the stop sequence's own tokens.
        entries = () if self.scanner.stopped else self._due(everything=True)
        if rest or entries:
            self.emit(Delta(self.index, rest, tokens, entries))

    def _due(self, everything: bool = False) -> tuple[TokenLogprob, ...]:
        due = []
        while self.waiting and (everything or self.waiting[0][0] < self.passed):
            due.append(self.waiting.popleft()[1])
        return tuple(due)


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
            output = _ChoiceOutput(index, sampling.stop, emit)
            recorder, processors = logits_processors(sampling, len(prompt_ids))
            # response_format / a required tool call: a fresh grammar matcher per choice, last,
            # so the recorder before it still sees the raw logits.
            processors += grammar_processors(served.tokenizer, sampling.grammar, eos)
            if processors:  # only when asked: a plain request runs generate as it always did
                options["logits_processor"] = LogitsProcessorList(processors)
            streamer = _ChoiceStreamer(served.tokenizer, output.text, eos, recorder)
            model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_Halt(cancel, output.stopped)]),
                pad_token_id=pad if pad is not None else next(iter(eos), None),
                **options,
            )
            output.finish(streamer.tokens)
            hit_length = streamer.tokens >= sampling.max_tokens and not streamer.ended_with_eos
            reason = "length" if hit_length and not output.scanner.stopped else "stop"
            emit(Finish(index, reason, streamer.tokens, tuple(streamer.ids)))
