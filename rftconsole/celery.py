"""The Celery app.

Workers: `celery -A rftconsole worker -Q gpu --concurrency 1` per GPU, and `-Q default`.
"""

import gc
import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rftconsole.settings")

app = Celery("rftconsole")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"


@worker_init.connect
def freeze_what_the_pool_inherits(**_: object) -> None:
    """Move every object imported so far (Django, the apps, Celery) out of the garbage
    collector's reach before the pool processes are forked: a collection in a pool process would
    otherwise touch them all and copy their pages, each process then holding its own copy of
    memory it could share with the main process (Python's advice for gc.freeze)."""
    gc.collect()
    gc.freeze()
