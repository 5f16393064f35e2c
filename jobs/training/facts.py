"""Facts about one run of a job: where its files live, what the worker offers, how it started."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from jobs.models import Job
from jobs.training.distributed import launch_record, vllm_available
from jobs.training.hyperparameters import Hyperparameters
from rftconsole.paths import data_dir, safe_child


def job_dir(job: Job) -> Path:
    """Checkpoints and scratch of one job, named by its id (job.name is only a label)."""
    return safe_child(data_dir(), "jobs", str(job.pk))


@dataclass(frozen=True)
class WorkerFacts:
    """What this worker offers a job, measured once per run."""

    cuda: bool
    devices: int
    bf16: bool
    vllm: bool
    deepspeed: bool

    @classmethod
    def here(cls) -> WorkerFacts:
        cuda = torch.cuda.is_available()
        return cls(
            cuda=cuda,
            devices=torch.cuda.device_count() if cuda else 0,
            bf16=cuda and torch.cuda.is_bf16_supported(),
            vllm=vllm_available(),
            deepspeed=importlib.util.find_spec("deepspeed") is not None,
        )


def record_launch(
    job: Job, hp: Hyperparameters, worker: WorkerFacts, command: list[str] | None
) -> None:
    """How this attempt runs, for the job page (job.launch)."""
    record = launch_record(hp, hp.num_processes, worker.cuda, worker.bf16, worker.vllm, command)
    Job.objects.filter(pk=job.pk).update(launch=record)
