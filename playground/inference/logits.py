"""What a chat request asks of the next-token logits: OpenAI's presence and frequency penalties,
`logit_bias`, and the raw log-probabilities behind `logprobs`, as transformers logits processors.

Each is built only when the request asks for it, so a plain request runs `generate` exactly as
before (nothing per token). They come in this order, before the sampling warpers (temperature,
top_p) that `generate` adds after any processors passed in:

1. RawLogprobs records the log-softmax of the logits it is given and changes nothing. It comes
   first, so it sees the model's own distribution, before the request's penalties and bias and
   before temperature and top_p. (Processors that a model's own generation_config asks for, e.g.
   a `repetition_penalty`, run before any passed in; the starter models set none.)
2. Penalties: OpenAI's additive definition over the tokens generated so far in this choice
   (never the prompt): logit[j] -= count[j] * frequency_penalty + (count[j] > 0) * presence_penalty.
3. logit_bias through transformers' own SequenceBiasLogitsProcessor (single-token sequences).
"""

from __future__ import annotations

import math
import re
from collections import deque
from typing import Any

import torch
from transformers import LogitsProcessor, SequenceBiasLogitsProcessor

from playground.inference.types import Sampling, TokenLogprob

# OpenAI answers -9999.0 for a token the model rules out; -inf is not JSON.
LOWEST_LOGPROB = -9999.0


class RawLogprobs(LogitsProcessor):
    """Keeps each step's log-softmax row (and its top `top` entries) until the streamer pairs it
    with the token chosen from it (`entry`). A queue, not a single row: a generate loop that
    streams a token one step late (transformers does on some devices) still pairs them right."""

    def __init__(self, top: int) -> None:
        self.top = top
        self.rows: deque[tuple[torch.Tensor, Any]] = deque()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        row = torch.log_softmax(scores[0].float(), dim=-1)
        top = torch.topk(row, min(self.top, row.shape[-1])) if self.top else None
        self.rows.append((row, top))
        return scores

    def entry(self, token_id: int, tokenizer: Any) -> TokenLogprob:
        """The chosen token's log-probability and the step's most likely tokens, best first."""
        row, top = self.rows.popleft()
        alternatives: tuple[TokenLogprob, ...] = ()
        if top is not None:
            pairs = zip(top.indices.tolist(), top.values.tolist(), strict=True)
            alternatives = tuple(_entry(i, value, tokenizer) for i, value in pairs)
        return _entry(token_id, row[token_id].item(), tokenizer, alternatives)


def _entry(
    token_id: int, logprob: float, tokenizer: Any, top: tuple[TokenLogprob, ...] = ()
) -> TokenLogprob:
    logprob = max(logprob, LOWEST_LOGPROB) if math.isfinite(logprob) else LOWEST_LOGPROB
    text = tokenizer.decode([token_id])  # the token's own text, as the tokenizer decodes it
    return TokenLogprob(token_id, text, logprob, top, token_bytes(tokenizer, token_id, text))


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet (Qwen, Llama 3, the starters): a printable character for
    each byte, the characters a byte-level token's string is made of."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in printable]
    return {chr(b): b for b in printable} | {chr(256 + n): b for n, b in enumerate(extra)}


BYTE_LEVEL = _byte_level_alphabet()
BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece's byte tokens


def token_bytes(tokenizer: Any, token_id: int, text: str) -> tuple[int, ...]:
    """The token's own bytes: the UTF-8 of its text, unless it is part of a character (its text
    then decodes to U+FFFD); then the bytes its byte-level or byte-fallback string stands for,
    so a client that joins the `bytes` of an answer's tokens gets the answer's UTF-8."""
    if "\ufffd" not in text:
        return tuple(text.encode())
    piece = tokenizer.convert_ids_to_tokens(token_id)
    fallback = BYTE_FALLBACK.fullmatch(piece or "")
    if fallback:
        return (int(fallback.group(1), 16),)
    if piece and all(character in BYTE_LEVEL for character in piece):
        return tuple(BYTE_LEVEL[character] for character in piece)
    return tuple(text.encode())


class Penalties(LogitsProcessor):
    """OpenAI's presence and frequency penalties over this choice's generated tokens."""

    def __init__(self, prompt_length: int, presence: float, frequency: float) -> None:
        self.prompt_length, self.presence, self.frequency = prompt_length, presence, frequency

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        generated = input_ids[:, self.prompt_length :]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(
            1, generated, torch.ones_like(generated, dtype=scores.dtype)
        )
        return scores - counts * self.frequency - (counts > 0).to(scores.dtype) * self.presence


def logits_processors(
    sampling: Sampling, prompt_length: int
) -> tuple[RawLogprobs | None, list[LogitsProcessor]]:
    """The processors one choice needs (fresh per choice: the recorder holds that choice's rows),
    and the recorder among them when logprobs are asked for. Empty for a plain request."""
    recorder = RawLogprobs(sampling.top_logprobs) if sampling.logprobs else None
    processors: list[LogitsProcessor] = [recorder] if recorder is not None else []
    if sampling.presence_penalty or sampling.frequency_penalty:
        processors.append(
            Penalties(prompt_length, sampling.presence_penalty, sampling.frequency_penalty)
        )
    if sampling.logit_bias:
        pairs = [[[token_id], float(bias)] for token_id, bias in sampling.logit_bias]
        processors.append(SequenceBiasLogitsProcessor(sequence_bias=pairs))
    return recorder, processors
