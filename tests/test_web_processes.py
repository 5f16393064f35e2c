"""`manage.py up` serves the console from RFT_WEB_PROCESSES Daphne processes (web-1..web-N) that
accept on the one listening socket `up` opened, and a websocket viewer sees a job's live events
whichever process holds its connection (they travel through the Redis channel layer).

Which process accepts a connection is the kernel's choice, so the tests choose for it: a process
stopped with SIGSTOP cannot accept, and everything that arrives meanwhile is served by the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import websockets

from rftconsole.management.commands.up import web_children
from rftconsole.processes.supervisor import Supervisor
from tests.support.processes import (
    REPO,
    embedded_env,
    free_port,
    http_status,
    manage,
    process_tree,
    wait_until,
)

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("starter_artifacts")]

# A job of admin's in the console's own database and a signed-in session for admin, printed as
# JSON by `manage.py shell` (the console runs on its own data dir, not on the test database).
SETUP = """
import json
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from jobs.models import Job
from tests.support.job_rows import make_job
admin = User.objects.get(username="admin")
job = make_job(
    admin, status=Job.Status.TRAINING, current_step=3, total_steps=20, worker="gpu@gone",
    attempts=3, heartbeat_at=timezone.now(),
)
client = Client()
client.force_login(admin)
print(json.dumps({"job": job.pk, "session": client.cookies["sessionid"].value}))
"""
# The job's worker falls silent, and the `default` Celery worker's reaper finds it and fails it
# (its last attempt): the status event comes from that worker process, through Redis.
REAP = """
import json, os
from datetime import timedelta
from django.utils import timezone
from jobs.models import Job
from jobs.tasks import reap_stale_jobs
Job.objects.filter(pk=int(os.environ["JOB"])).update(heartbeat_at=timezone.now() - timedelta(days=1))
print(json.dumps(reap_stale_jobs.apply_async(queue="default").get(timeout=60)))
"""


@dataclass
class Console:
    port: int
    env: dict[str, str]
    up: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def web_pids(self) -> list[int]:
        """The pids `up` printed for web-1, web-2, ..."""
        return [int(pid) for pid in re.findall(r"✓ web-\d+\s.*\[pid (\d+)", self.log.read_text())]

    def shell(self, code: str, **variables: str) -> str:
        done = subprocess.run(
            manage("shell", "-c", code),
            env={**self.env, **variables},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("web-processes")
    port, env = free_port(), embedded_env(root / "var")
    env["RFT_WEB_PROCESSES"] = "2"
    log_path = root / "up.log"
    with log_path.open("w") as log:
        up = subprocess.Popen(
            manage("up", "--port", str(port)), env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        ready = lambda: "RFT Console is ready" in log_path.read_text() or up.poll() is not None  # noqa: E731
        wait_until(ready, 300, "`manage.py up` to start")
        assert up.poll() is None, log_path.read_text()
        yield Console(port, env, up, log_path)
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """`pid` frozen (it cannot accept a connection) until the block ends."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def listening_sockets(pid: int, port: int) -> set[str]:
    """The kernel's names ("socket:[inode]") of the sockets `pid` listens on at `port`."""
    return {
        os.readlink(f"/proc/{pid}/fd/{connection.fd}")
        for connection in psutil.Process(pid).net_connections(kind="tcp")
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
    }


def serving_process(pids: list[int], client_port: int, port: int) -> int | None:
    """Which of `pids` holds the server end of the connection from local port `client_port`."""
    for pid in pids:
        for connection in psutil.Process(pid).net_connections(kind="tcp"):
            if (
                connection.laddr.port == port
                and connection.raddr
                and (connection.raddr.port == client_port)
            ):
                return pid
    return None


def test_up_starts_two_web_processes_on_one_socket_and_each_serves_alone(
    console: Console,
) -> None:
    web = console.web_pids()
    assert len(web) == 2, console.log.read_text()
    servers = [
        p.pid for p in process_tree(console.up.pid) if "rftconsole.processes.web" in p.cmdline()
    ]
    assert sorted(servers) == sorted(web)
    # One socket, not two bound to the same port: the same kernel object in `up` and both.
    sockets = [listening_sockets(pid, console.port) for pid in [console.up.pid, *web]]
    assert len(sockets[0]) == 1 and sockets[0] == sockets[1] == sockets[2], sockets
    for serving, other in ((web[0], web[1]), (web[1], web[0])):
        with stopped(other):
            answers = [http_status(f"{console.url}/login/") for _ in range(5)]
        assert answers == [200] * 5, f"web process {serving} alone answered {answers}"


async def viewer(console: Console, job: int, session: str) -> websockets.ClientConnection:
    """The job page's websocket as a browser opens it, with the backlog already read."""
    socket = await websockets.connect(
        f"ws://127.0.0.1:{console.port}/ws/jobs/{job}/",
        additional_headers={"Cookie": f"sessionid={session}"},
        origin=websockets.Origin(console.url),
        open_timeout=30,
    )
    backlog = json.loads(await asyncio.wait_for(socket.recv(), timeout=30))
    assert backlog["type"] == "backlog" and backlog["job"]["current_step"] == 3
    return socket


def test_a_viewer_on_either_web_process_sees_an_event_sent_from_a_celery_worker(
    console: Console,
) -> None:
    web = console.web_pids()
    setup = json.loads(console.shell(SETUP))

    async def scenario() -> tuple[list[int | None], list[dict[str, Any]]]:
        sockets = []
        for other in (web[1], web[0]):  # the first viewer lands on web-1, the second on web-2
            with stopped(other):
                sockets.append(await viewer(console, setup["job"], setup["session"]))
        held_by = [serving_process(web, s.local_address[1], console.port) for s in sockets]
        await asyncio.to_thread(console.shell, REAP, JOB=str(setup["job"]))
        received = [json.loads(await asyncio.wait_for(s.recv(), timeout=30)) for s in sockets]
        for socket in sockets:
            await socket.close()
        return held_by, received

    held_by, received = asyncio.run(scenario())
    assert held_by == web  # one viewer on each web process
    for event in received:
        assert event["type"] == "status" and event["status"] == "failed", received
        assert "stopped responding at step 3; gave up after 3 attempts" in event["message"]


def test_one_web_child_per_configured_process() -> None:
    one = web_children(7, 1, "http://127.0.0.1:8000", Path("/logs"))
    assert [child.name for child in one] == ["web-1"]
    three = web_children(7, 3, "http://127.0.0.1:8000", Path("/logs"))
    assert [child.name for child in three] == ["web-1", "web-2", "web-3"]
    for child in three:
        assert child.pass_fds == (7,) and child.argv[-3:] == ["--fd", "7", child.argv[-1]]
        assert child.log_path == Path(f"/logs/{child.name}.log")


def settings_value(**environment: str) -> subprocess.CompletedProcess[str]:
    code = "import rftconsole.settings as s; print(s.RFT_WEB_PROCESSES)"
    env = {k: v for k, v in os.environ.items() if k != "RFT_WEB_PROCESSES"}
    env.update(environment)
    run = [sys.executable, "-c", code]
    return subprocess.run(run, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_the_number_of_web_processes_defaults_to_the_cores_and_refuses_zero() -> None:
    assert settings_value().stdout.strip() == str(os.cpu_count())
    assert settings_value(RFT_WEB_PROCESSES="1").stdout.strip() == "1"
    refused = settings_value(RFT_WEB_PROCESSES="0")
    assert refused.returncode != 0
    assert "RFT_WEB_PROCESSES=0 is below the minimum of 1" in refused.stderr


def test_a_restarted_web_process_is_ready_on_its_own_listening_line_not_the_previous_one(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    (site / "login").mkdir(parents=True)
    (site / "login" / "index.html").write_text("sign in")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=site,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    supervisor = Supervisor({})
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_status(f"{base_url}/login/") == 200, 30, "the page server")
        [child] = web_children(7, 1, base_url, tmp_path / "logs")
        child.argv = [sys.executable, "-c", "import time; time.sleep(60)"]
        child.pass_fds = ()
        child.log_path.parent.mkdir()
        child.log_path.write_bytes(b"Listening on TCP address 127.0.0.1:1 (the previous start)\n")
        supervisor.spawn(child)
        assert not child.is_ready()  # the page answers, but this start has not said it listens
        with child.log_path.open("ab") as log:
            log.write(b"Listening on TCP address 127.0.0.1:1\n")
        assert child.is_ready()  # the control: its own line counts
    finally:
        supervisor.stop_all()
        server.terminate()
        server.wait(timeout=10)
