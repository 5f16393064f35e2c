"""Build the starter artifacts: demo datasets, a tokenizer and the warmed-up `starter` model.

Artifacts go to `RFT_STARTER_CACHE/v<recipe>-seed<seed>/` (default: inside the data dir), written to
a temporary directory and renamed into place only when complete, under a file lock, so concurrent
or interrupted builds never leave a half-written model behind. Same seed, same machine: same bytes.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import random
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from django.conf import settings
from tqdm import tqdm

from jobs.starter import warmup
from jobs.starter.tasks import TASKS, held_out_rows, iter_rows, make_warmup_pairs
from jobs.starter.tokenizer import build_tokenizer

# Bump whenever the data or the warm-up recipe changes. 2: a held-out test split per task (train,
# validation and the model are byte-identical to 1's).
RECIPE_VERSION = 2

# Share of warm-up examples per task, times `warmup_pairs_per_task`. Support replies are the
# easiest to imitate and matter least for the RLVR demos, so they get the smallest share.
WARMUP_MIX = {"arithmetic": 1.0, "extraction": 1.1, "support-tone": 0.3}


@dataclass(frozen=True)
class Recipe:
    seed: int = 0
    train_rows: int = 500
    validation_rows: int = 100
    test_rows: int = 200  # held out: never trained on nor used to choose a checkpoint
    warmup_pairs_per_task: int = 5000
    vocab_size: int = 1024
    model: warmup.WarmupConfig = field(default_factory=warmup.WarmupConfig)

    def key(self) -> str:
        return f"v{RECIPE_VERSION}-seed{self.seed}"


def cache_root() -> Path:
    return Path(settings.STARTER_CACHE)


def artifacts_dir(recipe: Recipe) -> Path:
    return cache_root() / recipe.key()


def is_built(directory: Path) -> bool:
    return (directory / "manifest.json").exists()


@contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits, then finds the result
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_artifacts(recipe: Recipe, show_progress: bool = True) -> Path:
    target = artifacts_dir(recipe)
    if is_built(target):
        return target
    with _build_lock(cache_root()):
        if is_built(target):
            return target
        scratch = target.with_name(target.name + ".building")
        shutil.rmtree(scratch, ignore_errors=True)
        _build(scratch, recipe, show_progress)
        shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)
    return target


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_datasets(directory: Path, recipe: Recipe) -> None:
    data = directory / "datasets"
    data.mkdir(parents=True)
    for task in TASKS:
        rows = iter_rows(task, recipe.seed)
        train = list(itertools.islice(rows, recipe.train_rows))
        validation = list(itertools.islice(rows, recipe.validation_rows))
        # Drawn after the others from the same stream, so train and validation are the rows they
        # were before the test split existed (and the warm-up, from its own stream, is untouched).
        test = held_out_rows(rows, train + validation, recipe.test_rows)
        for split, split_rows in (("train", train), ("validation", validation), ("test", test)):
            _write_jsonl(data / f"{task}-{split}.jsonl", split_rows)


def _build(directory: Path, recipe: Recipe, show_progress: bool) -> None:
    started = time.monotonic()
    random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    _write_datasets(directory, recipe)
    pairs = [
        pair
        for task in TASKS
        for pair in make_warmup_pairs(
            task, round(recipe.warmup_pairs_per_task * WARMUP_MIX[task]), recipe.seed
        )
    ]
    corpus = [m["content"] for messages, _ in pairs for m in messages] + [a for _, a in pairs]
    tokenizer = build_tokenizer(corpus, recipe.vocab_size)
    encoded = [warmup.encode_pair(tokenizer, messages, answer) for messages, answer in pairs]
    model = warmup.new_model(tokenizer, recipe.model)
    bar = tqdm(total=recipe.model.steps, desc="warm-up", unit="step", disable=not show_progress)

    def on_step(step: int, loss: float) -> None:
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss:.3f}")

    warmup.train(model, tokenizer, encoded, recipe.model, recipe.seed, on_step)
    bar.close()
    model_dir = directory / "models" / "starter"
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    manifest = {
        "recipe_version": RECIPE_VERSION,
        "recipe": asdict(recipe),
        "parameters": sum(p.numel() for p in model.parameters()),
        "build_seconds": round(time.monotonic() - started, 1),
        "torch": torch.__version__,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
