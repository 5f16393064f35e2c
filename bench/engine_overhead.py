"""Engine overhead: our job engine vs a plain `trl.GRPOTrainer` script, side by side.

Both train the cached starter model on the arithmetic demo rows with the same GRPO settings,
LoRA adapter, precision (fp32 on a CPU) and seed, for the same number of steps. Ours runs through
`manage.py train` (the workers' Celery task, in-process) with everything on: database metrics,
live events (an embedded Redis is running, so every point is really published), rollout storage,
the reward bridge. The plain script calls the same grader function directly. Both time a step the
same way: from one logged step to the next. Runs alternate (ours first, then plain first) to
spread drift on a noisy machine.

Reported: the median over repeats of the median seconds per step (ratio, goal ≤ 1.05) and the
largest difference between the two per-step mean-reward curves (goal ≈ 0: same seed, same data
order, same reward, same numerics). With --profile, one more run of ours under cProfile shows
what our per-step code costs (the callback, the reward bridge) next to the step itself.

    .venv/bin/python bench/engine_overhead.py [--steps 20] [--repeats 5] [--profile]
"""

from __future__ import annotations

import argparse
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import (
    TRAINING_SETTINGS,
    EmbeddedRedis,
    environment,
    manage,
    mark,
    plain_trl_argv,
    prepare_data_dir,
    script,
    shell,
)

Stats = dict[tuple[str, int, str], tuple]  # pstats: function → (cc, nc, tt, ct, callers)


def job_config(data_dir: Path, steps: int) -> Path:
    config = data_dir / "job.json"
    config.write_text(json.dumps({
        "name": "overhead", "base_model": "starter", "train_dataset": "arithmetic-train",
        "validation_dataset": "arithmetic-validation", "reward": "arithmetic",
        "hyperparameters": {**TRAINING_SETTINGS, "maxSteps": steps},
    }))  # fmt: skip
    return config


def ours(steps: int, data_dir: Path, profile: Path | None = None) -> dict:
    env = environment(data_dir)
    command = manage("train", str(job_config(data_dir, steps)))
    if profile is not None:
        command[1:1] = ["-m", "cProfile", "-o", str(profile)]
    with EmbeddedRedis(data_dir):  # live events on, as under `up`
        subprocess.run(command, env=env, check=True, capture_output=True)
    return shell(env, script("our_steps"))


def plain(steps: int, data_dir: Path) -> dict:
    done = subprocess.run(
        plain_trl_argv(steps, data_dir / "plain", TRAINING_SETTINGS),
        env=environment(data_dir), check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def steady(run: dict) -> float:
    return statistics.median(run["step_seconds"][1:])  # step 1 includes warm-up on both sides


def find(stats: Stats, suffix: str, name: str) -> tuple[str, int, str]:
    return next(key for key in stats if key[0].endswith(suffix) and key[2] == name)


def profile_table(steps: int, data_dir: Path) -> None:
    """Milliseconds per step in our own per-step code, from one profiled run of ours."""
    output = data_dir / "ours.prof"
    run = ours(steps, data_dir, output)
    stats: Stats = pstats.Stats(str(output)).stats  # type: ignore[attr-defined]
    on_log = find(stats, "training/callback.py", "on_log")
    step_end = find(stats, "training/callback.py", "on_step_end")
    evaluate = find(stats, "training/engine.py", "evaluate")
    record = find(stats, "training/callback.py", "record_metric")
    send = find(stats, "jobs/events.py", "send_job_event")
    bridge = find(stats, "training/reward_bridge.py", "__call__")
    validation = stats[evaluate][4].get(step_end, (0, 0, 0, 0))[3]  # the last step validates
    rows = {
        "callback on_log: rollouts, metric point, job row": stats[on_log][3] / steps,
        "  of which metric point and live event (record_metric)": per_call(stats[record]),
        "    of which the live event (send_job_event)": per_call(stats[send]),
        "callback on_step_end: stop/pause check": (stats[step_end][3] - validation) / steps,
        "reward bridge: score_batch and bookkeeping": stats[bridge][3] / steps,
    }
    step = statistics.median(run["step_seconds"][1:])
    print(f"\nours under cProfile, {steps} steps, median step {step:.3f} s; our code per step:")
    for label, seconds in rows.items():
        print(f"  {label:<56}{seconds * 1000:>7.1f} ms")
    ours_total = rows["callback on_log: rollouts, metric point, job row"] + sum(
        rows[k] for k in list(rows)[3:5]
    )
    print(f"  {'total':<56}{ours_total * 1000:>7.1f} ms ({ours_total / step:.1%} of a step)")


def per_call(row: tuple) -> float:
    return row[3] / max(row[1], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="one more run of ours, profiled")
    args = parser.parse_args()
    ratios, differences = [], []
    print(f"{'run':<5}{'ours s/step':>12}{'plain s/step':>13}{'ratio':>7}{'max reward diff':>17}")
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as directory:
        data_dir = Path(directory)
        prepare_data_dir(environment(data_dir))
        for repeat in range(1, args.repeats + 1):
            if repeat % 2:
                a = ours(args.steps, data_dir)
                b = plain(args.steps, data_dir)
            else:
                b = plain(args.steps, data_dir)
                a = ours(args.steps, data_dir)
            mine, theirs = steady(a), steady(b)
            difference = max(abs(x - y) for x, y in zip(a["rewards"], b["rewards"], strict=True))
            ratios.append(mine / theirs)
            differences.append(difference)
            print(
                f"{repeat:<5}{mine:>12.3f}{theirs:>13.3f}{mine / theirs:>7.3f}{difference:>17.4f}"
            )
        if args.profile:
            profile_table(args.steps, data_dir)
    ratio, worst = statistics.median(ratios), max(differences)
    ok = ratio <= 1.05 and worst < 1e-6
    print(
        f"engine overhead: {ratio:.3f}× seconds per step vs plain TRL, max reward-curve "
        f"difference {worst:.4f} (goal ≤ 1.05, ≈ 0) {mark(ok)}"
    )


if __name__ == "__main__":
    sys.exit(main())
