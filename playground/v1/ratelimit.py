"""A per-API-key request limit for `/v1/`: a fixed one-minute window counted in Django's cache.

With the default local-memory cache the count is per web process (N processes allow N × the
limit); point CACHES at Redis to share it. Fixed windows allow a burst of up to twice the limit
across a window boundary, which is fine for protecting a small inference pool.
"""

from __future__ import annotations

import time

from django.core.cache import cache

WINDOW_SECONDS = 60


def take(key_id: str, limit: int) -> int | None:
    """Count one request for `key_id`; None if allowed, else the seconds until the window ends.
    Sync: called in the request's sync thread with the API key check."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    name = f"rft:v1-rate:{key_id}:{window}"
    cache.add(name, 0, timeout=WINDOW_SECONDS * 2)
    try:
        count = cache.incr(name)
    except ValueError:  # expired between add and incr
        cache.set(name, 1, timeout=WINDOW_SECONDS * 2)
        count = 1
    if count <= limit:
        return None
    return max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
