"""Database writes of a running job that outlive a database restart.

A training task keeps its database connection for as long as the job runs (hours); Django only
replaces a broken connection between requests or tasks. When PostgreSQL restarts (an upgrade, a
failover, `pg_ctlcluster … restart`) that connection is dead, and the next metric write would crash
the job. Each write of a step is idempotent (an upsert, or delete-then-insert of the step's own
rows), so it is retried on a fresh connection until the database answers again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Far longer than a restart takes (seconds); a database gone for longer fails the job as before.
RETRY_FOR_SECONDS = 120.0
FIRST_DELAY_SECONDS = 0.25
MAX_DELAY_SECONDS = 5.0


def reconnecting(write: Callable[[], T], what: str, retry_for: float = RETRY_FOR_SECONDS) -> T:
    """Run `write`; when the connection is lost, reconnect and run it again (with backoff)."""
    deadline, delay = time.monotonic() + retry_for, FIRST_DELAY_SECONDS
    while True:
        try:
            return write()
        except (OperationalError, InterfaceError) as error:
            # Inside a transaction the work before the failure is gone: only its owner can redo it.
            if connection.in_atomic_block or time.monotonic() + delay > deadline:
                raise
            logger.warning("database lost while writing %s (%s); retrying in %.2f s",
                           what, str(error).strip(), delay)  # fmt: skip
            drop_connection()
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_SECONDS)


def drop_connection() -> None:
    """Forget this thread's connection; the next query opens a new one."""
    with contextlib.suppress(DatabaseError):
        connection.close()
