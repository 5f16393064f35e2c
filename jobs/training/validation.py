"""Validation of a job's model at step 0, every evalInterval steps and at the end.

In a group every rank validates its share of the rows (rank r takes rows r, r + N, …) and rank 0
puts the answers back in order, keeps them for the checkpoint's page and returns the summary:
N processes validate N times faster, and a sharded model (FSDP, ZeRO-3), whose forward pass needs
every rank, is never run by one rank alone. With one process it is the plain evaluation.
"""

from __future__ import annotations

import time
from typing import Any

from transformers import PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from jobs.models import Job
from jobs.registry.loading import SamplingSettings
from jobs.training.evaluation import evaluate_loaded, pick_rows, summarize
from jobs.training.group import gather, is_main, rank, world_size
from jobs.training.reconnect import reconnecting
from jobs.training.validation_answers import save_answers
from rewards.types import RewardResult


class Validator:
    def __init__(
        self,
        job: Job,
        tokenizer: PreTrainedTokenizerBase,
        rows: list[dict[str, Any]],
        samples: int | None,
        sampling: SamplingSettings,
    ) -> None:
        self.job, self.tokenizer, self.sampling = job, tokenizer, sampling
        self.rows = pick_rows(rows, samples, sampling.seed)  # the same rows each time

    def __call__(self, model: PreTrainedModel, step: int | None = None) -> dict[str, Any]:
        """Validate `model` (every rank of a group calls this together); with a step, the answers
        are kept for that checkpoint's page. The summary on rank 0, {} on the others."""
        started, was_training = time.monotonic(), model.training
        model.eval()
        mine, kept = self.rows[rank() :: world_size()], {}
        evaluate_loaded(
            model,
            self.tokenizer,
            mine,
            self.job.reward_version,
            self.sampling,
            on_rows=lambda _, answers, results: kept.update(answers=answers, results=results),
        )
        model.train(was_training)
        parts = gather((kept["answers"], kept["results"]))
        if not is_main():
            return {}
        answers, results = in_row_order(parts, len(self.rows))
        if step is not None:
            reconnecting(
                lambda: save_answers(self.job, step, self.rows, answers, results),
                f"validation answers of step {step}",
            )
        threshold = self.job.reward_version.pass_threshold
        return summarize(results, threshold, time.monotonic() - started).summary()


def in_row_order(
    parts: list[tuple[list[str], list[RewardResult]]], rows: int
) -> tuple[list[str], list[RewardResult]]:
    """Rank r answered rows r, r + N, …: put every rank's answers back in the rows' order."""
    world = len(parts)
    answers = [parts[i % world][0][i // world] for i in range(rows)]
    results = [parts[i % world][1][i // world] for i in range(rows)]
    return answers, results
