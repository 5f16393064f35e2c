"""The Celery app.

Workers: `celery -A rftconsole worker -Q gpu --concurrency 1` per GPU, and `-Q default`.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rftconsole.settings")

app = Celery("rftconsole")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"
