"""Faults with real processes: the web process restarts under a watching browser; the disk fills
up while a checkpoint is written. (A SIGKILLed gpu worker: test_training.py; a killed embedded
Redis: test_up.py.) Each records what was tried and what was lost in the `faults` report.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection, connections
from playwright.sync_api import Page, expect, sync_playwright
from safetensors import safe_open

from jobs.models import Checkpoint, Job, MetricPoint
from rftconsole.management.commands.up import celery_worker_argv, worker_answers
from rftconsole.processes.supervisor import Child, Supervisor
from tests.support.browser import launch_chromium, new_context, wait_for_chart_points
from tests.support.job_rows import add_points, make_job
from tests.support.processes import free_port, wait_until
from tests.support.reports import record
from tests.support.stack import session_id, start_web, start_worker
from tests.test_live import announce_point
from tests.test_training import launch, wait_for

pytestmark = [
    pytest.mark.stack,
    pytest.mark.reliability,
    pytest.mark.django_db(transaction=True),
]
REPORT = ("faults", ("Fault", "Tried", "Lost"))


def kill(child: Child) -> None:
    os.killpg(child.pid, signal.SIGKILL)
    child.process.wait()  # type: ignore[union-attr]


@pytest.fixture
def browser_page(
    live_stack: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Page, int]]:
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still
    # plain synchronous code, so Django's guard against ORM use inside async code must stand down.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    port = free_port()
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        context = new_context(chromium, f"http://127.0.0.1:{port}")
        yield context.new_page(), port
        chromium.close()
        # ORM calls made while Playwright's loop runs get connections of their own (Django keys
        # them by async context): close them here, or one outlives the test database.
        connections.close_all()


def sign_in(page: Page, user: User, port: int) -> None:
    """A session made here (the web process checks passwords with other hashers than tests)."""
    cookie = {"name": "sessionid", "value": session_id(user)}
    page.context.add_cookies([{**cookie, "url": f"http://127.0.0.1:{port}"}])


def announce(job: Job, steps: range) -> None:
    """What the trainer does for each step, from a thread of its own: Playwright's event loop
    runs in this one, and the channel layer's sync wrapper refuses to run inside a loop."""

    def trainer() -> None:
        try:
            for step in steps:
                announce_point(job, step)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(trainer).result()


def chart_steps(page: Page) -> list[int]:
    return [int(x) for x in page.evaluate("document.getElementById('chart-reward').data[0].x")]


def test_a_watching_browser_reconnects_after_the_web_process_restarts_and_misses_no_point(
    live_stack: Supervisor, alice: User, browser_page: tuple[Page, int], tmp_path: Path
) -> None:
    page, port = browser_page
    job = make_job(alice, status=Job.Status.TRAINING, current_step=5, total_steps=30)
    add_points(job, range(1, 6))
    web = start_web(live_stack, port, tmp_path, generation=1)
    sign_in(page, alice, port)
    page.goto(f"/jobs/{job.pk}/")
    wait_for_chart_points(page, "chart-reward", 4, 60)
    expect(page.locator("#live-state")).to_have_text("live")
    announce(job, range(6, 11))
    wait_for_chart_points(page, "chart-reward", 9, 60)

    kill(web)
    expect(page.locator("#live-state")).to_have_text("reconnecting…")
    announce(job, range(11, 21))  # trained while no web process was up: stored, not delivered
    web = start_web(live_stack, port, tmp_path, generation=2)
    wait_for_chart_points(page, "chart-reward", 19, 90)  # the gap, replayed on reconnect
    expect(page.locator("#live-state")).to_have_text("live")
    announce(job, range(21, 26))
    wait_for_chart_points(page, "chart-reward", 24, 60)

    steps = chart_steps(page)
    lost = sorted(set(range(1, 26)) - set(steps))
    duplicated = len(steps) - len(set(steps))
    record(*REPORT, "web process SIGKILLed while a browser watches a job", "1 restart, 25 steps",
           f"{len(lost)} steps lost, {duplicated} duplicated")  # fmt: skip
    assert steps == list(range(1, 26))
    kill(web)


def gpu_worker_with_a_small_disk(jobs_dir: Path, tmp_path: Path) -> Child:
    """A gpu worker whose view of DATA_DIR/jobs is a tmpfs of its own (a mount namespace), so the
    test can fill that disk without touching the machine's: a real ENOSPC from the kernel."""
    jobs_dir.mkdir(parents=True, exist_ok=True)
    argv = celery_worker_argv("gpu", 1)
    argv[argv.index("-n") + 1] = f"gpu-small-disk-{os.getpid()}@%h"
    script = (
        f"mount -t tmpfs -o size=64m tmpfs {shlex.quote(str(jobs_dir))} && exec {shlex.join(argv)}"
    )
    wrapped = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script]
    ready = lambda: worker_answers("gpu")  # noqa: E731
    return Child("gpu-small-disk", wrapped, tmp_path / "gpu-small-disk.log", ready)


def fill(directory: Path) -> None:
    """Write until the disk refuses: the next byte anyone writes there fails with ENOSPC."""
    with (directory / "filler").open("wb") as filler:
        try:
            while True:
                filler.write(b"\0" * (1 << 20))
                filler.flush()
        except OSError:
            pass


@pytest.fixture
def small_disk_worker(live_stack: Supervisor, tmp_path: Path) -> Iterator[Child]:
    """Swap the stack's gpu worker for one with a small disk; put a normal one back after."""
    for child in live_stack.children:
        if child.name.startswith("gpu-worker") and child.exited() is None:
            kill(child)
    worker = gpu_worker_with_a_small_disk(Path(settings.DATA_DIR) / "jobs", tmp_path)
    live_stack.start(worker, 120)
    yield worker
    kill(worker)
    generation = sum(c.name.startswith("gpu-worker") for c in live_stack.children) + 1
    start_worker(live_stack, "gpu", 1, tmp_path, generation)


def test_a_full_disk_at_a_checkpoint_fails_the_job_with_that_reason_and_keeps_the_last_one(
    small_disk_worker: Child, alice: User, starter_artifacts: Path, settings: Any
) -> None:
    call_command("bootstrap_starter", "--no-progress", "--user", "alice", stdout=io.StringIO())
    job = launch(alice, maxSteps=30, evalInterval=5)
    wait_for(job, lambda j: Checkpoint.objects.filter(job=j, step=5).exists(), 300, "checkpoint 5")
    # The worker's disk, seen through its own root (its mount namespace).
    disk = Path(f"/proc/{small_disk_worker.pid}/root") / str(settings.DATA_DIR).lstrip("/") / "jobs"
    fill(disk)

    ended_job = wait_until_ended(job)
    saved = list(Checkpoint.objects.filter(job=job).values_list("step", flat=True))
    last = Checkpoint.objects.get(job=job, step=max(saved))
    checkpoint = disk / str(job.pk) / "checkpoints" / f"checkpoint-{last.step}"
    with safe_open(str(checkpoint / "adapter_model.safetensors"), framework="pt") as weights:
        tensors = len(list(weights.keys()))
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    steps = list(MetricPoint.objects.filter(job=job, kind="train").values_list("step", flat=True))
    record(*REPORT, "disk full while writing a checkpoint", f"tmpfs filled after step {last.step}",
           f"job {ended_job.status}: {ended_job.status_reason[:60]}…; "
           f"checkpoint {last.step} intact ({tensors} tensors)")  # fmt: skip
    assert ended_job.status == Job.Status.FAILED
    assert ended_job.status_reason.startswith("The disk is full")
    assert "No space left on device" in ended_job.status_reason
    assert tensors > 0 and state["global_step"] == last.step
    assert steps == list(range(1, len(steps) + 1))  # the metrics up to the failure are all there


def wait_until_ended(job: Job) -> Job:
    ended = (Job.Status.FAILED, Job.Status.COMPLETED)
    wait_until(lambda: Job.objects.get(pk=job.pk).status in ended, 300, "the job to end")
    job.refresh_from_db()
    return job
