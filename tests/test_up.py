"""`manage.py up` starts the whole embedded stack, restarts a child that dies while a job runs, and
Ctrl-C stops it with nothing left behind."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import psutil
import pytest
import redis

from tests.support.processes import (
    alive,
    embedded_env,
    free_port,
    http_status,
    manage,
    process_tree,
    wait_until,
)
from tests.support.reports import record

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("starter_artifacts")]


def test_up_serves_the_console_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port, env = free_port(), embedded_env(tmp_path / "var")
    log = (tmp_path / "up.log").open("w+")
    up = subprocess.Popen(manage("up", "--port", str(port)), env=env, stdout=log, stderr=log)
    try:
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/login/") == 200, 180, "login page")
        up_log = tmp_path / "up.log"
        wait_until(lambda: "RFT Console is ready" in up_log.read_text(), 180, "all processes")
        status = subprocess.run(
            manage("status", "--json", "--wait", "120"), env=env, capture_output=True, text=True
        )
        assert status.returncode == 0, status.stdout + status.stderr
        queues = json.loads(status.stdout)["queues"]
        assert queues["gpu"] == [queues["gpu"][0]] and queues["gpu"][0].startswith("gpu@")
        assert queues["default"][0].startswith("default@")
        tree = process_tree(up.pid)
        assert len(tree) >= 6  # up, redis, web-1…N, two workers, beat (+ worker pool processes)
    finally:
        up.send_signal(signal.SIGINT)
        returncode = up.wait(timeout=60)
    log.seek(0)
    output = log.read()
    assert returncode == 0, output
    assert "RFT Console is ready" in output and "All processes stopped." in output
    assert alive(tree[1:]) == []
    assert not (tmp_path / "var" / "run" / "redis.sock").exists()


def test_up_prints_the_generated_admin_password_once(tmp_path: Path) -> None:
    env = embedded_env(tmp_path / "var")
    del env["RFT_ADMIN_PASSWORD"]
    port = free_port()
    up = subprocess.Popen(
        manage("up", "--port", str(port)), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    lines: list[str] = []
    try:
        assert up.stdout is not None
        for raw in up.stdout:
            lines.append(raw.decode())
            if "RFT Console is ready" in lines[-1] or up.poll() is not None:
                break
    finally:
        up.send_signal(signal.SIGINT)
        up.communicate(timeout=60)
    created = [line for line in lines if "created user 'admin' with password:" in line]
    assert len(created) == 1, "".join(lines)
    password = created[0].rsplit(":", 1)[1].strip()
    assert len(password) >= 12


def test_up_refuses_a_port_that_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            manage("up", "--port", str(port)),
            env=embedded_env(tmp_path / "var"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr


# A tiny job made inside the console `up` runs (its own data dir and database), as the admin who
# owns the starter model and demo tasks; prints the job's id.
START_JOB = """
from jobs.actions import create_job
from jobs.models import Dataset, ModelEntry
from rewards.models import RewardFunction
from rftconsole.cli import first_admin
admin = first_admin()
job = create_job(
    admin, "kill-test", ModelEntry.objects.get(owner=admin, name="starter"),
    Dataset.objects.get(owner=admin, name="arithmetic-train"),
    RewardFunction.objects.get(owner=admin, name="arithmetic").latest_version(),
    Dataset.objects.get(owner=admin, name="arithmetic-validation"),
    given={"maxSteps": 6, "batchSize": 32, "trainingSamplePerPrompt": 8, "evalInterval": 10,
           "inferenceMaxTokens": 32},
    profile="cpu",
)
print(job.pk)
"""


def job_row(database: Path, job_id: int) -> tuple[str, list[int]]:
    """The job's status and its train steps, read from `up`'s SQLite database as they are."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
        (status,) = db.execute("SELECT status FROM jobs_job WHERE id = ?", (job_id,)).fetchone()
        rows = db.execute(
            "SELECT step FROM jobs_metricpoint WHERE job_id = ? AND kind = 'train' ORDER BY step",
            (job_id,),
        ).fetchall()
    return status, [step for (step,) in rows]


def supervised(up_pid: int, name: str) -> psutil.Process:
    """The group leader `up` started for a child (not a worker's pool processes)."""
    marks = {"redis": "redis-server", "default-worker": "default@"}
    return next(
        p for p in psutil.Process(up_pid).children() if marks[name] in " ".join(p.cmdline())
    )


def embedded_redis(tmp_path: Path) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(tmp_path / "var" / "run" / "redis.sock"))


@pytest.mark.reliability
def test_up_restarts_a_killed_redis_and_default_worker_and_the_running_job_completes_once(
    tmp_path: Path,
) -> None:
    port, env, up_log = free_port(), embedded_env(tmp_path / "var"), tmp_path / "up.log"
    log = up_log.open("w+")
    up = subprocess.Popen(manage("up", "--port", str(port)), env=env, stdout=log, stderr=log)
    recovered: dict[str, float] = {}
    mid_job: dict[str, tuple[str, int]] = {}
    try:
        wait_until(lambda: "RFT Console is ready" in up_log.read_text(), 240, "ready")
        made = subprocess.run(manage("shell", "-c", START_JOB), env=env, capture_output=True,
                              text=True, check=True)  # fmt: skip
        job_id, database = int(made.stdout.split()[-1]), tmp_path / "var" / "rftconsole.sqlite3"
        for name, after_step in (("redis", 1), ("default-worker", 2)):
            wait_until(lambda s=after_step: len(job_row(database, job_id)[1]) >= s, 300, "a step")
            status, steps = job_row(database, job_id)
            mid_job[name] = (status, len(steps))
            if name == "redis":  # written just before the kill: the append-only file keeps it
                embedded_redis(tmp_path).set("written-before-the-kill", "kept")
            killed_at = time.monotonic()
            supervised(up.pid, name).kill()
            ready_again = f"✓ {name} is ready again"
            wait_until(lambda n=ready_again: n in up_log.read_text(), 120, f"{name} restarted")
            recovered[name] = time.monotonic() - killed_at
        kept = embedded_redis(tmp_path).get("written-before-the-kill")
        wait_until(lambda: job_row(database, job_id)[0] in ("completed", "failed"), 600, "the end")
        status, steps = job_row(database, job_id)
        report = subprocess.run(
            manage("status", "--json", "--wait", "60"), env=env, capture_output=True, text=True
        )
        tree = process_tree(up.pid)
    finally:
        up.send_signal(signal.SIGINT)
        returncode = up.wait(timeout=90)
    output = up_log.read_text()
    for name in ("redis", "default-worker"):
        lost = sorted(set(range(1, 7)) - set(steps))
        record("faults", ("Fault", "Tried", "Lost"), f"{name} SIGKILLed under `up` mid-job",
               f"1 kill at step {mid_job[name][1]} of 6 (job {mid_job[name][0]})",
               f"restarted by the supervisor, ready again after {recovered[name]:.1f} s; job "
               f"{status}, {len(lost)} steps lost, {len(steps) - len(set(steps))} duplicated")  # fmt: skip
        assert mid_job[name][0] != "completed"
        assert f"✗ {name} killed by SIGKILL; restarting it in 1 s." in output
    assert kept == b"kept"
    assert status == "completed", output
    assert steps == [1, 2, 3, 4, 5, 6]  # each step exactly once
    processes = {p["name"]: p for p in json.loads(report.stdout)["processes"]}
    assert processes["redis"]["restarts"] == processes["default-worker"]["restarts"] == 1
    assert processes["gpu-worker"]["restarts"] == processes["web-1"]["restarts"] == 0
    assert not any(p["failing"] for p in processes.values())
    assert report.returncode == 0, report.stdout + report.stderr
    assert returncode == 0 and "All processes stopped." in output
    assert alive(tree[1:]) == []
