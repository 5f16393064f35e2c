"""Effectiveness: base vs tuned accuracy on each demo task's held-out test split, 3 seeds each.

For each task and seed, `manage.py train examples/<task>.yaml` (the workers' task, in this process)
runs with `hyperparameters.seed` set to the seed (its sampling, shuffling and LoRA initialisation
follow it) in a fresh data dir with the cached starter model. Then the base model, the published
model (the checkpoint the job chose by validation reward) and the job's last checkpoint answer the
200 rows of `<task>-test`, which no job reads and which shares no prompt with train or validation,
with the job's sampling settings and seed: the same rows and the same work on both sides.

The headline per task is tuned/base test accuracy of the published model, the median of the
seeds with their range; the same for the last checkpoint; and, for comparison only, the old
figure: validation accuracy of the checkpoint chosen on those same validation rows (it flatters
the tuned model). Goal: the worst task's median test ratio ≥ 2.0 (Bedrock's claimed average gain
is 1.66×), each job within 5 minutes on 2 cores. Also the test mean reward and the mean answer
length (tokens), base → published.

    .venv/bin/python bench/effectiveness.py [--tasks arithmetic extraction] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import ROOT, environment, manage, mark, prepare_data_dir, script, shell

GOAL_RATIO, GOAL_SECONDS = 2.0, 300


def seeded_config(task: str, seed: int, directory: Path) -> Path:
    """examples/<task>.yaml with its seed replaced (the job's name says which seed)."""
    config = yaml.safe_load((ROOT / "examples" / f"{task}.yaml").read_text())
    config["name"] = f"{config['name']}-seed{seed}"
    config["hyperparameters"]["seed"] = seed
    path = directory / f"{task}-seed{seed}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_job(task: str, seed: int) -> dict[str, Any]:
    """One job, then its base, published and last models on the test split."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{task}-{seed}-") as data_dir:
        env = environment(data_dir)
        prepare_data_dir(env)
        config = seeded_config(task, seed, Path(data_dir))
        started = time.monotonic()
        done = subprocess.run(
            manage("train", str(config)), env=env, check=True, capture_output=True, text=True
        )
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        summary["wall_seconds"] = round(time.monotonic() - started, 1)
        assert summary["status"] == "completed", summary
        summary["test"] = shell(env, script("held_out"), BENCH_DATASET=f"{task}-test")
        return summary


def ratio(tuned: float, base: float) -> float:
    return tuned / max(base, 1e-9)


def ratios(run: dict[str, Any]) -> dict[str, float]:
    test = run["test"]
    return {
        "published": ratio(test["published"]["accuracy"], test["base"]["accuracy"]),
        "last": ratio(test["last"]["accuracy"], test["base"]["accuracy"]),
        "validation": ratio(run["final"]["accuracy"], run["base"]["accuracy"]),
    }


def print_seed_header() -> None:
    print(
        "test: the held-out split (200 rows); validation: the 100 rows the checkpoint was chosen "
        "on\n"
        f"{'task':<12}{'seed':>5}{'base':>7}{'published @step':>20}{'last @step':>20}"
        f"{'validation (chosen on it)':>28}{'test reward':>13}{'tokens':>12}{'min':>6}"
    )


def print_seed_row(task: str, seed: int, run: dict[str, Any]) -> None:
    test, r = run["test"], ratios(run)
    base, published, last = test["base"], test["published"], test["last"]
    pub = f"{published['accuracy']:.3f} {r['published']:.2f}× @{published['step']}"
    lst = f"{last['accuracy']:.3f} {r['last']:.2f}× @{last['step']}"
    val = f"{run['base']['accuracy']:.2f}→{run['final']['accuracy']:.2f} {r['validation']:.2f}×"
    reward = f"{base['mean_reward']:.2f}→{published['mean_reward']:.2f}"
    tokens = f"{base['answer_tokens']:.1f}→{published['answer_tokens']:.1f}"
    print(
        f"{task:<12}{seed:>5}{base['accuracy']:>7.3f}{pub:>20}{lst:>20}{val:>28}"
        f"{reward:>13}{tokens:>12}{run['wall_seconds'] / 60:>6.1f}",
        flush=True,
    )


def spread(values: list[float]) -> str:
    """Median of the seeds with their range."""
    return f"{statistics.median(values):.2f}× [{min(values):.2f}–{max(values):.2f}]"


def print_summary(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per task: median [min–max] of each ratio over the seeds. Returns the medians."""
    print(
        f"\ntuned/base accuracy, median of {len(next(iter(results.values())))} seed(s) "
        "[min–max]\n"
        f"{'task':<12}{'test, published':>22}{'test, last checkpoint':>24}"
        f"{'validation (chosen on it)':>28}{'slowest job':>13}"
    )
    medians = {}
    for task, runs in results.items():
        by_kind = {kind: [ratios(run)[kind] for run in runs] for kind in ratios(runs[0])}
        slowest = max(run["wall_seconds"] for run in runs)
        print(
            f"{task:<12}{spread(by_kind['published']):>22}{spread(by_kind['last']):>24}"
            f"{spread(by_kind['validation']):>28}{slowest / 60:>9.1f} min"
        )
        medians[task] = {kind: statistics.median(values) for kind, values in by_kind.items()}
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["arithmetic", "extraction"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    print_seed_header()
    results: dict[str, list[dict[str, Any]]] = {}
    for task in args.tasks:
        for seed in args.seeds:
            run = run_job(task, seed)
            results.setdefault(task, []).append(run)
            print_seed_row(task, seed, run)
    medians = print_summary(results)
    worst = min(m["published"] for m in medians.values())
    worst_last = min(m["last"] for m in medians.values())
    slowest = max(run["wall_seconds"] for runs in results.values() for run in runs)
    print(
        f"effectiveness: {worst:.2f}× tuned/base test accuracy, published model, worst task's "
        f"median of {len(args.seeds)} seed(s) (goal ≥ {GOAL_RATIO}; Bedrock claims 1.66) "
        f"{mark(worst >= GOAL_RATIO)}; last checkpoint {worst_last:.2f}×; slowest job "
        f"{slowest / 60:.1f} min (goal ≤ {GOAL_SECONDS // 60}) {mark(slowest <= GOAL_SECONDS)}"
    )


if __name__ == "__main__":
    main()
