"""What running one OpenAI grader gives: a reward, OpenAI's error flags, sub-rewards and tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# OpenAI's flags (openai.types.fine_tuning.alpha.GraderRunResponse.metadata.errors), all sent.
FLAGS = (
    "formula_parse_error", "invalid_variable_error", "model_grader_parse_error",
    "model_grader_refusal_error", "model_grader_server_error", "other_error",
    "python_grader_runtime_error", "python_grader_server_error", "sample_parse_error",
    "truncated_observation_error", "unresponsive_reward_error",
)  # fmt: skip
# OpenAI's detail fields, then ours (`<flag>_details`) for flags whose cause OpenAI leaves unsaid.
DETAILS = (
    "model_grader_server_error_details", "python_grader_runtime_error_details",
    "python_grader_server_error_type", "model_grader_parse_error_details",
    "invalid_variable_error_details", "sample_parse_error_details",
    "formula_parse_error_details", "other_error_details",
)  # fmt: skip


@dataclass
class Outcome:
    reward: float = 0.0
    errors: dict[str, Any] = field(default_factory=dict)  # the flags raised, and their details
    sub_rewards: dict[str, float] = field(default_factory=dict)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # per grader model
    sampled_model_name: str | None = None
    # Each failure in words ("code: python_grader_runtime_error: KeyError …"): a reward's row error.
    problems: list[str] = field(default_factory=list)

    def fail(self, flag: str, details: str | None = None, key: str | None = None) -> Outcome:
        """Raise `flag` (reward 0), with its details under `key` (default `<flag>_details`)."""
        self.reward = 0.0
        self.errors[flag] = True
        if details is not None:
            self.errors[key or f"{flag}_details"] = details[:2000]
        self.problems.append(f"{flag}: {details[:2000]}" if details else flag)
        return self

    def add_usage(self, model: str, prompt: int, completion: int) -> None:
        counts = self.usage.setdefault(
            model,
            {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cached_tokens": 0},
        )
        counts["prompt_tokens"] += prompt
        counts["completion_tokens"] += completion
        counts["total_tokens"] += prompt + completion

    def absorb(self, name: str, inner: Outcome) -> None:
        """A multi-grader's part: its reward by name, its errors and tokens added to ours."""
        self.sub_rewards[name] = inner.reward
        self.errors.update({key: value for key, value in inner.errors.items() if value})
        self.problems += [f"{name}: {problem}" for problem in inner.problems]
        for model, counts in inner.usage.items():
            self.add_usage(model, counts["prompt_tokens"], counts["completion_tokens"])

    def errors_body(self) -> dict[str, Any]:
        return {**dict.fromkeys(FLAGS, False), **dict.fromkeys(DETAILS), **self.errors}

    def token_usage(self) -> int | None:
        total = sum(counts["total_tokens"] for counts in self.usage.values())
        return total if self.usage else None
