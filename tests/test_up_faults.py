"""Every kind of child of `manage.py up` is SIGKILLed while a job trains, in one run: embedded
Redis, the default worker, a web process, beat and the gpu worker. Each is restarted by the
supervisor, and nothing is lost: the job completes with steps 1..N exactly once, a task sent
while the default worker was down runs, and uploads during the web kill are each stored once,
whole. Each kill records what was lost and how long recovery took (RELIABILITY.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from tests.support.processes import alive, embedded_env, free_port, manage, process_tree, wait_until
from tests.support.reports import record
from tests.support.up_console import (
    START_JOB,
    Uploader,
    all_dataset_files,
    child_pid,
    console_celery,
    job_row,
    stored_datasets,
)

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("starter_artifacts")]

STEPS = 24
KILLED = ("redis", "default-worker", "web-1", "beat", "gpu-worker")
ROWS = b"".join(
    json.dumps({"messages": [{"role": "user", "content": f"{n}+1?"}], "reference_answer": str(n + 1)})
    .encode() + b"\n"
    for n in range(3)
)  # fmt: skip


class Console:
    """The `up` under test, and what the test measured about each kill."""

    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "var"
        self.log = tmp_path / "up.log"
        self.database = self.data / "rftconsole.sqlite3"
        self.port = free_port()
        self.job_id = 0
        self.recovered: dict[str, float] = {}
        self.at: dict[str, tuple[str, int]] = {}  # the job's status and step at each kill
        self.tried: dict[str, str] = {}
        self.lost: dict[str, str] = {}

    def said(self, text: str) -> bool:
        return text in self.log.read_text()

    def kill(self, name: str) -> float:
        """SIGKILL the child's main process; wait until `up` says it is ready again."""
        self.note_job(name)
        killed_at = time.monotonic()
        os.kill(child_pid(self.data, name), signal.SIGKILL)
        wait_until(lambda: self.said(f"✓ {name} is ready again"), 180, f"{name} restarted")
        self.recovered[name] = time.monotonic() - killed_at
        return killed_at

    def note_job(self, name: str) -> None:
        row = job_row(self.database, self.job_id)
        self.at[name] = (row.status, len(row.steps))

    def steps_reach(self, count: int) -> None:
        wait_until(lambda: len(job_row(self.database, self.job_id).steps) >= count, 300, "a step")


def kill_redis(console: Console) -> None:
    console.steps_reach(1)
    client = redis.Redis(unix_socket_path=str(console.data / "run" / "redis.sock"))
    client.set("written-before-the-kill", "kept")  # the append-only file must keep it
    console.kill("redis")
    kept = client.get("written-before-the-kill")
    console.tried["redis"] = "1 kill, a key written just before it"
    console.lost["redis"] = "the key read back" if kept == b"kept" else "the key LOST"
    assert kept == b"kept"


def kill_default_worker(console: Console) -> None:
    """A task sent while the worker is down waits in the queue and runs once it is back."""
    celery = console_celery(console.data)
    console.note_job("default-worker")
    exits = console.log.read_text().count("✗ default-worker ")
    os.kill(child_pid(console.data, "default-worker"), signal.SIGKILL)
    killed_at = time.monotonic()
    # Sent once `up` has seen the exit and emptied the worker's group: a message pushed while the
    # dying process's socket is still open is handed to its pending BRPOP and lost with it (the
    # Redis transport's at-most-once moment; RELIABILITY.md), which is not what this kill tests.
    wait_until(lambda: console.log.read_text().count("✗ default-worker ") > exits, 60, "exit seen")
    sent = celery.send_task("rftconsole.report_worker", args=["default"], queue="default")
    wait_until(lambda: console.said("✓ default-worker is ready again"), 180, "default restarted")
    console.recovered["default-worker"] = time.monotonic() - killed_at
    answer = sent.get(timeout=120)
    ran_after = time.monotonic() - killed_at
    console.tried["default-worker"] = "a task sent to its queue while it was down"
    console.lost["default-worker"] = f"the task ran {ran_after:.1f} s after the kill"
    assert answer["queue"] == "default"


def kill_web_under_uploads(console: Console, api_key: str) -> None:
    """Uploads keep going through the other web process; a broken one is retried; each stored
    dataset is whole (its rows, its file) and nothing half-stored is left."""
    uploader = Uploader(f"http://127.0.0.1:{console.port}", api_key, ROWS)
    thread = threading.Thread(target=uploader.run, name="uploads")
    thread.start()
    try:
        wait_until(lambda: len(uploader.answers) >= 2, 60, "uploads before the kill")
        console.kill("web-1")
        after = len(uploader.answers)
        wait_until(lambda: len(uploader.answers) >= after + 2, 60, "uploads after the restart")
    finally:
        uploader.stop.set()
        thread.join(timeout=120)
    stored = stored_datasets(console.database, "upload-")
    missing = [path for _, _, path in stored if not Path(path).is_file()]
    # A request killed mid-import can leave its unfinished file behind (not listed, never used):
    # counted here, not hidden; RELIABILITY.md says so.
    on_disk = {p.as_posix() for p in (console.data / "datasets").rglob("*") if p.is_file()}
    left_behind = on_disk - all_dataset_files(console.database)
    console.tried["web-1"] = (
        f"{len(uploader.answers)} dataset uploads through the API around the kill "
        f"({uploader.broken()} broken connection(s), each retried)"
    )
    console.lost["web-1"] = (
        f"{len(uploader.answers) - len(stored)} uploads lost, {len(missing)} stored without a "
        f"file; {len(left_behind)} unfinished upload files left on disk"
    )
    assert [name for name, _, _ in stored] == sorted(uploader.answers)  # each once
    assert {count for _, count, _ in stored} == {3} and missing == []
    for tries in uploader.answers.values():  # a retry refused as a taken name: the first stored it
        assert tries[-1] == 201 or (tries[-1] == 400 and None in tries[:-1]), tries


def kill_gpu_worker(console: Console) -> None:
    """Past a checkpoint: the job is re-queued (stale heartbeat, the reaper in beat) and resumes
    from that checkpoint on the restarted worker; the steps after it are replayed, not duplicated."""
    job_id = console.job_id

    def past_a_checkpoint() -> bool:
        row = job_row(console.database, job_id)
        return bool(row.checkpoints) and len(row.steps) > row.checkpoints[-1]

    wait_until(past_a_checkpoint, 300, "a step past a checkpoint")
    before = job_row(console.database, job_id)
    killed_at = console.kill("gpu-worker")
    wait_until(lambda: job_row(console.database, job_id).attempts == 2, 180, "the job re-queued")
    wait_until(lambda: job_row(console.database, job_id).status == "training", 180, "resumed")
    resumed = time.monotonic() - killed_at
    console.tried["gpu-worker"] = f"checkpoint {before.checkpoints[-1]} saved before the kill"
    console.lost["gpu-worker"] = f"job re-queued and resumed from checkpoint {resumed:.1f} s after"


@pytest.mark.reliability
@pytest.mark.timeout(900)
def test_every_child_of_up_killed_mid_job_is_restarted_and_nothing_is_lost(tmp_path: Path) -> None:
    console, env = Console(tmp_path), embedded_env(tmp_path / "var")
    # Two web processes (one keeps serving while the other is down); the reaper's shortest wait
    # for a silent worker and a short reap interval, so the gpu kill is noticed in seconds.
    env.update(RFT_WEB_PROCESSES="2", RFT_HEARTBEAT_TIMEOUT="10", RFT_REAP_INTERVAL="5")
    log = console.log.open("w+")
    up = subprocess.Popen(
        manage("up", "--port", str(console.port)), env=env, stdout=log, stderr=log
    )
    try:
        wait_until(lambda: console.said("RFT Console is ready"), 240, "ready")
        made = subprocess.run(manage("shell", "-c", START_JOB), env=env, capture_output=True,
                              text=True, check=True)  # fmt: skip
        console.job_id, api_key = int(made.stdout.split()[-2]), made.stdout.split()[-1]
        kill_redis(console)
        console.steps_reach(2)
        kill_default_worker(console)
        kill_web_under_uploads(console, api_key)
        console.kill("beat")
        console.tried["beat"] = "1 kill"
        console.lost["beat"] = "nothing: its reaper re-queued the job of the gpu kill below"
        kill_gpu_worker(console)
        ended = ("completed", "failed")
        wait_until(lambda: job_row(console.database, console.job_id).status in ended, 600, "end")
        job = job_row(console.database, console.job_id)
        report = subprocess.run(
            manage("status", "--json", "--wait", "60"), env=env, capture_output=True, text=True
        )
        tree = process_tree(up.pid)
    finally:
        up.send_signal(signal.SIGINT)
        returncode = up.wait(timeout=90)
    output = console.log.read_text()
    record_rows(console, job.status, job.steps)
    for name in KILLED:
        assert console.at[name][0] not in ("completed", "failed"), console.at  # mid-job
        assert f"✗ {name} killed by SIGKILL; restarting it in 1 s." in output
    assert job.status == "completed", output
    assert job.steps == list(range(1, STEPS + 1))  # each step exactly once
    assert job.attempts == 2  # the gpu kill: one re-queue, resumed from its checkpoint
    processes = {p["name"]: p for p in json.loads(report.stdout)["processes"]}
    assert {name: processes[name]["restarts"] for name in KILLED} == dict.fromkeys(KILLED, 1)
    assert processes["web-2"]["restarts"] == 0
    assert not any(p["failing"] for p in processes.values())
    assert report.returncode == 0, report.stdout + report.stderr
    assert returncode == 0 and "All processes stopped." in output
    assert alive(tree[1:]) == []


def record_rows(console: Console, status: str, steps: list[int]) -> None:
    lost = sorted(set(range(1, STEPS + 1)) - set(steps))
    outcome = f"job {status}, {len(lost)} steps lost, {len(steps) - len(set(steps))} duplicated"
    for name in KILLED:
        if name in console.recovered:
            status_then, step = console.at[name]
            record("faults", ("Fault", "Tried", "Lost"), f"{name} SIGKILLed under `up` mid-job",
                   f"at step {step} of {STEPS} (job {status_then}): {console.tried[name]}",
                   f"restarted, ready again after {console.recovered[name]:.1f} s; "
                   f"{console.lost[name]}; {outcome}")  # fmt: skip
