"""Celery with real worker processes and a real Redis (embedded, or REDIS_URL when set).

Run with DATABASE_URL and REDIS_URL set, the same tests exercise the production path
(PostgreSQL + external Redis); .ci/run does both.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from rftconsole.capacity import startup_capacity
from rftconsole.celery import DEFAULT_QUEUE, GPU_QUEUE
from rftconsole.models import WorkerReport
from rftconsole.processes.supervisor import Supervisor
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
    # gpu and default, then gpu.2 … gpu.<capacity>: the queues of multi-process jobs the
    # session's gpu worker takes (one per core here, without CUDA)
    sized = [f"gpu.{n}" for n in range(2, startup_capacity() + 1)]
    assert html.count("1 worker") == 2 + len(sized)
    assert all(f"Queue <code>{queue}</code>" in html for queue in sized)


def test_a_worker_main_process_never_loads_torch_and_its_openmp_threads_sleep(
    live_stack: Supervisor,
) -> None:
    """Only pool processes run tasks; the main process that forks them must stay small (Celery's
    Django fixup loads the URLconf for its system checks, so every module it reaches imports torch
    lazily). OpenMP threads sleep instead of spinning, so processes on shared cores don't starve."""
    report_worker.apply_async(args=[GPU_QUEUE], queue=GPU_QUEUE).get(timeout=60)  # imports torch
    workers = [c for c in live_stack.children if "worker" in c.name and c.exited() is None]
    assert len(workers) >= 2
    for worker in workers:
        maps = Path(f"/proc/{worker.pid}/maps").read_text()
        assert "libtorch" not in maps, f"{worker.name} (pid {worker.pid}) has loaded torch"
        environ = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
        assert b"OMP_WAIT_POLICY=PASSIVE" in environ
        if worker.name.startswith(GPU_QUEUE):  # the task ran in its pool process, which has torch
            children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text()
            pool_maps = [Path(f"/proc/{pid}/maps").read_text() for pid in children.split()]
            assert any("libtorch" in maps for maps in pool_maps)
