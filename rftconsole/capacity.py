"""How many training processes a `gpu`-queue worker can host: one per CUDA device it sees, or,
without CUDA, one per CPU core (CPU processes talk over gloo), at most MAX_PROCESSES.

Neither Django nor torch is imported here: `manage.py up` and a worker's main process (which
must never load torch; see rftconsole/celery.py) count devices without torch, from
CUDA_VISIBLE_DEVICES or `nvidia-smi -L`. The pool process that runs a job asks torch itself
(`worker_capacity`), and refuses a job that asks for more than that.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

MAX_PROCESSES = 64  # numProcesses' upper bound (jobs/training/hyperparameters.py)


def capacity_of(gpus: int, cores: int | None) -> int:
    """One process per GPU when there are GPUs, else one per CPU core; between 1 and 64."""
    return max(1, min(gpus or cores or 1, MAX_PROCESSES))


def cuda_visible_devices(value: str) -> list[str]:
    """The devices a CUDA_VISIBLE_DEVICES value names, in order. CUDA stops at the first entry that
    is empty or negative ('-1' hides every device)."""
    devices = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry or entry.startswith("-"):
            break
        devices.append(entry)
    return devices


def nvidia_smi_devices() -> list[str]:
    """The indices of the GPUs `nvidia-smi -L` lists; none where it is absent or fails."""
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = [line for line in listing.splitlines() if line.startswith("GPU ")]
    return [str(index) for index in range(len(gpus))]


def visible_devices(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The CUDA devices this process may use, without torch: CUDA_VISIBLE_DEVICES when set, else
    every GPU `nvidia-smi -L` lists."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        return cuda_visible_devices(environ["CUDA_VISIBLE_DEVICES"])
    return nvidia_smi_devices()


# Set by `up --gpu-workers N` on a host without GPUs: the cores each of the N workers may use, so
# that two workers on 16 cores offer 8 processes each, not 16 each.
WORKER_CORES_VARIABLE = "RFT_WORKER_CORES"


def worker_cores(environ: Mapping[str, str] = os.environ) -> int | None:
    """This worker's share of the CPU cores: RFT_WORKER_CORES when `up` set it, else them all."""
    share = environ.get(WORKER_CORES_VARIABLE, "")
    return int(share) if share.isdigit() and int(share) > 0 else os.cpu_count()


def startup_capacity() -> int:
    """The capacity as a worker's main process sees it (no torch): it picks its queues."""
    return capacity_of(len(visible_devices()), worker_cores())


def worker_capacity() -> int:
    """The capacity as torch sees it, in a pool process: what a job is checked against."""
    import torch  # only in pool processes, which run the training anyway

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return capacity_of(gpus, worker_cores())
