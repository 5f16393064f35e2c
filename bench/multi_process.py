"""Multi-process jobs: the same job as a group of 2 processes vs 1 process, side by side.

Both run `manage.py train` (the workers' task, in this process; with numProcesses 2 it launches
the torchrun group) on the arithmetic demo with the bench settings (common.TRAINING_SETTINGS:
batch 64 = 8 prompts × 8 samples, lr 1e-3, 48 tokens, LoRA 16, seed 0) for the same number of
steps, one after the other in one fresh data dir with the cached starter model. A step is the same
batch whatever the process count (each rank takes batchSize / numProcesses), so both sides do the
same work per step. evalInterval is 100, above the step count: the base is validated at step 0 and
the last step is validated and published, so no checkpoint is chosen on the validation rows.

Reported per run: seconds per step, the median of the steps' `step_seconds` from step 2 on (rank
0's callback clock, from one logged step to the next; step 1 holds the warm-up), tokens/s (median,
every rank's tokens), the peak GPU memory of rank 0 (CUDA only), the job's wall time (start-up,
both validations and the group's launch included), validation accuracy base → last step, and
the machine's load average as the job ended (on shared cores the neighbours move s/step: see
BENCHMARKS.md). With --repeats the runs alternate their order and each figure is the median over
the repeats (the speed-up: the ratio of the medians).

Goals: 2 processes at least as fast per step as 1 (speed-up ≥ 1.0×: a second process must pay
for its gradient all-reduce and its own copy of the model, on 2 cores as on 2 GPUs), and every
run's tuned/base accuracy ≥ 1.66 (Bedrock's claimed average gain): splitting a step over
processes must not cost the learning. On CUDA with vLLM importable, `--vllm off on` also runs
each process count with vLLM (colocate mode) and reports its speed-up over transformers'
generate (goal ≥ 1.0×); `off` sets RFT_VLLM=0, which the engine honours.

`--device cpu` (the default, `make bench`) hides any GPU from the jobs (CUDA_VISIBLE_DEVICES=""),
so the figure is the CPU one on every machine; `--device cuda` is for bench/gpu_check.sh.

    .venv/bin/python bench/multi_process.py [--steps 80] [--device cpu|cuda] [--processes 1 2]
                                           [--vllm off on] [--repeats 1] [--budget S]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    TRAINING_SETTINGS,
    EmbeddedRedis,
    environment,
    manage,
    mark,
    prepare_data_dir,
    script,
    shell,
)

GOAL_SPEEDUP, GOAL_RATIO, GOAL_VLLM = 1.0, 1.66, 1.0


@dataclass(frozen=True)
class Run:
    processes: int
    vllm: bool

    def label(self) -> str:
        engine = "vLLM" if self.vllm else "generate"
        return f"{self.processes} process{'es' if self.processes > 1 else ''}, {engine}"


def job_config(directory: Path, steps: int, run: Run) -> Path:
    config = directory / f"job-{run.processes}-{int(run.vllm)}.json"
    hyperparameters = {**TRAINING_SETTINGS, "maxSteps": steps, "numProcesses": run.processes}
    config.write_text(json.dumps({
        "name": f"multiprocess-{run.processes}", "base_model": "starter",
        "train_dataset": "arithmetic-train", "validation_dataset": "arithmetic-validation",
        "reward": "arithmetic", "hyperparameters": hyperparameters,
    }))  # fmt: skip
    return config


class JobTimeout(RuntimeError):
    pass


def run_job(env: dict[str, str], directory: Path, steps: int, run: Run, timeout: float) -> dict:
    """One job through `manage.py train`; its summary line, points and launch record. Past
    `timeout` seconds the job's whole session (torchrun and its ranks too) is killed."""
    job_env = {**env, "RFT_VLLM": "1" if run.vllm else "0"}
    started = time.monotonic()
    process = subprocess.Popen(
        manage("train", str(job_config(directory, steps, run))), env=job_env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise JobTimeout(f"{run.label()}: not done in {timeout:.0f} s, stopped") from None
    wall = time.monotonic() - started
    lines = stdout.strip().splitlines()
    if process.returncode or not lines:
        raise RuntimeError(f"{run.label()}: manage.py train failed:\n{stderr[-3000:]}")
    summary = json.loads(lines[-1])
    if summary["status"] != "completed":
        raise RuntimeError(f"{run.label()}: the job ended {summary['status']}:\n{stdout}")
    stored = shell(env, script("job_points"), BENCH_JOB=str(summary["job"]))
    return {"summary": summary, "wall_seconds": wall, **stored}


def figures(summary: dict[str, Any], points: list[dict[str, Any]]) -> dict[str, float | None]:
    """A run's figures from its summary line and train points: median s/step and tokens/s of the
    steps after the first (warm-up), the largest peak GPU memory (None on CPU), the accuracies."""
    steady = [p for p in points if p["step"] > 1] or points
    memory = [p["gpu_memory_peak_gib"] for p in points if p.get("gpu_memory_peak_gib") is not None]
    base, final = summary["base"]["accuracy"], summary["final"]["accuracy"]
    return {
        "seconds_per_step": statistics.median(p["step_seconds"] for p in steady),
        "tokens_per_second": statistics.median(p["tokens_per_second"] for p in steady),
        "gpu_memory_peak_gib": max(memory) if memory else None,
        "base_accuracy": base,
        "final_accuracy": final,
        "accuracy_ratio": final / max(base, 1e-9),
    }


def merged(repeats: list[dict[str, float | None]]) -> dict[str, float | None]:
    """The median of each figure over the repeats of one run (None stays None)."""
    return {
        key: None if repeats[0][key] is None else statistics.median(r[key] for r in repeats)
        for key in repeats[0]
    }


def speedup(slow: dict[str, Any] | None, fast: dict[str, Any] | None) -> float | None:
    """How many times faster per step `fast` is than `slow` (None unless both ran)."""
    return slow["seconds_per_step"] / fast["seconds_per_step"] if slow and fast else None


def verdict(device: str, results: dict[Run, dict[str, Any]]) -> str:
    """The final line: the speed-up of 2 processes over 1 (same generation engine), vLLM over
    generate (same process count), every run's tuned/base accuracy, each against its goal."""
    parts = []
    for vllm in (False, True):
        one, two = results.get(Run(1, vllm)), results.get(Run(2, vllm))
        ratio = speedup(one, two)
        if ratio is not None:
            seconds = (
                f"median s/step {two['seconds_per_step']:.3f} vs {one['seconds_per_step']:.3f}"
            )
            parts.append(
                f"2 processes {ratio:.2f}× the speed of 1 per step{' with vLLM' if vllm else ''} "
                f"({seconds}; goal ≥ {GOAL_SPEEDUP}) {mark(ratio >= GOAL_SPEEDUP)}"
            )
    if not parts:
        parts.append("2 processes vs 1 not measured (no such pair ran)")
    for processes in (1, 2):
        ratio = speedup(results.get(Run(processes, False)), results.get(Run(processes, True)))
        if ratio is not None:
            parts.append(
                f"vLLM {ratio:.2f}× the speed of generate at {processes} process(es) "
                f"(goal ≥ {GOAL_VLLM}) {mark(ratio >= GOAL_VLLM)}"
            )
    ratios = ", ".join(f"{r['accuracy_ratio']:.2f}× ({run.label()})" for run, r in results.items())
    worst = min(r["accuracy_ratio"] for r in results.values())
    ok = mark(worst >= GOAL_RATIO)
    parts.append(f"tuned/base accuracy {ratios} (goal ≥ {GOAL_RATIO} each) {ok}")
    return f"multiprocess ({device}): " + "; ".join(parts)


def print_header(device: str, steps: int) -> None:
    print(
        f"{device}, {steps} steps per job; s/step and tokens/s: median of steps 2–{steps}; "
        "accuracy: validation, base → last step\n"
        f"{'run':<24}{'s/step':>8}{'tokens/s':>10}{'GPU peak GiB':>14}{'wall min':>10}"
        f"{'accuracy':>14}{'tuned/base':>12}{'load':>6}",
        flush=True,
    )


def print_row(run: Run, figure: dict[str, float | None], wall: float) -> None:
    """One run's figures, and the machine's 1-minute load average as it ended (the job's own
    processes included): on shared cores the neighbours move s/step."""
    memory = figure["gpu_memory_peak_gib"]
    accuracy = f"{figure['base_accuracy']:.2f}→{figure['final_accuracy']:.2f}"
    print(
        f"{run.label():<24}{figure['seconds_per_step']:>8.3f}{figure['tokens_per_second']:>10.0f}"
        f"{'—' if memory is None else f'{memory:.2f}':>14}{wall / 60:>10.1f}{accuracy:>14}"
        f"{figure['accuracy_ratio']:>11.2f}×{os.getloadavg()[0]:>6.1f}",
        flush=True,
    )


def check_device(device: str, run: Run, launch: dict[str, Any]) -> None:
    """The job ran where and how it was asked to (the launch record says)."""
    engine = "vLLM" if run.vllm else "transformers"
    if launch.get("device") != device or not launch.get("generation", "").startswith(engine):
        raise RuntimeError(f"{run.label()} on {device} was asked for, the job ran as {launch}")


def measure(args: argparse.Namespace, runs: list[Run]) -> dict[Run, list[dict[str, Any]]]:
    """Every run, `--repeats` times in alternating order, in one fresh data dir; a run past the
    time left (`--budget`) is stopped and reported, and the figures of the others still count."""
    deadline = time.monotonic() + args.budget if args.budget else None
    extra = {"CUDA_VISIBLE_DEVICES": ""} if args.device == "cpu" else {}
    found: dict[Run, list[dict[str, Any]]] = {run: [] for run in runs}
    with tempfile.TemporaryDirectory(prefix="bench-multiprocess-") as directory:
        env = environment(directory, **extra)
        prepare_data_dir(env)
        with EmbeddedRedis(directory):  # live events on, as under `up`
            for repeat in range(args.repeats):
                for run in runs if repeat % 2 == 0 else runs[::-1]:
                    left = deadline - time.monotonic() if deadline else args.job_timeout
                    try:
                        result = run_job(
                            env, Path(directory), args.steps, run, min(args.job_timeout, left)
                        )
                    except JobTimeout as error:
                        print(f"{error}: this run and the ones after it are not measured")
                        return {run: found_ for run, found_ in found.items() if found_}
                    check_device(args.device, run, result["launch"])
                    figure = figures(result["summary"], result["points"])
                    found[run].append(figure)
                    print_row(run, figure, result["wall_seconds"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--vllm", choices=["off", "on"], nargs="+", default=["off"])
    parser.add_argument("--repeats", type=int, default=1, help="alternating the order")
    parser.add_argument("--job-timeout", type=float, default=600.0, help="seconds per job")
    parser.add_argument("--budget", type=float, default=0.0, help="seconds for all (0: none)")
    args = parser.parse_args()
    runs = [Run(p, v == "on") for v in args.vllm for p in args.processes]
    print_header(args.device, args.steps)
    found = measure(args, runs)
    if not found:
        print(f"multiprocess ({args.device}): nothing measured in the time given ✗")
        return
    print(verdict(args.device, {run: merged(repeats) for run, repeats in found.items()}))


if __name__ == "__main__":
    main()
