"""Log-probabilities of a token sequence under a served model: one forward pass, no sampling.

What `/v1/completions` returns as `logprobs` (and what evaluation harnesses sum to score a
continuation): for each token after the first, `log_softmax` of the model's raw logits at the
position before it, so temperature, top_p and stop sequences never change a score. It runs in the
inference pool's threads and holds the weights' lock, as a generation does: the active adapter
is state of the shared model.
"""

from __future__ import annotations

from dataclasses import dataclass

from playground.inference.pool import Served

FLOOR = -9999.0


@dataclass(frozen=True)
class TokenScore:
    """One token's log-probability (None for the first: nothing comes before it) and the
    `top` most likely tokens at its position, most likely first."""

    id: int
    logprob: float | None
    top: tuple[tuple[int, float], ...]


def score_ids(served: Served, ids: list[int], top: int) -> list[TokenScore]:
    """Score `ids` in one forward pass (sync: call it in a pool thread)."""
    import torch  # imported by a process that serves, not by the URLconf

    weights = served.weights
    with torch.inference_mode(), weights.lock, weights.activated(served.adapter) as model:
        input_ids = torch.tensor([ids], device=weights.model.device)
        logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits
        # -inf (a token masked out) is no JSON number: floored as vLLM does
        logprobs = torch.log_softmax(logits[0].float(), dim=-1).clamp(min=FLOOR)
    scores = [TokenScore(ids[0], None, ())]
    if len(ids) < 2:
        return scores
    before = logprobs[:-1]  # the distribution each later token was drawn from
    chosen = before.gather(1, torch.tensor(ids[1:], device=before.device)[:, None])[:, 0]
    best_values, best_ids = before.topk(min(top, before.shape[1]), dim=-1)
    for position, token in enumerate(ids[1:]):
        pairs = zip(best_ids[position].tolist(), best_values[position].tolist(), strict=True)
        scores.append(TokenScore(token, float(chosen[position]), tuple(pairs)))
    return scores
