"""A per-API-key request limit for `/v1/`: a fixed one-minute window counted in Django's cache.

The cache is Redis (settings.CACHES: the embedded one, or REDIS_URL), so all web processes and
hosts that share it enforce one limit. Fixed windows allow a burst of up to twice the limit
across a window boundary, which is fine for protecting a small inference pool.

Redis unreachable: the request is not refused (inference does not need Redis, and a 503 would
turn a Redis restart into a /v1/ outage). The count moves to this process's memory with a logged
warning — the limit then holds per process, as it did before it was shared — and Redis is tried
again every RETRY_SECONDS.

The count uses one cache object for the whole process, not Django's `cache`: under ASGI that is
one object per request (Django keeps cache connections per async context), so every /v1/
request opened a Redis connection of its own, on its way to the first token. This one's
connection pool is thread-safe and stays open.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.exceptions import RedisError

WINDOW_SECONDS = 60
RETRY_SECONDS = 5.0

logger = logging.getLogger(__name__)
_local = LocMemCache("rft-v1-rate-fallback", {"OPTIONS": {"MAX_ENTRIES": 10_000}})
_shared_down_until = 0.0  # time.monotonic() before which the shared cache is not tried again
_shared: BaseCache | None = None  # the process's client of the shared count, made on first use


def _shared_cache() -> BaseCache:
    global _shared
    if _shared is None:  # two threads may both make one: the spare is dropped, nothing is lost
        _shared = caches.create_connection("default")
    return _shared


@receiver(setting_changed)
def _forget_shared_cache(setting: str, **kwargs: Any) -> None:
    """A test that overrides CACHES gets a client of its own cache."""
    global _shared
    if setting == "CACHES":
        _shared = None


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
            count = _increment(_shared_cache(), name)
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
