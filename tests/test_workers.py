"""Celery with real worker processes and a real Redis (embedded, or REDIS_URL when set).

Run with DATABASE_URL and REDIS_URL set, the same tests exercise the production path
(PostgreSQL + external Redis); .ci/run does both.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from rftconsole.celery import DEFAULT_QUEUE, GPU_QUEUE
from rftconsole.models import WorkerReport
from rftconsole.supervisor import Supervisor
from rftconsole.system import system_status
from rftconsole.tasks import report_worker

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("queue", [GPU_QUEUE, DEFAULT_QUEUE])
def test_a_task_runs_end_to_end_on_the_worker_of_its_queue(
    live_stack: Supervisor, queue: str
) -> None:
    result = report_worker.apply_async(args=[queue], queue=queue).get(timeout=60)

    assert result["queue"] == queue
    assert result["hostname"].startswith(f"{queue}-test-")
    worker_pids = {child.pid for child in live_stack.children}
    assert result["pid"] not in worker_pids  # ran in a pool process, not in the test process
    report = WorkerReport.objects.get(hostname=result["hostname"])  # written by the worker
    assert report.queue == queue
    assert report.torch_version.startswith("2.13.0")


def test_the_gpu_worker_says_what_accelerator_it_has(live_stack: Supervisor) -> None:
    result = report_worker.apply_async(args=[GPU_QUEUE], queue=GPU_QUEUE).get(timeout=60)
    assert result["accelerator"] == "cpu" or result["accelerator"].startswith("cuda: ")


def test_the_system_status_lists_a_worker_for_each_queue(live_stack: Supervisor) -> None:
    status = system_status(timeout=2.0)
    assert status.redis_ok, status.redis_detail
    assert status.ready
    assert status.redis_detail.startswith("embedded" if settings.EMBEDDED_REDIS else "external")


def test_the_overview_panel_shows_the_workers(live_stack: Supervisor, client: Client) -> None:
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_user("alice"))
    html = client.get("/system/").content.decode()
    assert "no worker" not in html
    assert html.count("1 worker") == 2
