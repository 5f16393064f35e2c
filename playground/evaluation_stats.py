"""The statistics of an evaluation: mean score with a 95% confidence interval, accuracy with a
Wilson interval, and win/tie/loss counts against the first model.

Pure functions of numbers (no Django, no torch), so they are tested on their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

Z95 = 1.959964  # the normal quantile of a two-sided 95% interval
TIE_TOLERANCE = 1e-9  # scores this close count as a tie (floats from different rewards)


def mean_interval(
    scores: Sequence[float], score_range: tuple[float, float] | None = None
) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high), all None without scores: the normal approximation mean ± 1.96·s/√n,
    s the sample standard deviation; clamped to `score_range` when the reward's range is known.
    One score: no width."""
    n = len(scores)
    if n == 0:
        return (None, None, None)
    mean = sum(scores) / n
    if n == 1:
        return (mean, mean, mean)
    variance = sum((s - mean) ** 2 for s in scores) / (n - 1)
    half = Z95 * math.sqrt(variance / n)
    low, high = mean - half, mean + half
    if score_range is not None:
        low, high = max(low, score_range[0]), min(high, score_range[1])
    return (mean, low, high)


def wilson_interval(passed: int, n: int) -> tuple[float | None, float | None, float | None]:
    """(rate, low, high): the Wilson score interval, which stays inside 0–1 and is honest at
    0% and 100%, where the normal approximation collapses to a point."""
    if n == 0:
        return (None, None, None)
    rate = passed / n
    z2 = Z95 * Z95
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (rate, max(0.0, centre - half), min(1.0, centre + half))


def win_tie_loss(mine: Sequence[float], theirs: Sequence[float]) -> tuple[int, int, int]:
    """Rows where `mine` scored above, equal to, below `theirs` (pairs in row order)."""
    wins = ties = losses = 0
    for a, b in zip(mine, theirs, strict=True):
        if abs(a - b) <= TIE_TOLERANCE:
            ties += 1
        elif a > b:
            wins += 1
        else:
            losses += 1
    return wins, ties, losses


@dataclass(frozen=True)
class ModelStats:
    label: str
    rows: int
    mean: float | None  # None: no row to score
    mean_low: float | None
    mean_high: float | None
    passed: int
    accuracy: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    reward_errors: int
    vs_first: dict[str, int] | None  # {"win", "tie", "loss"}; None for the first model


def summarize(
    labels: Sequence[str],
    scores: Sequence[Sequence[float]],
    passed: Sequence[Sequence[bool]],
    errors: Sequence[int],
    score_range: tuple[float, float] | None,
) -> list[dict[str, Any]]:
    """One stats dict per model. `scores[m][r]` is model m's score on row r, over the rows every
    model answered (a reward error scores 0 and fails, as in training's validation)."""
    stats = []
    for m, label in enumerate(labels):
        mean, low, high = mean_interval(scores[m], score_range)
        rate, rate_low, rate_high = wilson_interval(sum(passed[m]), len(passed[m]))
        versus = None
        if m > 0:
            win, tie, loss = win_tie_loss(scores[m], scores[0])
            versus = {"win": win, "tie": tie, "loss": loss}
        stats.append(
            asdict(
                ModelStats(
                    label,
                    len(scores[m]),
                    mean,
                    low,
                    high,
                    sum(passed[m]),
                    rate,
                    rate_low,
                    rate_high,
                    errors[m],
                    versus,
                )  # fmt: skip
            )
        )
    return stats
