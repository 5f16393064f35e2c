"""A per-API-key request limit for `/v1/`: a fixed one-minute window counted in Django's cache.

The cache is Redis (settings.CACHES: the embedded one, or REDIS_URL), so all web processes and
hosts that share it enforce one limit. Fixed windows allow a burst of up to twice the limit
across a window boundary, which is fine for protecting a small inference pool.

Redis unreachable: the request is not refused (inference does not need Redis, and a 503 would
turn a Redis restart into a /v1/ outage). The count moves to this process's memory with a logged
warning — the limit then holds per process, as it did before it was shared — and Redis is tried
again every RETRY_SECONDS.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import cache
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from redis.exceptions import RedisError

WINDOW_SECONDS = 60
RETRY_SECONDS = 5.0

logger = logging.getLogger(__name__)
_local = LocMemCache("rft-v1-rate-fallback", {"OPTIONS": {"MAX_ENTRIES": 10_000}})
_shared_down_until = 0.0  # time.monotonic() before which the shared cache is not tried again


def take(key_id: str, limit: int) -> int | None:
    """Count one request for `key_id`; None if allowed, else the seconds until the window ends.
    Sync: called in the request's sync thread with the API key check."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    count = _count(f"rft:v1-rate:{key_id}:{window}")
    if count <= limit:
        return None
    return max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))


def _count(name: str) -> int:
    global _shared_down_until
    if time.monotonic() >= _shared_down_until:
        try:
            count = _increment(cache, name)
        except (RedisError, OSError) as error:
            _shared_down_until = time.monotonic() + RETRY_SECONDS
            logger.warning(
                "The shared /v1/ rate-limit count is unreachable (%s); counting in this process "
                "for the next %.0f s.",
                error,
                RETRY_SECONDS,
            )
        else:
            if _shared_down_until:
                _shared_down_until = 0.0
                logger.warning("The shared /v1/ rate-limit count answers again.")
            return count
    return _increment(_local, name)


def _increment(store: BaseCache, name: str) -> int:
    """Incr first: two Redis round trips for all but a window's first request. The key lives two
    windows, so it cannot expire while its own window is counted."""
    try:
        return int(store.incr(name))
    except ValueError:  # the window's first request (in this store)
        if store.add(name, 1, timeout=WINDOW_SECONDS * 2):
            return 1
        return int(store.incr(name))  # another process added it first
