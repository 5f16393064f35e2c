"""The Celery app.

Workers: `celery -A rftconsole worker -Q gpu --concurrency 1` per GPU (or per set of GPUs), and
`-Q default`. A training job of N > 1 processes goes to queue `gpu.N`; a `gpu` worker also
consumes `gpu.2` … `gpu.<its capacity>` (rftconsole/capacity.py), so a job asking for more
processes than any worker can host waits in its queue.
"""

import gc
import os
from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup, worker_init, worker_ready
from celery.utils.nodenames import worker_direct

from rftconsole.capacity import startup_capacity

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rftconsole.settings")

app = Celery("rftconsole")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"


def gpu_queue_for(processes: int) -> str:
    """The queue of a training job of `processes` processes: `gpu`, or `gpu.N` for N > 1."""
    return GPU_QUEUE if processes <= 1 else f"{GPU_QUEUE}.{processes}"


def consumes_gpu(instance: Any) -> bool:
    return GPU_QUEUE in instance.app.amqp.queues.consume_from


@celeryd_after_setup.connect
def subscribe_gpu_worker(sender: str, instance: Any, **_: object) -> None:
    """A `gpu` worker (never the default one) also takes jobs of 2 … capacity processes, and its
    own direct queue (`up` checks each gpu worker through it; it reports itself through it)."""
    if not consumes_gpu(instance):
        return
    queues = instance.app.amqp.queues
    for processes in range(2, startup_capacity() + 1):
        queues.select_add(gpu_queue_for(processes))
    queues.select_add(worker_direct(sender))


@worker_ready.connect
def report_gpu_worker(sender: Any, **_: object) -> None:
    """A gpu worker records its capacity once it consumes (the report runs in its pool process,
    which may import torch), so queued jobs can say whether any worker can run them."""
    if consumes_gpu(sender):
        app.send_task(
            "rftconsole.report_worker", args=[GPU_QUEUE], queue=worker_direct(sender.hostname)
        )


@worker_init.connect
def freeze_what_the_pool_inherits(**_: object) -> None:
    """Move every object imported so far (Django, the apps, Celery) out of the garbage
    collector's reach before the pool processes are forked: a collection in a pool process would
    otherwise touch them all and copy their pages, each process then holding its own copy of
    memory it could share with the main process (Python's advice for gc.freeze)."""
    gc.collect()
    gc.freeze()
