"""Load on loopback, bounded: 50 users on the jobs page at once, 200 websocket viewers of one job.

Both through a real Daphne, real Redis and the real database. What is asserted is correctness
under load (every page right and only its owner's, every viewer gets every step once); the
latencies are recorded in the `load` report, not asserted (speed goals live in bench/).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import statistics
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import websockets
from django.contrib.auth.models import User
from django.db import connection

from jobs.models import Job
from rftconsole.processes.supervisor import Child, Supervisor
from tests.support.job_rows import add_points, make_job
from tests.support.processes import free_port
from tests.support.reports import record
from tests.support.stack import session_id, start_web
from tests.test_live import announce_point

pytestmark = [
    pytest.mark.stack,
    pytest.mark.reliability,
    pytest.mark.django_db(transaction=True),
]
REPORT = ("load", ("Load", "Tried", "Lost or wrong", "Latency"))
USERS = 50
REQUESTS_PER_USER = 4
VIEWERS = 200
LIVE_STEPS = 30


@pytest.fixture
def web(live_stack: Supervisor, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    child: Child = start_web(live_stack, port, tmp_path)
    yield f"127.0.0.1:{port}"
    os.killpg(child.pid, signal.SIGTERM)
    child.process.wait(timeout=30)  # type: ignore[union-attr]


def session_cookie(user: User) -> str:
    return f"sessionid={session_id(user)}"


def get_jobs_page(host: str, cookie: str) -> tuple[int, str, float]:
    request = urllib.request.Request(f"http://{host}/jobs/", headers={"Cookie": cookie})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback only
        body = response.read().decode()
        return response.status, body, time.perf_counter() - started


def test_50_users_on_the_jobs_page_at_once_each_see_only_their_own_jobs(web: str) -> None:
    users = [User.objects.create_user(f"user{n:02d}") for n in range(USERS)]
    for user in users:
        make_job(user, name=f"job-of-{user.username}", status=Job.Status.TRAINING)
    cookies = {user.username: session_cookie(user) for user in users}
    visits = [name for name in cookies for _ in range(REQUESTS_PER_USER)]

    with ThreadPoolExecutor(USERS) as pool:
        pages = list(pool.map(lambda name: (name, *get_jobs_page(web, cookies[name])), visits))

    wrong = [
        name
        for name, status, body, _ in pages
        if status != 200 or set(re.findall(r"job-of-user\d+", body)) != {f"job-of-{name}"}
    ]
    seconds = sorted(s for *_, s in pages)
    p95 = seconds[int(len(seconds) * 0.95) - 1]
    record(*REPORT, f"{USERS} users on the jobs page at once", f"{len(pages)} page loads",
           f"{len(wrong)} wrong (cross-user reads or errors)",
           f"median {statistics.median(seconds) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")  # fmt: skip
    assert wrong == []


async def watch(host: str, job_id: int, cookie: str, steps: int, joined: list[int]) -> list[int]:
    """One viewer: the train steps it received (history, then live) until it has `steps`.
    It adds itself to `joined` once it has read the history."""
    headers = {"Cookie": cookie, "Origin": f"http://{host}"}
    received: list[int] = []
    async with websockets.connect(
        f"ws://{host}/ws/jobs/{job_id}/", additional_headers=headers, open_timeout=120
    ) as socket:
        while len(set(received)) < steps:
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout=120))
            if message["type"] == "backlog":
                joined.append(job_id)
            points = message.get("metrics") or ([message] if message["type"] == "metric" else [])
            received += [p["step"] for p in points if p.get("kind") == "train"]
    return received


def test_200_websocket_viewers_of_one_job_each_receive_every_step_once(
    web: str, alice: User
) -> None:
    job = make_job(alice, status=Job.Status.TRAINING, total_steps=LIVE_STEPS + 5)
    add_points(job, range(1, 6))
    cookie = session_cookie(alice)
    total = 5 + LIVE_STEPS

    async def everyone() -> list[list[int]]:
        joined: list[int] = []
        viewers = [watch(web, job.pk, cookie, total, joined) for _ in range(VIEWERS)]
        tasks = [asyncio.create_task(viewer) for viewer in viewers]
        while len(joined) < VIEWERS:  # every viewer is listening before training goes on
            assert not any(task.done() for task in tasks), [
                t.exception() for t in tasks if t.done()
            ]
            await asyncio.sleep(0.05)
        await asyncio.to_thread(trainer, job)
        return await asyncio.gather(*tasks)

    started = time.perf_counter()
    received = asyncio.run(asyncio.wait_for(everyone(), timeout=300))
    seconds = time.perf_counter() - started
    complete = [r for r in received if sorted(r) == list(range(1, total + 1))]
    record(*REPORT, f"{VIEWERS} websocket viewers of one job", f"{total} steps ({LIVE_STEPS} live)",
           f"{VIEWERS - len(complete)} viewers missed or repeated a step",
           f"connected and all delivered in {seconds:.1f} s")  # fmt: skip
    assert len(complete) == VIEWERS


def trainer(job: Job) -> None:
    try:
        for step in range(6, 6 + LIVE_STEPS):
            announce_point(job, step)
    finally:
        connection.close()
