"""Effectiveness: base vs tuned validation accuracy on the demo tasks, after a default CPU job.

Each task runs `manage.py train examples/<task>.yaml` (the workers' task, in this process) in a
fresh data directory with the cached starter model, then compares the published model's
validation to the base model's (step 0). Goal: tuned/base ≥ 2.0 on each task (Bedrock's claimed
average gain is 1.66×), each job within 5 minutes on 2 cores. Also reports the validation mean
reward and the mean completion length (tokens), before and after: the base and the published
model answer the validation prompts again with the job's sampling settings and seed.

    .venv/bin/python bench/effectiveness.py [--tasks arithmetic extraction]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time

from common import ROOT, environment, manage, mark, prepare_data_dir, script, shell


def run_task(task: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{task}-") as data_dir:
        env = environment(data_dir)
        prepare_data_dir(env)
        started = time.monotonic()
        done = subprocess.run(
            manage("train", str(ROOT / "examples" / f"{task}.yaml")),
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        summary["wall_seconds"] = round(time.monotonic() - started, 1)
        # the base and the published model answer the validation prompts again: answer lengths
        summary["lengths"] = shell(env, script("lengths"))
        return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["arithmetic", "extraction"])
    args = parser.parse_args()
    ratios, slowest = [], 0.0
    print(
        f"{'task':<12}{'base acc':>9}{'tuned acc':>10}{'ratio':>7}{'mean reward':>14}"
        f"{'answer tokens':>15}{'steps':>7}{'s':>6}"
    )
    for task in args.tasks:
        s = run_task(task)
        assert s["status"] == "completed", s
        base, final, lengths = s["base"], s["final"], s["lengths"]
        ratio = final["accuracy"] / max(base["accuracy"], 1e-9)
        ratios.append(ratio)
        slowest = max(slowest, s["wall_seconds"])
        reward = f"{base['mean_reward']:.2f}→{final['mean_reward']:.2f}"
        length = f"{lengths['base']:.1f}→{lengths['tuned']:.1f}"
        print(
            f"{task:<12}{base['accuracy']:>9.3f}{final['accuracy']:>10.3f}{ratio:>7.2f}"
            f"{reward:>14}{length:>15}{s['steps']:>7}{s['wall_seconds']:>6.0f}"
        )
    worst = min(ratios)
    print(
        f"effectiveness: {worst:.2f}× tuned/base validation accuracy, worst task (goal ≥ 2.0; "
        f"Bedrock claims 1.66) {mark(worst >= 2.0)}; slowest job {slowest / 60:.1f} min "
        f"(goal ≤ 5) {mark(slowest <= 300)}"
    )


if __name__ == "__main__":
    main()
