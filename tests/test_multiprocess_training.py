"""Jobs on two processes (numProcesses 2): a torchrun group of gloo ranks on CPU, started by a real
`gpu` worker process, on the starter model. Rank 0 records; a killed rank re-queues the job and
every rank resumes from the checkpoint; pause and stop leave no process of the group behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.contrib.auth.models import User

from jobs.actions import request_pause, request_stop, resume
from jobs.models import Checkpoint, Job, MetricPoint, Rollout
from jobs.tasks import reap_stale_jobs
from jobs.training.facts import job_dir
from rftconsole.processes.supervisor import Supervisor
from tests.support.processes import wait_until
from tests.support.reports import record
from tests.support.stack import start_worker
from tests.test_training import launch, train_steps, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

# The arithmetic demo's settings (examples/arithmetic.yaml) on two processes of 32 completions.
DEMO = {
    "batchSize": 64,
    "trainingSamplePerPrompt": 8,
    "learningRate": 0.001,
    "inferenceMaxTokens": 48,
    "numProcesses": 2,
}


def group_processes(job: Job) -> list[psutil.Process]:
    """torchrun and the ranks of `job`'s group that are alive (their command names its run dir)."""
    marker, found = str(job_dir(job) / "ranks"), []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if marker in command and "jobs.training." in command:
            found.append(process)
    return [p for p in found if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def rank_pid(job: Job, rank: int) -> int:
    pid_file = job_dir(job) / "ranks" / f"attempt-{job.attempts}" / f"rank-{rank}.pid"
    wait_until(pid_file.is_file, 60, f"rank {rank}'s pid file")
    return int(pid_file.read_text())


def accuracy(job: Job, step: int) -> float:
    return MetricPoint.objects.get(job=job, kind="eval", step=step).values["accuracy"]


def kill_the_gpu_worker(live_stack: Supervisor, tmp_path: Path) -> None:
    """SIGKILL the gpu worker's process group (torchrun is in a session of its own) and start a
    new worker, as `up` would."""
    gpu = next(c for c in live_stack.children if c.name.startswith("gpu-") and c.exited() is None)
    os.killpg(gpu.pid, signal.SIGKILL)
    gpu.process.wait()  # type: ignore[union-attr]
    generation = sum(c.name.startswith("gpu-worker") for c in live_stack.children) + 1
    start_worker(live_stack, "gpu", 1, tmp_path, generation)


@pytest.mark.reliability
def test_a_two_process_job_learns_and_survives_a_killed_rank_a_killed_worker_pause_and_stop(
    live_stack: Supervisor, trainer_user: User, settings: Any, tmp_path: Path
) -> None:
    """One job (cheaper than several): each event with its own check, then the whole record."""
    settings.RFT_HEARTBEAT_TIMEOUT = 10  # the reaper (called below) notices the dead worker soon
    job = launch(trainer_user, **DEMO, maxSteps=200, evalInterval=10)
    job = wait_for(job, lambda j: j.current_step >= 12, 300, "steps past the first checkpoint")
    assert len(group_processes(job)) == 3  # torchrun and its two ranks: the probe sees them
    killed_at = job.current_step

    os.kill(rank_pid(job, 1), signal.SIGKILL)  # → every rank resumes from checkpoint 10

    job = wait_for(job, lambda j: j.attempts == 2 and j.current_step >= 22, 300, "the resume")
    assert len(group_processes(job)) == 3
    kill_the_gpu_worker(live_stack, tmp_path)  # → the group dies with it; the reaper re-queues
    wait_until(lambda: not group_processes(job), 15, "no rank outliving its worker")
    deadline = time.monotonic() + 60
    while job.pk not in reap_stale_jobs():
        assert time.monotonic() < deadline, "the reaper never noticed the dead worker"
        time.sleep(1)
    job = wait_for(job, lambda j: j.attempts == 3 and j.current_step >= 24, 300, "the 2nd resume")

    request_pause(job)
    job = wait_for(job, lambda j: j.status == Job.Status.PAUSED, 180, "pause")
    wait_until(lambda: not group_processes(job), 30, "the group gone after the pause")
    paused_at = job.current_step
    resume(job)
    job = wait_for(job, lambda j: j.current_step > max(paused_at, 30), 300, "past step 30")
    assert len(group_processes(job)) == 3  # every rank started again
    request_stop(job)
    job = wait_for(job, lambda j: j.status == Job.Status.STOPPED, 180, "stop")
    wait_until(lambda: not group_processes(job), 30, "the group gone after the stop")

    last = job.current_step
    assert sorted(train_steps(job)) == list(range(1, last + 1))  # each step once
    evals = sorted(MetricPoint.objects.filter(job=job, kind="eval").values_list("step", flat=True))
    assert {0, 10, 20, 30, last} <= set(evals) and len(evals) == len(set(evals))
    checkpoints = list(Checkpoint.objects.filter(job=job).values_list("step", flat=True))
    assert len(checkpoints) == len(set(checkpoints))
    messages = [event.message for event in job.events.all()]
    assert any("Rank 1 of 2 was killed by SIGKILL" in m for m in messages), "|".join(messages)
    # both ranks scored: a step's reward counts are the whole batch, its rollouts kept once
    first = MetricPoint.objects.get(job=job, kind="train", step=1).values
    assert first["reward_samples"] == 64, first
    assert Rollout.objects.filter(job=job, step=1).count() == 2  # rolloutGroups, not 2 per rank
    assert job.launch["processes"] == 2 and job.launch["backend"] == "gloo"
    assert "--nproc-per-node=2" in job.launch["command"]
    assert job.output_model is not None and Path(job.output_model.path).is_dir()
    base, tuned = accuracy(job, 0), accuracy(job, 30)
    assert tuned >= 1.66 * base, (base, tuned)
    record("faults", ("Fault", "Tried", "Lost"), "rank 1, then the gpu worker, of a 2-process job "
           "SIGKILLed; then paused, resumed, stopped", f"rank at step {killed_at}, worker past "
           f"step 22, pause at {paused_at}, stop at {last}", f"job {job.status}; 0 steps lost, 0 "
           f"duplicated; no process left after each; accuracy {base:.2f} → {tuned:.2f} at step 30"
    )  # fmt: skip
