"""Console-wide Celery tasks."""

from __future__ import annotations

import os
import socket
from importlib.metadata import version

from celery import shared_task
from django.utils import timezone

from rftconsole.capacity import worker_capacity
from rftconsole.models import WorkerReport


def describe_accelerator() -> str:
    import torch  # only imported inside workers: the web process never loads torch for this

    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        return f"cuda: {count} × {torch.cuda.get_device_name(0)}"
    return "cpu"


@shared_task(name="rftconsole.report_worker")
def report_worker(queue: str) -> dict[str, object]:
    """Record and return what this worker runs on; `up` uses it as an end-to-end readiness check."""
    hostname = report_worker.request.hostname or socket.gethostname()
    accelerator = describe_accelerator() if queue == "gpu" else "not used on this queue"
    processes = worker_capacity() if queue == "gpu" else 1
    WorkerReport.objects.update_or_create(
        hostname=hostname,
        defaults={
            "queue": queue,
            "pid": os.getpid(),
            "torch_version": version("torch"),
            "accelerator": accelerator,
            "processes": processes,
            "reported_at": timezone.now(),
        },
    )
    return {
        "hostname": hostname,
        "queue": queue,
        "accelerator": accelerator,
        "processes": processes,
        "pid": os.getpid(),
    }
