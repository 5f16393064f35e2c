"""The `gpu` workers `manage.py up --gpu-workers N` starts: names, Celery node names and the
devices (or CPU threads) of each. Pure functions: `up` passes in what it found on the host, and
never imports torch to find it (rftconsole/capacity.py counts devices without it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rftconsole.capacity import MAX_PROCESSES, WORKER_CORES_VARIABLE

MAX_GPU_WORKERS = MAX_PROCESSES


@dataclass(frozen=True)
class GpuWorkerPlan:
    name: str  # the supervised child: gpu-worker, or gpu-worker-1 … gpu-worker-N
    node: str  # the Celery node name (%h: the host name)
    log: str  # its log file's name
    describe: str
    env: dict[str, str] = field(default_factory=dict)  # set over the console's environment


def split_devices(devices: list[str], workers: int) -> list[list[str]]:
    """Contiguous chunks of len(devices) // workers devices, one per worker (devices left over
    stay unused). Refuses more workers than devices."""
    if not 1 <= workers <= len(devices):
        raise ValueError(f"cannot split {len(devices)} devices among {workers} workers")
    size = len(devices) // workers
    return [devices[number * size : (number + 1) * size] for number in range(workers)]


def check_worker_count(workers: int, devices: list[str]) -> None:
    if not 1 <= workers <= MAX_GPU_WORKERS:
        raise ValueError(f"--gpu-workers must be between 1 and {MAX_GPU_WORKERS} (got {workers}).")
    if devices and workers > len(devices):
        raise ValueError(
            f"--gpu-workers {workers} needs at least {workers} GPUs, but this host has "
            f"{len(devices)} ({','.join(devices)}): one worker per GPU or per group of GPUs."
        )


def plan_gpu_workers(
    workers: int, devices: list[str], cores: int, environ: Mapping[str, str]
) -> list[GpuWorkerPlan]:
    """One worker keeps the names `up` always used (gpu-worker, gpu@%h) and every device. More
    split the GPUs into contiguous chunks (CUDA_VISIBLE_DEVICES), or without GPUs the CPU cores
    (OMP_NUM_THREADS, unless the environment sets it), so they do not oversubscribe the host."""
    check_worker_count(workers, devices)
    if workers == 1:
        return [
            GpuWorkerPlan("gpu-worker", "gpu@%h", "worker-gpu.log", "queue 'gpu', concurrency 1")
        ]
    if devices:
        shares = [
            ({"CUDA_VISIBLE_DEVICES": ",".join(chunk)}, f"CUDA devices {','.join(chunk)}")
            for chunk in split_devices(devices, workers)
        ]
    else:
        threads = str(max(1, cores // workers))
        env = {WORKER_CORES_VARIABLE: threads}  # its capacity: jobs of up to this many processes
        if "OMP_NUM_THREADS" not in environ:
            env["OMP_NUM_THREADS"] = threads
        share = f"CPU, {environ.get('OMP_NUM_THREADS', threads)} threads"
        shares = [(env, share)] * workers
    return [
        GpuWorkerPlan(
            f"gpu-worker-{number}",
            f"gpu-{number}@%h",
            f"worker-gpu-{number}.log",
            f"queue 'gpu', concurrency 1, {share}",
            dict(env),
        )
        for number, (env, share) in enumerate(shares, start=1)
    ]


def unused_devices(workers: int, devices: list[str]) -> list[str]:
    """The devices no worker gets when they do not divide evenly."""
    if workers == 1 or not devices:
        return []
    return devices[len(devices) // workers * workers :]
