"""Effectiveness: base vs tuned validation accuracy on the demo tasks, after a default CPU job.

Each task runs `manage.py train examples/<task>.yaml` (the workers' task, in this process) in a
fresh data directory with the cached starter model, then compares the published model's
validation to the base model's (step 0). Goal: tuned/base ≥ 2.0 on each task (Bedrock's claimed
average gain is 1.66×). Also reports mean reward and completion length before and after.

    .venv/bin/python bench/effectiveness.py [--tasks arithmetic extraction]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The starter objects belong to the first admin (password from DJANGO_SUPERUSER_PASSWORD).
ADMIN = ["createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"]


def run_task(task: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{task}-") as data_dir:
        env = {
            **os.environ,
            "RFT_DATA_DIR": data_dir,
            "RFT_STARTER_CACHE": os.environ.get("RFT_STARTER_CACHE", str(ROOT / ".cache/starter")),
            "DJANGO_SUPERUSER_PASSWORD": "bench-only",
            "DJANGO_SETTINGS_MODULE": "rftconsole.settings",
        }
        manage = [sys.executable, str(ROOT / "manage.py")]
        for command in (["migrate", "-v0"], ADMIN, ["bootstrap_starter", "--no-progress"]):
            subprocess.run([*manage, *command], env=env, check=True, capture_output=True)
        started = time.monotonic()
        done = subprocess.run(
            [*manage, "train", str(ROOT / "examples" / f"{task}.yaml")],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        summary["wall_seconds"] = round(time.monotonic() - started, 1)
        return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["arithmetic", "extraction"])
    args = parser.parse_args()
    ratios = []
    header = f"{'task':<12}{'base acc':>9}{'tuned acc':>10}{'ratio':>7}{'reward':>15}"
    print(f"{header}{'steps':>7}{'s':>6}")
    for task in args.tasks:
        s = run_task(task)
        base, final = s["base"], s["final"]
        ratio = final["accuracy"] / max(base["accuracy"], 1e-9)
        ratios.append(ratio)
        reward = f"{base['mean_reward']:.2f}→{final['mean_reward']:.2f}"
        print(
            f"{task:<12}{base['accuracy']:>9.3f}{final['accuracy']:>10.3f}{ratio:>7.2f}"
            f"{reward:>15}{s['steps']:>7}{s['wall_seconds']:>6.0f}"
        )
    worst = min(ratios)
    verdict = "PASS" if worst >= 2.0 else "FAIL"
    print(f"effectiveness: {worst:.2f}× tuned/base accuracy, worst task (goal ≥ 2.0) {verdict}")


if __name__ == "__main__":
    main()
