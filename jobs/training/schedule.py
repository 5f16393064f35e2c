"""How long a job trains, computed once for both sides: the wizard's review estimate and the
engine's `total_steps` call these, so the two cannot disagree (they once said 189 and 186).

The rules follow what TRL's GRPOTrainer does on one process: its sampler takes whole groups of
`batchSize / trainingSamplePerPrompt` prompts and drops the incomplete last one (so an epoch is
rows // prompts steps, not a rounded-up count), and a positive maxSteps replaces the epoch count
entirely, as Transformers' `max_steps` does. Training rows are the rows left after the validation
hold-out and after skipping prompts longer than maxPromptLength.

No torch or transformers import here: the web process plans jobs too.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any

from jobs.datasets.tools import prompt_token_count
from jobs.training.hyperparameters import Hyperparameters

Row = dict[str, Any]


def prompts_per_step(hp: Hyperparameters) -> int:
    return hp.batch_size // hp.training_sample_per_prompt


def steps_per_epoch(train_rows: int, hp: Hyperparameters) -> int:
    return train_rows // prompts_per_step(hp)


def total_steps(train_rows: int, hp: Hyperparameters) -> int:
    """The optimizer steps a job takes on `train_rows` usable training rows."""
    return hp.max_steps or steps_per_epoch(train_rows, hp) * hp.epoch_count


def held_out(count: int, fraction: float, seed: int) -> set[int]:
    """Indexes of the rows held out for validation: a seeded shuffle, the first ceil(n·f)."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return set(order[: math.ceil(count * fraction)])


def prompt_length(tokenizer: Any, row: Row) -> int:
    """Tokens of a row's prompt as training sees it: the count the job's creation checks too.

    (Counting `apply_chat_template`'s result directly measured its BatchEncoding, which is no
    dict: every prompt was "2 tokens" and none was ever skipped.)
    """
    return prompt_token_count(tokenizer, row)


def usable_rows(tokenizer: Any, rows: Iterable[Row], limit: int) -> tuple[int, int]:
    """(rows that fit maxPromptLength, rows skipped as longer): what training keeps."""
    kept = skipped = 0
    for row in rows:
        if prompt_length(tokenizer, row) <= limit:
            kept += 1
        else:
            skipped += 1
    return kept, skipped
