"""Turn a job's datasets into training prompts and validation rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from datasets import Dataset as HFDataset
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from jobs.datasets.formats import prompt_messages
from jobs.datasets.storage import read_rows
from jobs.models import Job
from jobs.training.hyperparameters import Hyperparameters
from jobs.training.schedule import held_out, prompt_length

Row = dict[str, Any]


@dataclass
class JobData:
    train: list[Row]
    validation: list[Row]
    skipped_long: int  # training rows whose prompt exceeds maxPromptLength


def split_rows(job: Job, hp: Hyperparameters | None = None) -> tuple[list[Row], list[Row]]:
    """Training and validation rows; `hp` defaults to the job's snapshot (for callers without)."""
    rows = read_rows(job.train_dataset.path)
    if job.validation_dataset is not None:
        return rows, read_rows(job.validation_dataset.path)
    seed = (hp or Hyperparameters.of_snapshot(job.config)).seed
    validation = held_out(len(rows), job.validation_split, seed)  # shared with the wizard
    return (
        [row for i, row in enumerate(rows) if i not in validation],
        [row for i, row in enumerate(rows) if i in validation],
    )


def prepare(job: Job, tokenizer: PreTrainedTokenizerBase, hp: Hyperparameters) -> JobData:
    train, validation = split_rows(job, hp)
    limit = hp.max_prompt_length
    kept = [row for row in train if prompt_length(tokenizer, row) <= limit]
    return JobData(kept, validation, skipped_long=len(train) - len(kept))


def to_hf_dataset(rows: list[Row]) -> HFDataset:
    """TRL reads `prompt` (chat messages); the whole row travels as JSON for the reward."""
    return HFDataset.from_list(
        [{"prompt": prompt_messages(row), "row": json.dumps(row)} for row in rows]
    )
