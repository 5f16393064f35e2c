"""What one rank of a group runs once Django is set up (jobs/training/rank.py starts it).

Ranks other than 0 refuse database writes for the whole run. A rank that fails leaves
rank-N.failure.json for the launcher (jobs/training/launch.py settles the job from it) and its
traceback in its log, and returns 1 so that torchrun ends the group.
"""

from __future__ import annotations

import json
import traceback
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from accelerate import PartialState

from jobs.models import Job
from jobs.training.callback import RewardErrorsExceeded
from jobs.training.distributed import backend
from jobs.training.engine import JobFailure, failure_reason, run_rank
from jobs.training.group import refuse_database_writes, world_size


def run(job_id: int, run_dir: Path, me: int) -> int:
    try:
        join_group()
        with refuse_database_writes() if me else nullcontext():
            run_rank(Job.objects.get(pk=job_id))
    except Exception as error:  # noqa: BLE001 - reported to the launcher, then exit 1
        traceback.print_exc()
        report(run_dir, me, error)
        return 1
    return 0


def join_group() -> None:
    """Form the process group now, as the Trainer would (accelerate's shared state, which the
    Trainer then reuses): the base model's validation before the Trainer exists is shared too."""
    if world_size() > 1:
        cuda = torch.cuda.is_available()
        PartialState(cpu=not cuda, backend=backend(cuda))


def report(run_dir: Path, me: int, error: Exception) -> None:
    """rank-N.failure.json: what the launcher needs to settle the job."""
    user_facing = isinstance(error, JobFailure | RewardErrorsExceeded)
    failure = {
        "rank": me,
        "reason": str(error) if user_facing else failure_reason(error),
        "user_facing": user_facing,  # the job's own words (bad data, failing rewards)
        "peer_lost": peer_lost(error),
    }
    (run_dir / f"rank-{me}.failure.json").write_text(json.dumps(failure))


def peer_lost(error: Exception) -> bool:
    """The error of a rank whose peer died first (its collective lost the connection)."""
    text = str(error)
    return isinstance(error, dist.DistNetworkError) or any(
        sign in text for sign in ("Connection closed by peer", "Connection reset by peer")
    )
