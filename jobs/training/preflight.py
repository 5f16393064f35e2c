"""The pre-flight checks a job passes before it is created: models ready, datasets large enough,
prompts within limits, the reward scoring two real rows.

Every check runs before any weights load and fails with a message naming the field, so a bad
config costs seconds, not a GPU queue slot.
"""

from __future__ import annotations

import json
import math
from itertools import islice
from typing import Any

from jobs.datasets.storage import iter_rows
from jobs.datasets.tools import prompt_lengths
from jobs.models import Dataset, ModelEntry
from jobs.training.hyperparameters import Hyperparameters
from rewards.models import RewardVersion
from rewards.scoring import score_batch
from rewards.types import RewardConfigError, Sample
from rftconsole.models import WorkerReport


class JobConfigError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


def default_profile() -> str:
    """GPU defaults when a `gpu`-queue worker has reported a CUDA device, else CPU defaults."""
    gpu = WorkerReport.objects.filter(queue="gpu", accelerator__startswith="cuda").exists()
    return "gpu" if gpu else "cpu"


def train_row_count(dataset: Dataset, validation: Dataset | None, split: float) -> int:
    return (
        dataset.row_count
        if validation
        else dataset.row_count - math.ceil(dataset.row_count * split)
    )


def preflight(
    base: ModelEntry,
    dataset: Dataset,
    validation: Dataset | None,
    split: float,
    reward: RewardVersion,
    hp: Hyperparameters,
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if base.status != ModelEntry.Status.READY:
        errors["base_model"] = f"model {base.name!r} is {base.get_status_display().lower()}"
    needed = hp.max_prompt_length + hp.inference_max_tokens
    if base.context_length and needed > base.context_length:
        errors["inferenceMaxTokens"] = (  # errors name fields as users type them: Bedrock's names
            f"maxPromptLength ({hp.max_prompt_length}) + inferenceMaxTokens "
            f"({hp.inference_max_tokens}) = {needed} tokens exceeds the context of "
            f"{base.name!r} ({base.context_length} tokens)"
        )
    if validation is None and not 0.0 < split < 0.5:
        errors["validation_split"] = "without a validation dataset, hold out between 0 and 0.5"
    prompts_per_step = hp.batch_size // hp.training_sample_per_prompt
    rows = train_row_count(dataset, validation, split)
    if rows < prompts_per_step:
        errors["train_dataset"] = (
            f"{rows} training rows are fewer than one batch ({prompts_per_step} prompts = "
            f"batchSize {hp.batch_size} / trainingSamplePerPrompt "
            f"{hp.training_sample_per_prompt})"
        )
    reward_error = reward_dry_run(reward, dataset)
    if reward_error:
        errors["reward"] = reward_error
    return errors


def long_prompts(base: ModelEntry, dataset: Dataset, limit: int) -> int:
    """Rows whose prompt exceeds `limit` tokens in the base model's tokenizer (first 20,000);
    an error when that is every row, since nothing would be left to train on."""
    lengths = prompt_lengths(dataset, base)
    too_long = sum(1 for length in lengths if length > limit)
    if lengths and too_long == len(lengths):
        raise JobConfigError(
            {
                "train_dataset": f"every prompt is longer than maxPromptLength ({limit} tokens "
                f"in {base.name!r}'s tokenizer); raise it or shorten the prompts"
            }
        )
    return too_long


def reward_dry_run(reward: RewardVersion, dataset: Dataset) -> str:
    """Score the first 2 rows (their reference answer as the answer): it must run cleanly."""
    rows = list(islice(iter_rows(dataset.path), 2))
    samples = [
        Sample(str(i), _as_text(row.get("reference_answer")), row) for i, row in enumerate(rows)
    ]
    try:
        results = score_batch(reward, samples)
    except RewardConfigError as error:
        return f"{reward} cannot run: {error}"
    failed = [result.error for result in results if result.error]
    return f"{reward} failed its dry run on 2 rows: {failed[0]}" if failed else ""


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
