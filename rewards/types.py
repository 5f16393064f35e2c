"""The types the rewards app shares with its callers: a sampled answer, its score, the errors.

Below every other rewards module (it imports none), so scoring, the judge, its clients, the
trainer and the playground can all use them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One sampled answer to one training row."""

    id: str
    output_text: str
    row: dict[str, Any]  # the Bedrock-format training row (messages, reference_answer, extras)


@dataclass
class RewardResult:
    id: str
    score: float
    components: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # set when the reward could not score this sample
    output: str = ""  # what the reward printed while scoring this sample's batch

    def passed(self, threshold: float) -> bool:
        return self.error is None and self.score >= threshold


class RewardConfigError(ValueError):
    """The reward version cannot be used as configured; the message says why."""


@dataclass(frozen=True)
class JudgeReply:
    """What the judge said about one row, and what it cost to ask."""

    text: str
    attempts: int
    latency_ms: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class JudgeCallError(Exception):
    """The judge gave no reply for one row; the message says why, for that row's error."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
