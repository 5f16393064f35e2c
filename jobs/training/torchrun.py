"""`python -m jobs.training.torchrun ARGS…`: torchrun (torch.distributed.run), dying with its
parent. The gpu worker's task starts it; if that process is killed, torchrun gets SIGKILL and
its ranks (each dies with torchrun: jobs/training/rank.py) follow, so no rank outlives a worker."""

from __future__ import annotations

from torch.distributed.run import main

from jobs.training.rank import die_with_parent

if __name__ == "__main__":
    die_with_parent()
    main()
