"""PostgreSQL restarts while a job trains (the production path only: the embedded default has no
database server to restart). The gpu worker's trainer reconnects and the job completes on its
first attempt with steps 1..N exactly once; the default worker and a web process answer again.

Selected only when DATABASE_URL names PostgreSQL (`make test-production`), by the `postgresql`
marker (tests/conftest.py); it restarts the machine's cluster the way the machine doc says
(Debian's pg_ctlcluster), which ends every session, this process's too.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connections

from jobs.models import Job
from rftconsole.management.commands.up import worker_answers
from rftconsole.processes.supervisor import Supervisor
from rftconsole.services import create_api_key
from tests.support.processes import free_port, wait_until
from tests.support.reports import record
from tests.support.stack import start_web
from tests.support.up_console import status_of
from tests.test_training import launch, train_steps, wait_for

pytestmark = [
    pytest.mark.stack,
    pytest.mark.reliability,
    pytest.mark.postgresql,
    pytest.mark.django_db(transaction=True),
]
STEPS = 6


def restart_postgresql() -> float:
    """Restart the local cluster (fast mode: open sessions are ended); seconds until it answers."""
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    connections.close_all()  # this process's own: it reconnects on its next query
    started = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        timeout=120,
    )
    wait_until(lambda: subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0,
               60, "PostgreSQL to accept connections")  # fmt: skip
    return time.monotonic() - started


def job_answers(base_url: str, api_key: str, job_id: int) -> int | None:
    """GET the job through the REST API (a query per request on the web process)."""
    request = urllib.request.Request(  # noqa: S310 - our own loopback URL
        f"{base_url}/api/jobs/{job_id}/", headers={"Authorization": f"Bearer {api_key}"}
    )
    return status_of(request, timeout=10)


def reconnects_logged(live_stack: Supervisor) -> int:
    """How often the gpu worker's trainer found the connection gone and wrote again."""
    logs = [c.log_path for c in live_stack.children if c.name.startswith("gpu-worker")]
    return sum(p.read_text(errors="replace").count("database lost while writing") for p in logs)


@pytest.mark.timeout(900)
def test_a_job_completes_once_when_postgresql_restarts_mid_job(
    live_stack: Supervisor, trainer_user: User, settings: Any, tmp_path: Path
) -> None:
    port, (_, api_key) = free_port(), create_api_key(trainer_user, "restart-test")
    base_url = f"http://127.0.0.1:{port}"
    start_web(live_stack, port, tmp_path, generation=1)
    reconnects_before = reconnects_logged(live_stack)
    job = launch(trainer_user, maxSteps=STEPS, evalInterval=3)
    job = wait_for(job, lambda j: len(train_steps(j)) >= 2, 300, "step 2")
    assert job_answers(base_url, api_key, job.pk) == 200

    at_step = len(train_steps(job))
    restarted_at = time.monotonic()
    down = restart_postgresql()
    wait_until(lambda: len(train_steps(job)) > at_step, 300, "a step after the restart")
    next_step = time.monotonic() - restarted_at
    web, default = job_answers(base_url, api_key, job.pk), worker_answers("default")

    job = wait_for(job, lambda j: j.status in Job.FINISHED, 600, "the job to end")
    steps, reconnects = train_steps(job), reconnects_logged(live_stack) - reconnects_before
    lost = sorted(set(range(1, STEPS + 1)) - set(steps))
    record("faults", ("Fault", "Tried", "Lost"), "PostgreSQL restarted mid-job (production path)",
           f"`pg_ctlcluster … restart` at step {at_step} of {STEPS}: down {down:.1f} s",
           f"trainer wrote again after {reconnects} lost-connection retries; next step stored "
           f"{next_step:.1f} s after the restart began; job {job.status} on attempt "
           f"{job.attempts}, {len(lost)} steps lost, {len(steps) - len(set(steps))} duplicated; "
           f"web answered {web}, default worker {'answered' if default else 'SILENT'}")  # fmt: skip
    assert job.status == Job.Status.COMPLETED, job.status_reason
    assert steps == list(range(1, STEPS + 1)) and job.attempts == 1
    assert reconnects >= 1  # the restart did end the trainer's connection: the retry was needed
    assert web == 200 and default
