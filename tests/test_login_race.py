"""Sign-in attempts in parallel are tried one at a time per account (rftconsole/security/sign_in.py).

The red team sent 30 guesses at once: axes checked the count for all of them before it recorded any
failure, so every guess was tried against a limit of 5, and the right password among them signed
in. The probe here is a password check that waits for its parallel partners at a barrier: when
attempts overlap they all meet there; when they are serialized nobody ever meets anybody.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import views as auth_views
from django.contrib.auth.hashers import MD5PasswordHasher
from django.contrib.auth.models import User
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.urls import resolve

from rftconsole.security.sign_in import lock_keys, serialized

ATTEMPTS = 3
meetings: dict[str, Any] = {}


class MeetingHasher(MD5PasswordHasher):
    """The test settings' MD5 hasher, whose password check first waits (up to 2 s) for all of
    the attempts at the barrier of the current probe: whether it met them is recorded."""

    def verify(self, password: str, encoded: str) -> bool:
        try:
            meetings["barrier"].wait(timeout=2)
            meetings["met"].append(True)
        except threading.BrokenBarrierError:
            meetings["met"].append(False)
        return super().verify(password, encoded)


@pytest.fixture
def meeting_hasher() -> Iterator[None]:
    with override_settings(PASSWORD_HASHERS=[f"{__name__}.MeetingHasher"]):
        yield


def attempt_in_parallel(view: Callable[..., HttpResponse]) -> list[bool]:
    """ATTEMPTS wrong passwords for alice, each from its own address, all at once."""
    meetings.update(barrier=threading.Barrier(ATTEMPTS), met=[])

    def attempt(number: int) -> None:
        request = RequestFactory().post(
            "/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR=f"10.9.0.{number}"
        )
        request.session = {}  # type: ignore[attr-defined]  # a failed sign-in never reads it
        request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]  # as the test Client
        try:
            view(request)
        finally:
            connection.close()  # each thread has its own database connection

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(ATTEMPTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return meetings["met"]


@pytest.mark.django_db(transaction=True)  # real transactions: the lock is the database's
def test_parallel_sign_ins_to_one_account_are_tried_one_at_a_time(
    alice: User, meeting_hasher: None
) -> None:
    login = auth_views.LoginView.as_view()
    assert attempt_in_parallel(serialized(login)) == [False] * ATTEMPTS
    # The control: the same view without the lock, and the attempts overlap (all meet).
    assert attempt_in_parallel(login) == [True] * ATTEMPTS


def test_both_sign_in_pages_take_the_lock() -> None:
    for path in ("/login/", "/admin/login/"):
        assert getattr(resolve(path).func, "one_sign_in_at_a_time", False), path
    assert not hasattr(resolve("/keys/").func, "one_sign_in_at_a_time")  # the control


def test_the_lock_keys_fold_spellings_of_a_name_and_keep_accounts_apart() -> None:
    assert lock_keys(" Alice", "10.0.0.1") == lock_keys("alice", "10.0.0.1")
    assert set(lock_keys("alice", "10.0.0.1")) & set(lock_keys("bob", "10.0.0.2")) == set()
    assert set(lock_keys("alice", "10.0.0.1")) & set(lock_keys("bob", "10.0.0.1"))  # one address
