"""The supervisor keeps serving: a child that dies is restarted after a growing backoff and its
reason is said; one that keeps crashing is reported failing (state file, Overview panel,
`manage.py status`) while the others keep running; stopping still stops everything.

Tiny fake children (`python -c ...`) and a fast policy stand in for Daphne and the workers; the
real stack under `manage.py up` is in tests/test_up.py.
"""

from __future__ import annotations

import io
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.template.loader import render_to_string

from rftconsole.processes.embedded_redis import AOF_FILE, redis_server_argv, switch_to_append_only
from rftconsole.processes.state import read_state, state_path
from rftconsole.processes.supervisor import Child, RestartPolicy, Supervisor
from rftconsole.system import SystemStatus

FAST = RestartPolicy(first_backoff=0.2, max_backoff=0.8, healthy_after=1.5, crash_limit=3,
                     crash_window=30.0)  # fmt: skip


def python_child(name: str, code: str, log_dir: Path) -> Child:
    return Child(name, [sys.executable, "-c", code], log_dir / f"{name}.log", lambda: True)


def sleeper(log_dir: Path) -> Child:
    return python_child("sleeper", "import time; time.sleep(120)", log_dir)


class Said(list[tuple[float, str]]):
    """What the supervisor said, with when."""

    def __call__(self, text: str) -> None:
        self.append((time.monotonic(), text))

    def text(self) -> str:
        return "\n".join(line for _, line in self)


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    running = Supervisor({}, policy=FAST, state_path=tmp_path / "supervisor.json")
    yield running
    running.stop_all(grace_seconds=5)


def tick_until(
    supervisor: Supervisor, said: Said, done: Callable[[], bool], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out; the supervisor said:\n{said.text()}"
        supervisor.tick(time.monotonic(), said)
        time.sleep(0.05)


def test_a_dead_child_is_restarted_with_a_doubling_backoff_and_its_reason_is_said(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    supervisor.policy = RestartPolicy(first_backoff=0.2, max_backoff=0.8, crash_limit=100)
    crasher = python_child("crasher", "print('boom: the reason'); raise SystemExit(3)", tmp_path)
    supervisor.spawn(crasher)
    calm = sleeper(tmp_path)
    supervisor.start(calm, 10)
    said = Said()

    tick_until(supervisor, said, lambda: crasher.restarts >= 5, 30)

    exits = [when for when, line in said if line.startswith("✗ crasher exited with code 3")]
    restarts = [when for when, line in said if line.startswith("↻ crasher restarted")]
    waits = [round(start - exit, 1) for exit, start in zip(exits, restarts, strict=False)]
    assert [w >= d for w, d in zip(waits, [0.2, 0.4, 0.8, 0.8, 0.8], strict=False)] == [True] * 5
    assert waits[-1] < 1.5  # capped at 0.8 s (plus a tick), not 3.2
    assert "boom: the reason" in said.text()  # the tail of its log, with the exit reason
    assert "restarting it in 1 s" in said.text() or "restarting it in 0 s" in said.text()
    # the healthy neighbour was never touched
    assert calm.exited() is None and calm.restarts == 0 and not calm.failing


def test_a_child_crashing_k_times_in_the_window_is_failing_then_recovers_and_a_healthy_one_never_is(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    counter = tmp_path / "starts"
    code = (
        "import pathlib, sys, time\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text() if p.exists() else 0) + 1\n"
        "p.write_text(str(n))\n"
        "sys.exit(3) if n <= 3 else time.sleep(120)\n"
    )  # crashes on its first 3 starts, then runs for good
    flaky = python_child("flaky", code, tmp_path)
    calm = sleeper(tmp_path)
    supervisor.spawn(flaky)
    supervisor.start(calm, 10)
    said = Said()

    tick_until(supervisor, said, lambda: flaky.failing, 30)
    states = {child.name: child for child in read_state(supervisor.state_path) or []}
    assert states["flaky"].failing and "3 exits within 30 s" in states["flaky"].failing_detail
    assert not states["sleeper"].failing and states["sleeper"].state == "running"  # the control
    panel = render_to_string(
        "console/_system_panel.html",
        {"status": SystemStatus(True, "", {}, [], None, list(states.values()))},
    )
    assert 'Process <code>flaky</code></td>\n      <td><span class="badge bad">failing' in panel
    assert 'Process <code>sleeper</code></td>\n      <td><span class="badge ok">running' in panel
    assert "It is FAILING: 3 exits within 30 s" in said.text()

    tick_until(supervisor, said, lambda: not flaky.failing, 30)  # it ran healthy for 1.5 s
    assert flaky.exited() is None and flaky.restarts == 3
    assert "flaky has run 2 s: no longer failing." in said.text()
    assert not any(c.failing for c in read_state(supervisor.state_path) or [])
    assert calm.restarts == 0 and not any("sleeper" in line for _, line in said)


@pytest.mark.django_db
def test_manage_py_status_names_a_failing_process_and_exits_1(tmp_path: Path) -> None:
    up = Supervisor({}, policy=FAST, state_path=state_path(settings.RUN_DIR))
    broken, calm = python_child("beat", "raise SystemExit(2)", tmp_path), sleeper(tmp_path)
    up.spawn(broken)
    up.start(calm, 10)
    try:
        tick_until(up, Said(), lambda: broken.failing, 30)
        out = io.StringIO()
        with pytest.raises(SystemExit) as exited:
            call_command("status", stdout=out)
    finally:
        up.stop_all(grace_seconds=5)
    assert exited.value.code == 1
    assert "beat           FAILING  pid" in out.getvalue()
    assert "last exited with code 2 (3 exits within 30 s" in out.getvalue()
    assert "sleeper        running  pid" in out.getvalue()
    assert read_state(state_path(settings.RUN_DIR)) is None  # removed when everything stopped


def test_the_leftovers_of_a_killed_leader_are_ended_before_its_restart(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    # like a Celery worker whose main process is SIGKILLed: its pool process stays in the group
    pool = Child("worker", ["bash", "-c", "sleep 300 & wait"], tmp_path / "w.log", lambda: True)
    supervisor.start(pool, 10)
    tick_until(supervisor, Said(), lambda: len(psutil.Process(pool.pid).children()) == 1, 10)
    orphan = psutil.Process(pool.pid).children()[0]
    first_pid = pool.pid

    psutil.Process(pool.pid).kill()
    said = Said()
    tick_until(supervisor, said, lambda: pool.restarts == 1, 10)

    assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE
    assert pool.pid != first_pid and pool.exited() is None
    assert "✗ worker killed by SIGKILL; restarting it in 0 s." in said.text()


def test_stop_all_stops_running_and_waiting_children_newest_first_with_nothing_left(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    calm = sleeper(tmp_path)
    family = Child("family", ["bash", "-c", "sleep 300 & sleep 300"], tmp_path / "f.log",
                   lambda: True)  # fmt: skip
    crasher = python_child("crasher", "raise SystemExit(1)", tmp_path)
    supervisor.policy = RestartPolicy(first_backoff=60)  # it waits out its backoff when stopped
    for child in (calm, family):
        supervisor.start(child, 10)
    supervisor.spawn(crasher)
    tick_until(supervisor, Said(), lambda: crasher.state == "restarting", 10)
    processes = [
        psutil.Process(calm.pid),
        *psutil.Process(family.pid).children(),
        psutil.Process(family.pid),
    ]

    supervisor.stop_all(grace_seconds=5)

    assert [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert calm.process is not None and calm.process.returncode == -signal.SIGTERM  # not SIGKILL:
    # the stop signals the supervisor blocks while it spawns are unblocked in each child
    assert not Path(tmp_path / "supervisor.json").exists()


def test_embedded_redis_keeps_its_data_across_a_kill_also_when_it_starts_from_an_old_snapshot(
    tmp_path: Path,
) -> None:
    data_dir, socket_path = tmp_path / "data", tmp_path / "redis.sock"
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=2)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def start(supervisor: Supervisor) -> Child:
        argv = redis_server_argv(socket_path, data_dir)
        child = Child("redis", argv, tmp_path / "redis.log", answers)
        supervisor.start(child, 30)
        return child

    # a data dir from before the append-only file: only a snapshot, holding a queued task
    old = Supervisor({})
    start(old)
    client.config_set("appendonly", "no")
    client.rpush("default", "a queued task")
    client.save()
    old.stop_all(grace_seconds=5)
    (data_dir / "redis" / AOF_FILE).unlink(missing_ok=True)

    supervisor = Supervisor({}, policy=RestartPolicy(first_backoff=0.1))
    try:
        redis_child = start(supervisor)
        assert client.lrange("default", 0, -1) == [b"a queued task"]  # read from the snapshot
        assert switch_to_append_only(redis_child.argv, client)
        client.rpush("default", "queued after the switch")  # only in the append-only file
        said = Said()
        psutil.Process(redis_child.pid).kill()
        tick_until(supervisor, said, lambda: redis_child.restarts == 1 and answers(), 30)
        assert client.lrange("default", 0, -1) == [b"a queued task", b"queued after the switch"]
        assert not switch_to_append_only(redis_child.argv, client)  # on already
    finally:
        supervisor.stop_all(grace_seconds=5)
