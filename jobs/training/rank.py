"""`python -m jobs.training.rank JOB_ID RUN_DIR`: one process of a multi-process job.

torchrun starts N of these (jobs/training/launch.py) with RANK, WORLD_SIZE and MASTER_ADDR/PORT
set; TRL's Trainer joins them into one process group (gloo on CPU, nccl on CUDA). Each rank logs
to RUN_DIR/rank-N.log and leaves its pid there; a rank that fails writes rank-N.failure.json (its
reason) and exits 1, which makes torchrun end the others. Ranks other than 0 refuse database
writes (jobs/training/group.py).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """SIGKILL this rank when torchrun dies, however it dies (a SIGKILLed worker or launcher
    must not leave ranks training on). Linux only; elsewhere the launcher's cleanup remains."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return


def log_to(path: Path) -> None:
    """Send this process's stdout and stderr (Python's and native libraries') to `path`."""
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)


def main(argv: list[str]) -> int:
    die_with_parent()
    job_id, run_dir = int(argv[1]), Path(argv[2])
    me = int(os.environ["RANK"])
    log_to(run_dir / f"rank-{me}.log")
    (run_dir / f"rank-{me}.pid").write_text(str(os.getpid()))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rftconsole.settings")
    import django

    django.setup()
    from jobs.training.rank_job import run  # models need Django set up first

    return run(job_id, run_dir, me)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
