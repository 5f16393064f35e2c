"""Real GRPO jobs on the starter model, run by a real `gpu` worker process over real Redis."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import F

from jobs.actions import create_job, request_pause, request_stop, resume
from jobs.models import (
    Checkpoint,
    Dataset,
    Job,
    MetricPoint,
    ModelEntry,
    Rollout,
    ValidationAnswers,
)
from jobs.tasks import reap_stale_jobs
from rewards.models import RewardFunction
from rftconsole.processes.supervisor import Supervisor
from tests.support.reports import record
from tests.support.stack import start_worker

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

SMALL = {
    "batchSize": 32,
    "trainingSamplePerPrompt": 8,
    "evalInterval": 10,
    "inferenceMaxTokens": 32,
}


def launch(user: User, task: str = "arithmetic", **hyperparameters: Any) -> Job:
    named = {"owner": user}
    return create_job(
        user,
        f"{task}-job",
        ModelEntry.objects.get(name="starter", **named),
        Dataset.objects.get(name=f"{task}-train", **named),
        RewardFunction.objects.get(name=task, **named).latest_version(),
        Dataset.objects.get(name=f"{task}-validation", **named),
        given={**SMALL, **hyperparameters},
        profile="cpu",
    )


def wait_for(job: Job, condition: Any, timeout: float, what: str) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if condition(job):
            return job
        if job.status == Job.Status.FAILED:
            raise AssertionError(f"job failed: {job.status_reason}")
        time.sleep(0.5)
    raise AssertionError(
        f"timed out waiting for {what}; job is {job.status} at step {job.current_step}"
    )


def train_steps(job: Job) -> list[int]:
    return list(MetricPoint.objects.filter(job=job, kind="train").values_list("step", flat=True))


def eval_accuracy(job: Job, step: int) -> float:
    return MetricPoint.objects.get(job=job, kind="eval", step=step).values["accuracy"]


def test_a_job_completes_and_its_tuned_model_beats_the_base(
    live_stack: Supervisor, trainer_user: User
) -> None:
    job = launch(trainer_user, "extraction", maxSteps=30, batchSize=64)

    job = wait_for(job, lambda j: j.status == Job.Status.COMPLETED, 300, "completion")

    assert train_steps(job) == list(range(1, 31))
    assert eval_accuracy(job, job.output_step) > eval_accuracy(job, 0)
    tuned = job.output_model
    assert (tuned.kind, tuned.base.name, tuned.is_adapter) == (
        ModelEntry.Kind.TUNED,
        "starter",
        True,
    )
    assert Path(tuned.path, "adapter_model.safetensors").exists()
    statuses = list(job.events.values_list("status", flat=True))
    for expected in ("queued", "validating", "evaluating", "training", "completed"):
        assert expected in statuses
    point = MetricPoint.objects.get(job=job, kind="train", step=5).values
    for key in (
        "reward_mean",
        "reward_std",
        "frac_reward_zero_std",
        "loss",
        "completion_length_mean",
        "step_seconds",
        "tokens_per_second",
        "reward_errors",
        "reward_samples",
        "reward_p10",
        "reward_median",
        "reward_p90",
    ):
        assert key in point, key
    assert any(key.startswith("component/") for key in point)
    group = Rollout.objects.filter(job=job, step=5).first()
    assert group is not None and len(group.completions) == 8
    assert {"text", "reward", "components", "error"} <= set(group.completions[0])
    assert 1 <= Checkpoint.objects.filter(job=job).count() <= 4


def test_pause_then_resume_continues_one_history_without_gaps(
    live_stack: Supervisor, trainer_user: User
) -> None:
    job = launch(trainer_user, maxSteps=30)
    wait_for(job, lambda j: j.current_step >= 3, 180, "a few steps")

    request_pause(job)
    job = wait_for(job, lambda j: j.status == Job.Status.PAUSED, 120, "pause")
    paused_at = job.current_step
    assert Checkpoint.objects.filter(job=job, step=paused_at).exists()
    assert "Paused by the user" in job.status_reason

    resume(job)
    job = wait_for(job, lambda j: j.status == Job.Status.COMPLETED, 300, "completion after resume")

    assert train_steps(job) == list(range(1, 31))
    assert job.attempts == 2
    assert any(f"Resuming from step {paused_at}" in e.sub_status for e in job.events.all())


def test_stop_ends_at_a_step_boundary_with_a_usable_model(
    live_stack: Supervisor, trainer_user: User
) -> None:
    job = launch(trainer_user, maxSteps=200)
    wait_for(job, lambda j: j.current_step >= 12, 240, "a dozen steps")

    request_stop(job)
    job = wait_for(job, lambda j: j.status == Job.Status.STOPPED, 180, "stop")

    assert job.current_step < 200
    assert job.output_model is not None and Path(job.output_model.path).is_dir()
    assert "best checkpoint" in job.status_reason
    # each validation kept its answers, the base's (step 0) and the stopped model's among them
    answered = set(ValidationAnswers.objects.filter(job=job).values_list("step", flat=True))
    assert {0, job.current_step} <= answered, answered


@pytest.mark.reliability
def test_a_killed_worker_s_job_resumes_on_a_new_worker_without_losing_steps(
    live_stack: Supervisor, trainer_user: User, settings: Any, tmp_path: Path
) -> None:
    settings.RFT_HEARTBEAT_TIMEOUT = 10
    job = launch(trainer_user, maxSteps=30)
    wait_for(job, lambda j: j.current_step >= 14, 240, "steps past the first checkpoint")
    gpu = next(
        c for c in live_stack.children if c.name.startswith("gpu-worker") and c.exited() is None
    )

    os.killpg(gpu.pid, signal.SIGKILL)
    gpu.process.wait()  # type: ignore[union-attr]
    generation = sum(c.name.startswith("gpu-worker") for c in live_stack.children) + 1
    start_worker(live_stack, "gpu", 1, tmp_path, generation)
    deadline = time.monotonic() + 60
    while job.pk not in reap_stale_jobs():
        assert time.monotonic() < deadline, "the reaper never noticed the dead worker"
        time.sleep(1)

    job = wait_for(
        job, lambda j: j.status == Job.Status.COMPLETED, 300, "completion on the new worker"
    )
    steps = train_steps(job)
    lost, duplicated = set(range(1, 31)) - set(steps), len(steps) - len(set(steps))
    record("faults", ("Fault", "Tried", "Lost"), "gpu worker SIGKILLed mid-job (step ≥ 14)",
           "1 kill, 30 steps", f"job {job.status} after {job.attempts} attempts; "
           f"{len(lost)} steps lost, {duplicated} duplicated")  # fmt: skip
    assert steps == list(range(1, 31))  # replayed steps replaced, none lost
    assert job.attempts == 2
    assert any("stopped responding" in e.message for e in job.events.all())


@pytest.mark.reliability
def test_a_queued_job_whose_message_was_lost_is_sent_again_once_a_worker_sits_idle(
    live_stack: Supervisor, trainer_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[Any, ...]] = []
    with monkeypatch.context() as broker:  # the message never reaches the broker
        broker.setattr("jobs.actions.queue_on_commit", lambda *args, **_: sent.append(args))
        job = launch(trainer_user, maxSteps=2)
    assert sent == [("jobs.train_job", job.pk)]
    # The control: a job queued a moment ago is left alone, and stays queued.
    assert job.pk not in reap_stale_jobs()
    time.sleep(3)
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED
    # Queued for minutes while the gpu worker has nothing to do: its message is gone.
    job.events.update(created_at=F("created_at") - timedelta(minutes=5))
    deadline = time.monotonic() + 120  # until the session's gpu worker is idle
    while job.pk not in reap_stale_jobs():
        assert time.monotonic() < deadline, "the reaper never sent the lost job again"
        time.sleep(2)
    job = wait_for(job, lambda j: j.status == Job.Status.COMPLETED, 300, "completion")
    assert train_steps(job) == [1, 2] and job.attempts == 1
    assert any("message was lost: sent again" in e.message for e in job.events.all())
    record("faults", ("Fault", "Tried", "Lost"), "a queued job's message lost on its way",
           "1 job, its message dropped", f"job {job.status}; sent again by the reaper")  # fmt: skip


def test_the_arithmetic_demo_config_beats_bedrocks_claimed_gain_headless(
    trainer_user: User, tmp_path: Path
) -> None:
    """The demo's own settings, capped at 30 steps (its full 189 steps are the bench's
    effectiveness figure): the headless command trains and the model already learns."""
    User.objects.filter(pk=trainer_user.pk).update(is_superuser=True)  # the command acts as admin
    demo = yaml.safe_load(Path("examples/arithmetic.yaml").read_text())
    demo["hyperparameters"].update(maxSteps=30, evalInterval=10)
    config = tmp_path / "arithmetic-30.yaml"
    config.write_text(yaml.safe_dump(demo))
    out = io.StringIO()

    call_command("train", str(config), stdout=out)

    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["status"] == "completed", out.getvalue()
    assert summary["final"]["accuracy"] >= 1.66 * summary["base"]["accuracy"], summary
    assert summary["steps"] > 0  # how long it takes is a benchmark (bench/), not a test
