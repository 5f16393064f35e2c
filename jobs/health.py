"""Training-health warnings: pure rules over a job's metric points, each with what it means and
what to try. The job page, its live refresh and the jobs list all call `check`.

A point is a dict {"kind": "train" | "eval", "step": int, "values": {metric: number | None}} in
step order, as jobs/summary.py loads them. Every threshold is a named constant below; each rule
returns one warning or None, and says nothing until it has the points it needs.

Imports: nothing of ours (pure functions, unit-tested in tests/test_job_health.py).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

WINDOW = 5  # the recent steps a rule averages over (one step is noisy)
MIN_TREND_POINTS = 2 * WINDOW  # a "from the start to now" rule needs two windows that differ

REWARD_ERROR_FRACTION = 0.05  # of the samples in the window (the job fails above 0.5 in a step)
ZERO_STD_FRACTION = 0.5  # groups whose answers all got the same reward (frac_reward_zero_std)
ENTROPY_COLLAPSE_RATIO = 0.25  # recent entropy below this share of the starting entropy
CLIPPED_FRACTION = 0.2  # completions cut at inferenceMaxTokens
LENGTH_GROWTH_RATIO = 2.0  # recent mean completion length over the starting mean
KL_SPIKE_RATIO = 4.0  # a recent KL over this many times the median of the steps before it
KL_SPIKE_FLOOR = 0.05  # ... and above this, so noise around zero is not a spike
KL_SPIKE_HISTORY = 3  # steps of KL needed before a spike can be told
HACKING_TRAIN_RISE = 0.05  # recent train reward over the starting one, on a 0-1 reward scale
HACKING_VALIDATION_DROP = 0.05  # latest validation accuracy under the best earlier one
NO_PROGRESS_EVALS = 3  # validations after the base one that did not beat it
NO_PROGRESS_MARGIN = 0.01  # "beat" means by more than this (accuracy and mean reward)


@dataclass(frozen=True)
class HealthWarning:
    code: str  # stable, for tests and CSS: "reward-errors", "length-clipped", ...
    title: str
    detail: str  # the numbers that triggered it
    meaning: str
    advice: str


Point = dict[str, Any]
Series = list[tuple[int, float]]


def series(points: Sequence[Point], kind: str, key: str) -> Series:
    """(step, value) of `key` in the points of `kind`, skipping missing and non-finite values."""
    out = []
    for point in points:
        value = (point.get("values") or {}).get(key)
        if point.get("kind") == kind and _number(value):
            out.append((point["step"], float(value)))
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _mean(values: Series) -> float:
    return statistics.fmean(value for _, value in values)


def reward_errors(points: Sequence[Point], max_tokens: int | None = None) -> HealthWarning | None:
    errors = series(points, "train", "reward_errors")[-WINDOW:]
    samples = dict(series(points, "train", "reward_samples"))
    counted = [(step, value) for step, value in errors if samples.get(step)]
    failed = sum(value for _, value in counted)
    total = sum(samples[step] for step, _ in counted)
    detail = ""
    if total and failed / total > REWARD_ERROR_FRACTION:
        detail = (
            f"{failed / total:.0%} of the samples of the last {len(counted)} steps "
            f"({failed:.0f} of {total:.0f}) got no reward: the reward raised an error."
        )
    evals = [p for p in points if p.get("kind") == "eval"]
    if evals:
        values = evals[-1].get("values") or {}
        rows, eval_errors = values.get("rows"), values.get("reward_errors")
        counted_rows = _number(rows) and rows and _number(eval_errors)
        if counted_rows and eval_errors / rows > REWARD_ERROR_FRACTION:
            detail += (" " if detail else "") + (
                f"{eval_errors:.0f} of {rows:.0f} validation rows at step "
                f"{evals[-1]['step']} were reward errors."
            )
    if not detail:
        return None
    return HealthWarning(
        "reward-errors",
        "Reward errors",
        detail,
        "A sample whose reward raises is left out of the update, so the model learns from fewer "
        "answers; more than half in one step fails the job.",
        "Open the rollout inspector (Errors only) to read the tracebacks, fix the reward for "
        "those answers (return 0 instead of raising) and publish a new version.",
    )


def identical_rewards(
    points: Sequence[Point], max_tokens: int | None = None
) -> HealthWarning | None:
    recent = series(points, "train", "frac_reward_zero_std")[-WINDOW:]
    if not recent or _mean(recent) <= ZERO_STD_FRACTION:
        return None
    return HealthWarning(
        "identical-rewards",
        "Most groups got identical rewards",
        f"{_mean(recent):.0%} of the groups in the last {len(recent)} steps gave every answer "
        f"the same reward (over {ZERO_STD_FRACTION:.0%}).",
        "GRPO learns from differences inside a group: a group scored all 0 or all 1 teaches "
        "nothing.",
        "Make the reward more graded (partial credit), use harder or easier prompts, or sample "
        "more answers per prompt (trainingSamplePerPrompt).",
    )


def _start_and_recent(points: Sequence[Point], key: str) -> tuple[float, float] | None:
    values = series(points, "train", key)
    if len(values) < MIN_TREND_POINTS:
        return None
    return _mean(values[:WINDOW]), _mean(values[-WINDOW:])


def entropy_collapse(
    points: Sequence[Point], max_tokens: int | None = None
) -> HealthWarning | None:
    trend = _start_and_recent(points, "entropy")
    if trend is None or trend[0] <= 0 or trend[1] >= ENTROPY_COLLAPSE_RATIO * trend[0]:
        return None
    start, recent = trend
    return HealthWarning(
        "entropy-collapse",
        "Entropy collapse",
        f"Entropy fell from {start:.3g} to {recent:.3g} (under {ENTROPY_COLLAPSE_RATIO:.0%} "
        "of where it started).",
        "The model samples nearly the same answer every time: groups stop differing and "
        "exploration stops.",
        "Lower the learning rate, raise the KL penalty (beta) or the sampling temperature, or "
        "stop at an earlier checkpoint.",
    )


def length_clipped(points: Sequence[Point], max_tokens: int | None = None) -> HealthWarning | None:
    recent = series(points, "train", "clipped_ratio")[-WINDOW:]
    if recent:
        share = _mean(recent)
    else:  # an older run without the ratio: a max length at the limit says as much
        longest = series(points, "train", "completion_length_max")[-WINDOW:]
        if not max_tokens or not longest:
            return None
        share = sum(value >= max_tokens for _, value in longest) / len(longest)
    if share <= CLIPPED_FRACTION:
        return None
    limit = f" ({max_tokens} tokens)" if max_tokens else ""
    return HealthWarning(
        "length-clipped",
        "Completions hit inferenceMaxTokens",
        f"{share:.0%} of the completions in the last {len(recent) or WINDOW} steps were cut at "
        f"the limit{limit}.",
        "A cut answer has no ending, so the reward scores a fragment; if length is rewarded, "
        "the model learns to ramble to the limit.",
        "Raise inferenceMaxTokens, or reward concise answers (penalise length, require the "
        "final answer early).",
    )


def length_growth(points: Sequence[Point], max_tokens: int | None = None) -> HealthWarning | None:
    trend = _start_and_recent(points, "completion_length_mean")
    if trend is None or trend[0] <= 0 or trend[1] <= LENGTH_GROWTH_RATIO * trend[0]:
        return None
    start, recent = trend
    return HealthWarning(
        "length-growth",
        "Completion length is blowing up",
        f"Mean completion length grew from {start:.0f} to {recent:.0f} tokens "
        f"(over {LENGTH_GROWTH_RATIO:g}×).",
        "Longer answers are being rewarded, wanted or not; training slows down with them.",
        "Check in the rollout inspector whether long answers are better; if not, add a length "
        "penalty or lower inferenceMaxTokens.",
    )


def kl_spike(points: Sequence[Point], max_tokens: int | None = None) -> HealthWarning | None:
    values = series(points, "train", "kl")
    start = max(KL_SPIKE_HISTORY, len(values) - WINDOW)
    for index in range(start, len(values)):
        step, value = values[index]
        usual = statistics.median(v for _, v in values[:index])
        if value > KL_SPIKE_FLOOR and value > KL_SPIKE_RATIO * max(usual, 1e-9):
            return HealthWarning(
                "kl-spike",
                "KL spike",
                f"KL to the base model jumped to {value:.3g} at step {step} (the usual was "
                f"{usual:.3g}).",
                "One update moved the model far from the base at once: an unstable step that "
                "can undo what was learned.",
                "Lower the learning rate or raise beta (the KL penalty); "
                "compare the checkpoints before and after the spike.",
            )
    return None


def reward_hacking(points: Sequence[Point], max_tokens: int | None = None) -> HealthWarning | None:
    trend = _start_and_recent(points, "reward_mean")
    accuracy = series(points, "eval", "accuracy")
    if trend is None or len(accuracy) < 2:
        return None
    start, recent = trend
    best = max(value for _, value in accuracy[:-1])
    latest_step, latest = accuracy[-1]
    rising = recent - start > HACKING_TRAIN_RISE * max(1.0, abs(start))
    if not rising or best - latest <= HACKING_VALIDATION_DROP:
        return None
    return HealthWarning(
        "reward-hacking",
        "Training reward rises while validation falls",
        f"Training reward went from {start:.3g} to {recent:.3g}, but validation accuracy fell "
        f"from {best:.0%} to {latest:.0%} at step {latest_step}.",
        "The model is learning to please the reward, not to solve the task (reward hacking), "
        "or it is overfitting the training prompts.",
        "Read high-reward answers in the rollout inspector for loopholes, tighten the reward, "
        "and keep an earlier checkpoint (finalModel: best).",
    )


def no_progress(points: Sequence[Point], max_tokens: int | None = None) -> HealthWarning | None:
    evals = [p for p in points if p.get("kind") == "eval"]
    base = next((p.get("values") or {} for p in evals if p["step"] == 0), None)
    later = [p.get("values") or {} for p in evals if p["step"] > 0]
    if base is None or len(later) < NO_PROGRESS_EVALS:
        return None
    for key in ("accuracy", "mean_reward"):
        start = base.get(key)
        if not _number(start):
            continue
        if any(_number(v.get(key)) and v[key] > start + NO_PROGRESS_MARGIN for v in later):
            return None
    return HealthWarning(
        "no-progress",
        "No progress",
        f"{len(later)} validations since the base model, none better than it.",
        "The updates are not improving held-out answers: the signal is too weak or too noisy.",
        "Check that the reward separates good from bad answers (test it on the Rewards page), "
        "raise the learning rate a little, or sample more answers per prompt.",
    )


RULES: tuple[Callable[[Sequence[Point], int | None], HealthWarning | None], ...] = (
    reward_errors,
    identical_rewards,
    entropy_collapse,
    length_clipped,
    length_growth,
    kl_spike,
    reward_hacking,
    no_progress,
)


def check(points: Sequence[Point], max_tokens: int | None = None) -> list[HealthWarning]:
    """Every warning that applies, in RULES order. `max_tokens`: the job's inferenceMaxTokens."""
    return [warning for rule in RULES if (warning := rule(points, max_tokens)) is not None]
