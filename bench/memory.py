"""Memory: peak RSS of a training worker vs the plain TRL script, on the same job.

Starts a console like `make up` and sends a training job (the arithmetic demo with the bench
settings, `--steps` steps) to its `gpu` Celery worker through the REST API. Meanwhile a thread
samples, every 50 ms with psutil, the RSS of the worker's whole process tree: Celery's main
process and the pool process that trains (plus any reward sandbox it starts). Then the plain TRL
script (bench/scripts/plain_trl.py, as engine_overhead.py runs it) runs the same model, data,
settings and steps, sampled the same way.

A sum of RSS counts twice the pages that Celery's main process shares with the pool process it
forked (Django and the apps are imported before the fork; copy-on-write), so the worker's cost is
taken as the kernel's own peak (VmHWM) of the training process plus what the main process holds
alone (its USS, after the job); the plain script's cost is its own VmHWM. Both columns are shown.

Ours does more than the plain script in that process: it validates the base model at step 0 and
the final model at the end, saves a checkpoint and publishes the tuned model. Goal: worker cost
/ plain script cost ≤ 1.10.

    .venv/bin/python bench/memory.py [--steps 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil
from common import TRAINING_SETTINGS, Console, environment, job_request, mark, plain_trl_argv

MB = 1024 * 1024


class PeakSampler:
    """The largest sum of RSS over a process tree, sampled every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.largest: dict[int, int] = {}  # pid -> its largest sampled RSS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self.peak = self.sample()  # before the work starts: the idle size
        self.idle = self.peak
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> int:
        total = 0
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        for process in processes:
            try:
                rss = process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            total += rss
            self.largest[process.pid] = max(self.largest.get(process.pid, 0), rss)
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.sample())


def high_water_mark(pid: int) -> int:
    """The kernel's peak resident size of a live process (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def ours(steps: int) -> dict[str, float]:
    with Console("memory") as console:
        session = console.session()
        worker = console.pid_of("gpu-worker")
        with PeakSampler(worker) as sampler:
            job = session.post_json("/api/jobs/", job_request("bench-memory", steps))["id"]
            final = session.wait_for_job(job)
        assert final["status"] == "completed", final
        pool = [pid for pid in sampler.largest if pid != worker]
        trainer = max(pool, key=high_water_mark)  # the pool process that trained
        main_alone = psutil.Process(worker).memory_full_info().uss
        return {
            "idle": sampler.idle / MB,
            "peak": sampler.peak / MB,
            "trainer_hwm": high_water_mark(trainer) / MB,
            "main_uss": main_alone / MB,
            "cost": (high_water_mark(trainer) + main_alone) / MB,
            "processes": len(sampler.largest),
        }


def plain(steps: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-memory-plain-") as data_dir:
        argv = plain_trl_argv(steps, Path(data_dir) / "out", TRAINING_SETTINGS)
        process = subprocess.Popen(
            argv, env=environment(data_dir), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        with PeakSampler(process.pid) as sampler:
            out, _ = process.communicate()
            time.sleep(0.1)
        assert process.returncode == 0, "the plain TRL script failed"
        peak = json.loads(out.decode().strip().splitlines()[-1])["peak_rss_kb"] * 1024 / MB
        return {
            "idle": 0.0,
            "peak": sampler.peak / MB,
            "trainer_hwm": peak,
            "main_uss": 0.0,
            "cost": peak,
            "processes": len(sampler.largest),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.steps} training steps each, {args.repeats} repeats (ours, then plain); MiB")
    print(
        f"{'run':<4}{'side':<20}{'processes':>10}{'idle ΣRSS':>10}{'peak ΣRSS':>10}"
        f"{'trainer VmHWM':>14}{'main USS':>10}{'cost':>7}{'ratio':>7}"
    )
    ratios, summed = [], []
    for run in range(1, args.repeats + 1):
        a, b = ours(args.steps), plain(args.steps)
        ratios.append(a["cost"] / b["cost"])
        summed.append(a["peak"] / b["peak"])
        for name, row in (("ours: gpu worker", a), ("plain TRL script", b)):
            idle = f"{row['idle']:.0f}" if row["idle"] else "—"
            main_uss = f"{row['main_uss']:.0f}" if row["main_uss"] else "—"
            ratio = f"{ratios[-1]:.2f}" if row is a else ""
            print(
                f"{run:<4}{name:<20}{row['processes']:>10}{idle:>10}{row['peak']:>10.0f}"
                f"{row['trainer_hwm']:>14.0f}{main_uss:>10}{row['cost']:>7.0f}{ratio:>7}"
            )
    ratio = statistics.median(ratios)
    print(
        f"memory: {ratio:.2f}× peak memory, training worker vs plain TRL, median of "
        f"{args.repeats} (goal ≤ 1.10) {mark(ratio <= 1.10)}; summed RSS "
        f"{statistics.median(summed):.2f}× (shared pages twice)"
    )


if __name__ == "__main__":
    main()
