"""What one training process knows about its process group (torchrun's environment).

A job with numProcesses > 1 runs as N ranks (jobs/training/launch.py starts them). Rank 0 alone
writes to the database and decides (stop, pause, the budget); it shares each decision with
`broadcast`. Every other rank refuses database writes outright (`refuse_database_writes`), so
a write that slipped into a shared code path fails loudly instead of racing rank 0.
With one process every function here is a no-op and `rank()` is 0.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "TRUNCATE")


class RankWriteRefused(RuntimeError):
    """A rank other than 0 tried to write to the database."""


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def _distributed() -> Any | None:
    """torch.distributed once the Trainer has initialised the group, else None."""
    if world_size() == 1:
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def broadcast(value: Any) -> Any:
    """Rank 0's `value` on every rank (each rank passes its own; only rank 0's counts)."""
    dist = _distributed()
    if dist is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank."""
    dist = _distributed()
    if dist is None:
        return [value]
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, value)
    return everyone


def barrier() -> None:
    dist = _distributed()
    if dist is not None:
        dist.barrier()


def _refuse_writes(execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
    verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    if verb in WRITES:
        raise RankWriteRefused(
            f"rank {rank()} may not write to the database (rank 0 alone writes): {sql[:120]}"
        )
    return execute(sql, params, many, context)


@contextmanager
def refuse_database_writes() -> Iterator[None]:
    """Within the block, this thread's connection refuses every write (reads are fine)."""
    with connection.execute_wrapper(_refuse_writes):
        yield
