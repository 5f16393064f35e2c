"""The pieces of a multi-process job around its ranks: rank 0 alone writes, a rank's failure report
and how the launcher settles a group that ended without rank 0 saying how."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from jobs.models import Job
from jobs.training.group import RankWriteRefused, refuse_database_writes
from jobs.training.launch import GroupEnd, settle
from jobs.training.reward_bridge import StepRewards, merge_steps
from rftconsole.models import WorkerReport
from tests.support.stack import child_env
from tests.test_training import launch

pytestmark = pytest.mark.django_db

# torchrun's own summary of a group whose rank 1 was SIGKILLed (its format, trimmed).
TORCHRUN_SUMMARY = """\
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
jobs.training.rank FAILED
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-03_18:01:02
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 4242)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 4242
============================================================
"""


def test_a_rank_other_than_0_cannot_write_to_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    alice = User.objects.create_user("alice")
    monkeypatch.setenv("RANK", "1")
    with refuse_database_writes():
        refused = pytest.raises(RankWriteRefused, match="rank 1 may not write to the database")
        with refused, transaction.atomic():  # a savepoint: the test's transaction goes on
            User.objects.filter(pk=alice.pk).update(first_name="Alice")
        assert User.objects.filter(pk=alice.pk).exists()  # reads are fine
    User.objects.filter(pk=alice.pk).update(first_name="Alice")  # control: the same write, allowed
    assert User.objects.get(pk=alice.pk).first_name == "Alice"


def test_rewards_of_every_rank_make_one_step() -> None:
    rank0 = StepRewards(scores=[1.0, 0.0], errors=1, samples=3, groups=[{"g": 0}, {"g": 1}])
    rank1 = StepRewards(scores=[0.5], errors=0, samples=3, groups=[{"g": 2}], output="printed")
    rank0.components, rank1.components = {"exact": [1.0]}, {"exact": [0.0]}

    merged = merge_steps([rank0, rank1], rollout_groups=3)

    assert merged.scores == [1.0, 0.0, 0.5] and (merged.errors, merged.samples) == (1, 6)
    assert merged.groups == [{"g": 0}, {"g": 1}, {"g": 2}] and merged.output == "printed"
    assert merged.components == {"exact": [1.0, 0.0]}
    assert merge_steps([rank0], rollout_groups=1) is rank0  # one process: as it was


@pytest.fixture
def training_job(trainer_user: User) -> Job:
    WorkerReport.objects.create(  # a worker that can host the job's 2 processes has reported
        hostname="gpu@host", queue="gpu", pid=1, torch_version="2.13.0", accelerator="cpu",
        processes=2, reported_at=timezone.now(),
    )  # fmt: skip
    job = launch(trainer_user, numProcesses=2)  # not sent: this test's transaction never commits
    Job.objects.filter(pk=job.pk).update(status=Job.Status.TRAINING, attempts=1, current_step=7)
    job.refresh_from_db()
    return job


def run_dir_with(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_failing_rank_fails_the_job_with_its_rank_and_last_log_lines(
    training_job: Job, tmp_path: Path
) -> None:
    log = "\n".join(f"line {n}" for n in range(1, 21))
    failure = json.dumps({"rank": 1, "reason": "ValueError: the reward broke"})
    run_dir = run_dir_with(tmp_path, {"rank-1.failure.json": failure, "rank-1.log": log})

    settle(training_job, GroupEnd(1, run_dir, 2))

    training_job.refresh_from_db()
    assert training_job.status == Job.Status.FAILED
    reason = training_job.status_reason
    assert reason.startswith("Rank 1 of 2 failed: ValueError: the reward broke")
    assert "line 20" in reason and "line 6\n" in reason and "line 5\n" not in reason  # the last 15


def test_the_job_fails_with_a_rank_s_own_error_not_its_peer_s_lost_connection(
    training_job: Job, tmp_path: Path
) -> None:
    lost = {"rank": 0, "reason": "RuntimeError: Connection closed by peer", "peer_lost": True}
    own = {"rank": 1, "reason": "MemoryError: out of memory", "peer_lost": False}
    run_dir = run_dir_with(
        tmp_path,
        {"rank-0.failure.json": json.dumps(lost), "rank-1.failure.json": json.dumps(own)},
    )

    settle(training_job, GroupEnd(1, run_dir, 2))

    training_job.refresh_from_db()
    assert training_job.status_reason.startswith("Rank 1 of 2 failed: MemoryError")


def test_a_job_s_own_failure_reads_as_with_one_process(training_job: Job, tmp_path: Path) -> None:
    reason = "33 of 64 rewards failed at step 7: more than half the rewards failed"
    failure = {"rank": 0, "reason": reason, "user_facing": True}
    run_dir = run_dir_with(tmp_path, {"rank-0.failure.json": json.dumps(failure)})

    settle(training_job, GroupEnd(1, run_dir, 2))

    training_job.refresh_from_db()
    assert training_job.status == Job.Status.FAILED and training_job.status_reason == reason


def test_a_killed_rank_requeues_the_job_to_resume_from_its_checkpoint(
    training_job: Job, tmp_path: Path
) -> None:
    lost = {"rank": 0, "reason": "RuntimeError: Connection closed by peer", "peer_lost": True}
    run_dir = run_dir_with(
        tmp_path, {"torchrun.log": TORCHRUN_SUMMARY, "rank-0.failure.json": json.dumps(lost)}
    )

    settle(training_job, GroupEnd(1, run_dir, 2))

    training_job.refresh_from_db()
    assert training_job.status == Job.Status.QUEUED
    assert training_job.status_reason.startswith("Rank 1 of 2 was killed by SIGKILL at step 7")


def test_a_killed_rank_fails_the_job_once_its_attempts_are_used(
    training_job: Job, tmp_path: Path, settings: object
) -> None:
    Job.objects.filter(pk=training_job.pk).update(attempts=3)
    training_job.refresh_from_db()
    run_dir = run_dir_with(tmp_path, {"torchrun.log": TORCHRUN_SUMMARY})

    settle(training_job, GroupEnd(1, run_dir, 2))

    training_job.refresh_from_db()
    assert training_job.status == Job.Status.FAILED and "gave up after 3 attempts" in (
        training_job.status_reason
    )


def test_a_group_whose_rank_0_finished_the_job_is_left_as_it_is(
    training_job: Job, tmp_path: Path
) -> None:
    Job.objects.filter(pk=training_job.pk).update(status=Job.Status.PAUSED)
    run_dir = run_dir_with(tmp_path, {"torchrun.log": TORCHRUN_SUMMARY})

    settle(training_job, GroupEnd(0, run_dir, 2))

    training_job.refresh_from_db()
    assert training_job.status == Job.Status.PAUSED


@pytest.mark.django_db(transaction=True)
def test_a_rank_that_fails_writes_its_report_and_exits_1(tmp_path: Path) -> None:
    env = {**child_env(), "RANK": "1", "WORLD_SIZE": "1"}  # no peers to wait for
    missing_job = str(10**9)

    done = subprocess.run(
        [sys.executable, "-m", "jobs.training.rank", missing_job, str(tmp_path)],
        env=env,
        capture_output=True,
        timeout=120,
    )

    assert done.returncode == 1
    report = json.loads((tmp_path / "rank-1.failure.json").read_text())
    assert report["rank"] == 1 and "DoesNotExist" in report["reason"]
    assert "Traceback" in (tmp_path / "rank-1.log").read_text()  # its output went to its log
    assert (tmp_path / "rank-1.pid").is_file()
