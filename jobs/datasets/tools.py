"""What can be done with a stored dataset: page through it, split it, measure its prompts, remove
it. Every function takes a dataset its caller already fetched for the owner."""

from __future__ import annotations

import json
import math
import random
import statistics
from itertools import islice
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q

from jobs.datasets.formats import prompt_messages
from jobs.datasets.importer import DatasetError, check_name, import_lines
from jobs.datasets.storage import iter_rows
from jobs.models import Dataset, Job, ModelEntry
from jobs.registry.loading import load_tokenizer, tokenizer_dir

STATS_ROWS = 20_000  # token statistics read at most this many rows (they are a preview)
HISTOGRAM_BINS = 30


def page_of_rows(dataset: Dataset, offset: int, limit: int) -> list[dict[str, Any]]:
    return list(islice(iter_rows(dataset.path), offset, offset + limit))


def split_dataset(
    owner: AbstractBaseUser, dataset: Dataset, fraction: float, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Two new datasets, `<name>-train` and `<name>-validation`: a seeded random split."""
    if not 0 < fraction < 1:
        raise DatasetError("The validation fraction must be between 0 and 1, e.g. 0.1.")
    rows = [json.dumps(row, ensure_ascii=False).encode() for row in iter_rows(dataset.path)]
    held_out = max(1, round(len(rows) * fraction))
    if held_out >= len(rows):
        raise DatasetError(f"{dataset.name} has {len(rows)} rows: too few to split.")
    chosen = set(random.Random(seed).sample(range(len(rows)), held_out))
    names = [check_name(owner, f"{dataset.name}-{part}") for part in ("train", "validation")]
    note = f"Split of {dataset.name} (seed {seed}, {fraction:g} held out)"
    train, _ = import_lines(
        owner, names[0], (r for i, r in enumerate(rows) if i not in chosen), description=note
    )
    validation, _ = import_lines(
        owner, names[1], (r for i, r in enumerate(rows) if i in chosen), description=note
    )
    assert train is not None and validation is not None
    return train, validation


def remove_dataset(dataset: Dataset) -> None:
    used = Job.objects.filter(Q(train_dataset=dataset) | Q(validation_dataset=dataset)).count()
    if used:
        raise DatasetError(f"{used} job(s) use {dataset.name}; it stays for their record.")
    Path(dataset.path).unlink(missing_ok=True)
    dataset.delete()


def prompt_lengths(dataset: Dataset, entry: ModelEntry, rows: int = STATS_ROWS) -> list[int]:
    """Prompt lengths in `entry`'s tokenizer, chat template applied, for the first `rows` rows."""
    tokenizer = load_tokenizer(tokenizer_dir(entry))
    return [
        len(_prompt_ids(tokenizer, prompt_messages(row)))
        for row in islice(iter_rows(dataset.path), rows)
    ]


def token_stats(dataset: Dataset, entry: ModelEntry) -> dict[str, Any]:
    """Prompt-length statistics in `entry`'s tokenizer, kept on the dataset."""
    stats = summarize_lengths(prompt_lengths(dataset, entry))
    stats["context_length"] = entry.context_length
    dataset.token_stats = {**dataset.token_stats, entry.name: stats}
    dataset.save(update_fields=["token_stats"])
    return stats


def prompt_token_count(tokenizer: Any, row: dict[str, Any]) -> int:
    """Tokens of a row's prompt, chat template and generation prompt included: the one count
    behind token stats, the long-prompt check at creation and what training skips."""
    return len(_prompt_ids(tokenizer, prompt_messages(row)))


def _prompt_ids(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        text = "\n".join(m["content"] for m in messages)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def summarize_lengths(lengths: list[int]) -> dict[str, Any]:
    """Summary numbers and a histogram of prompt lengths (tokens)."""
    if not lengths:
        return {"rows": 0}
    ordered = sorted(lengths)
    width = max(1, math.ceil((ordered[-1] - ordered[0] + 1) / HISTOGRAM_BINS))
    counts: dict[int, int] = {}
    for length in ordered:
        start = ordered[0] + (length - ordered[0]) // width * width
        counts[start] = counts.get(start, 0) + 1
    return {
        "rows": len(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "mean": round(statistics.fmean(ordered), 1),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)],
        "histogram": {"starts": list(counts), "counts": list(counts.values()), "width": width},
        "lengths_over": {str(n): sum(1 for x in ordered if x > n) for n in (256, 512, 1024, 2048)},
    }
