"""Run a job as a group of N processes with torchrun, from the gpu worker's task, and settle it.

torchrun (`--standalone`: one host, a free port of its own) starts N ranks of
jobs/training/rank.py and, when one exits non-zero or is killed, ends the others and exits
non-zero itself. Rank 0 records everything a job records, the final status included. What is
left to settle here is a group that ended without rank 0 saying how:
- a rank wrote a failure report → the job FAILS with that rank, its reason and its last log lines;
- a rank was killed (a signal, the OOM killer) → the job is re-queued and every rank resumes from
  the last checkpoint (as when a whole worker dies), or fails once its attempts are used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
from django.conf import settings

from jobs.actions import requeue_or_fail, set_status
from jobs.models import Job
from jobs.training.facts import WorkerFacts, job_dir, record_launch
from jobs.training.hyperparameters import Hyperparameters

LAST_LINES = 15
# Each failure in torchrun's summary: "rank      : 1 (local_rank: 1)" then "exitcode  : -9 (pid…)"
SUMMARY_FAILURE = re.compile(r"^\s*rank\s*:\s*(\d+).*?^\s*exitcode\s*:\s*(-?\d+)", re.M | re.S)


@dataclass
class GroupEnd:
    returncode: int
    run_dir: Path
    processes: int


def launch_command(job: Job, processes: int, run_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "jobs.training.torchrun", "--standalone", "--nnodes=1",
        f"--nproc-per-node={processes}", "--max-restarts=0", "--monitor-interval=0.5",
        "-m", "jobs.training.rank", str(job.pk), str(run_dir),
    ]  # fmt: skip


def group_env(processes: int) -> dict[str, str]:
    """The worker's environment, with the cores shared out: N ranks × threads ≤ the cores."""
    env = dict(os.environ)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env["OMP_NUM_THREADS"] = str(max(1, (cores or 1) // processes))
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one host: never a routable interface
    env["DJANGO_SETTINGS_MODULE"] = settings.SETTINGS_MODULE  # the ranks read what we read
    return env


def fresh_run_dir(job: Job) -> Path:
    """ranks/attempt-N: each attempt's logs, pids and failure reports, apart from the last's."""
    run_dir = job_dir(job) / "ranks" / f"attempt-{job.attempts}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    return run_dir


def run_group(job: Job, hp: Hyperparameters, worker: WorkerFacts) -> None:
    processes, run_dir = hp.num_processes, fresh_run_dir(job)
    command = launch_command(job, processes, run_dir)
    record_launch(job, hp, worker, command)
    with (run_dir / "torchrun.log").open("ab") as log:
        launcher = subprocess.Popen(
            command,
            env=group_env(processes),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = launcher.wait()
        finally:
            end_group(launcher, run_dir)
    settle(job, GroupEnd(returncode, run_dir, processes))


def end_group(launcher: subprocess.Popen, run_dir: Path) -> None:
    """Nothing of the group outlives the task: torchrun's session, then any rank still there."""
    if launcher.poll() is None:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
    for pid_file in run_dir.glob("rank-*.pid"):
        try:
            rank = psutil.Process(int(pid_file.read_text()))
            if str(run_dir) in rank.cmdline():  # this attempt's rank, not a reused pid
                rank.kill()
                rank.wait(timeout=30)
        except (psutil.Error, ValueError, OSError):
            continue  # gone already (the usual case)


def settle(job: Job, end: GroupEnd) -> None:
    job.refresh_from_db()
    if job.status in (*Job.FINISHED, Job.Status.PAUSED):
        return  # rank 0 said how it ended
    exits = rank_exits(end.run_dir)
    # torchrun ends the survivors of a killed rank with SIGTERM: the other signal is the cause
    killed = sorted(
        ((rank, code) for rank, code in exits if code < 0),
        key=lambda exit: (exit[1] == -signal.SIGTERM, exit[0]),
    )
    if killed:  # its peers' errors ("connection closed by peer") are its consequence
        rank, code = killed[0]
        lost = f"Rank {rank} of {end.processes} was killed by {signal_name(-code)}"
        requeue_or_fail(job, f"{lost} at step {job.current_step}")
        return
    failure = root_failure(end.run_dir)
    if failure is None and exits:
        rank, code = exits[0]
        failure = {"rank": rank, "reason": f"exited with code {code} before reporting why"}
    if failure is None:
        lost = f"The process group ended (torchrun exit code {end.returncode})"
        requeue_or_fail(job, f"{lost} at step {job.current_step}")
        return
    set_status(job, Job.Status.FAILED, message=failure_message(failure, end))


def failure_message(failure: dict, end: GroupEnd) -> str:
    if failure.get("user_facing"):
        return failure["reason"]  # the job's own words (bad data, failing rewards): as with one
    tail = last_lines(end.run_dir / f"rank-{failure['rank']}.log")
    return (
        f"Rank {failure['rank']} of {end.processes} failed: {failure['reason']}\n"
        f"Its last log lines:\n{tail}"
    )


def root_failure(run_dir: Path) -> dict | None:
    """The report to show: a rank's own error before a peer's lost connection, then rank order."""
    reports = []
    for path in run_dir.glob("rank-*.failure.json"):
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    reports.sort(key=lambda report: (bool(report.get("peer_lost")), report.get("rank", 0)))
    return reports[0] if reports else None


def rank_exits(run_dir: Path) -> list[tuple[int, int]]:
    """(rank, exit code) of each failed rank in torchrun's summary (negative: the signal)."""
    try:
        summary = (run_dir / "torchrun.log").read_text(errors="replace")
    except OSError:
        return []
    return [(int(rank), int(code)) for rank, code in SUMMARY_FAILURE.findall(summary)]


def last_lines(path: Path, count: int = LAST_LINES) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-count:])


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
