"""One sign-in at a time per account and per client address, across every thread and process.

django-axes checks the failure count, then Django checks the password, then axes records the
failure. Requests in parallel all passed the check before any failure was recorded: 30 guesses
sent at once were all tried against a limit of 5, and the right password among them signed in.
So each sign-in holds a lock for its user name and its address for the whole check-try-record
step, inside one transaction: PostgreSQL's advisory transaction locks on the two keys; on SQLite,
the database's write lock, which the transaction takes as it begins (the console opens SQLite
transactions with BEGIN IMMEDIATE; see rftconsole.env.sqlite_database).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse

from rftconsole.security.accounts import client_address

View = Callable[..., HttpResponse]


def lock_keys(username: str, address: str | None) -> list[int]:
    """Signed 64-bit keys for the account and the address (advisory locks take a bigint).

    User names are case-folded and stripped: axes may count "Alice " with "alice", and a lock
    shared by two spellings costs nothing but a short wait."""
    names = {f"user:{username.strip().casefold()}", f"address:{address or ''}"}
    digests = (hashlib.sha256(name.encode()).digest()[:8] for name in sorted(names))
    return [int.from_bytes(digest, "big", signed=True) for digest in digests]


@contextmanager
def one_sign_in_at_a_time(username: str, address: str | None) -> Iterator[None]:
    with transaction.atomic():  # on SQLite, BEGIN IMMEDIATE: the write lock, until the end
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for key in lock_keys(username, address):  # sorted: two sign-ins never deadlock
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
        yield


def serialized(view: View) -> View:
    """The login view, with each POST (a sign-in attempt) made one at a time per account and
    address; pages (GET) are not held up."""

    @functools.wraps(view)
    def sign_in(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        username = request.POST.get("username", "")
        with one_sign_in_at_a_time(username, client_address(request)):
            return view(request, *args, **kwargs)

    sign_in.one_sign_in_at_a_time = True  # type: ignore[attr-defined]  # tests check the URLs
    return sign_in
