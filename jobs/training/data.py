"""Turn a job's datasets into training prompts and validation rows."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datasets import Dataset as HFDataset
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from jobs.datasets.formats import prompt_messages
from jobs.datasets.storage import read_rows
from jobs.models import Job
from jobs.training.hyperparameters import Hyperparameters

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
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held_out = set(order[: math.ceil(len(rows) * job.validation_split)])
    return (
        [row for i, row in enumerate(rows) if i not in held_out],
        [row for i, row in enumerate(rows) if i in held_out],
    )


def prompt_length(tokenizer: PreTrainedTokenizerBase, row: Row) -> int:
    ids = tokenizer.apply_chat_template(prompt_messages(row), add_generation_prompt=True)
    # transformers 5 returns a BatchEncoding (a Mapping, not a dict): len() of it counts its keys.
    return len(ids["input_ids"] if isinstance(ids, Mapping) else ids)


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
