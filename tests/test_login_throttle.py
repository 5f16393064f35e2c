"""Sign-in throttling (django-axes): after RFT_LOGIN_FAILURE_LIMIT failures an account, and
separately an address, is locked for RFT_LOGIN_COOLOFF_MINUTES, the login page says so, the audit
log records it, and every web process sees the same counts (they live in the database)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from datetime import timedelta
from http.cookiejar import CookieJar
from typing import Any
from urllib.parse import urlencode

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import F
from django.test import Client, RequestFactory, override_settings

from rftconsole.models import AuditEvent
from rftconsole.security.accounts import client_address, ensure_admin
from rftconsole.services import create_api_key
from tests.conftest import PASSWORD
from tests.test_live import real_redis  # noqa: F401  (a fixture)
from tests.test_websocket_origin import live_console  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db
LOCKED = "Too many failed sign-ins for this account or address; try again in 15 minutes."
LIMIT = settings.AXES_FAILURE_LIMIT


def sign_in(client: Client, username: str, password: str, path: str = "/login/") -> Any:
    return client.post(path, {"username": username, "password": password})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(client: Client, username: str, times: int = 1) -> None:
    for _ in range(times):
        assert sign_in(client, username, "wrong password").status_code in {200, 429}


def test_the_defaults_are_five_failures_and_fifteen_minutes() -> None:
    assert LIMIT == 5
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60


def test_25_wrong_passwords_then_the_right_one_is_refused_with_the_reason(
    client: Client, alice: User
) -> None:
    fail(client, "alice", 25)
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 429 and LOCKED in response.content.decode()
    assert not signed_in(client) and client.get("/").status_code == 302
    locked = AuditEvent.objects.filter(action="login_locked_out").order_by("pk")
    assert locked.exists() and not AuditEvent.objects.filter(action="login").exists()
    assert (locked[0].actor_name, locked[0].ip_address) == ("alice", "127.0.0.1")


def test_a_few_wrong_passwords_below_the_limit_do_not_lock(client: Client) -> None:
    User.objects.create_user("carol", password=PASSWORD)
    fail(client, "carol", LIMIT - 1)
    response = sign_in(client, "carol", PASSWORD)
    assert response.status_code == 302 and signed_in(client)


def test_failures_over_many_usernames_lock_the_address_not_the_accounts(bob: User) -> None:
    guesser = Client(REMOTE_ADDR="203.0.113.7")
    for n in range(LIMIT):  # one guess per name: no account reaches the limit
        fail(guesser, f"user{n}")
    refused = sign_in(guesser, "bob", PASSWORD)
    assert refused.status_code == 429 and LOCKED in refused.content.decode()
    elsewhere = Client(REMOTE_ADDR="198.51.100.2")
    assert sign_in(elsewhere, "bob", PASSWORD).status_code == 302 and signed_in(elsewhere)


def test_failures_from_many_addresses_lock_the_account_not_the_addresses(
    alice: User, bob: User
) -> None:
    for n in range(LIMIT):  # one guess per address: no address reaches the limit
        fail(Client(REMOTE_ADDR=f"203.0.113.{n + 10}"), "alice")
    fresh = Client(REMOTE_ADDR="198.51.100.3")
    assert sign_in(fresh, "alice", PASSWORD).status_code == 429
    assert sign_in(fresh, "bob", PASSWORD).status_code == 302


def test_a_forged_x_forwarded_for_does_not_move_the_client_to_another_address(bob: User) -> None:
    guesser = Client(REMOTE_ADDR="203.0.113.9")
    for n in range(LIMIT):
        guesser.post(
            "/login/", {"username": f"user{n}", "password": "x"}, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}"
        )
    refused = guesser.post(
        "/login/", {"username": "bob", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="10.9.9.9"
    )
    assert refused.status_code == 429
    assert set(AuditEvent.objects.values_list("ip_address", flat=True)) == {"203.0.113.9"}


def test_behind_trusted_proxies_the_client_is_the_address_the_nearest_one_saw() -> None:
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.20"
    )
    assert client_address(request) == "10.0.0.1"  # the default: no proxy is trusted
    with override_settings(RFT_TRUSTED_PROXY_COUNT=1):
        assert client_address(request) == "198.51.100.20"  # "6.6.6.6" is the client's own claim
        assert client_address(RequestFactory().get("/", REMOTE_ADDR="10.0.0.2")) == "10.0.0.2"
    with override_settings(RFT_TRUSTED_PROXY_COUNT=2):
        assert client_address(request) == "6.6.6.6"


def test_the_admin_login_is_throttled_too(client: Client, admin: User) -> None:
    fail_path = "/admin/login/"
    for _ in range(LIMIT):
        sign_in(client, "admin", "wrong password", fail_path)
    response = sign_in(client, "admin", PASSWORD, fail_path)
    assert response.status_code == 429 and LOCKED in response.content.decode()
    assert not signed_in(client)


def test_the_lockout_ends_after_the_cool_off(client: Client, alice: User) -> None:
    fail(client, "alice", LIMIT)
    assert sign_in(client, "alice", PASSWORD).status_code == 429
    an_hour_ago = F("attempt_time") - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=an_hour_ago)  # the cool-off has passed
    assert sign_in(client, "alice", PASSWORD).status_code == 302 and signed_in(client)


@override_settings(AXES_COOLOFF_TIME=timedelta(minutes=1))
def test_the_message_names_the_configured_cool_off(client: Client, alice: User) -> None:
    fail(client, "alice", LIMIT)
    text = sign_in(client, "alice", PASSWORD).content.decode()
    assert "account or address; try again in 1 minute." in text


def test_an_admin_can_unlock(client: Client, alice: User, admin: User) -> None:
    fail(client, "alice", LIMIT)
    admin_client = Client()
    admin_client.force_login(admin)
    assert admin_client.get("/admin/axes/accessattempt/").status_code == 200
    call_command("axes_reset", verbosity=0)
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_api_keys_the_openai_endpoint_and_open_sessions_are_unaffected(
    client: Client, alice: User, alice_client: Client
) -> None:
    fail(client, "alice", LIMIT)  # both alice's account and 127.0.0.1 are locked now
    _, raw_key = create_api_key(alice, "ci")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}
    assert client.get("/api/me/", **bearer).status_code == 200
    assert client.get("/v1/models", **bearer).status_code == 200
    assert alice_client.get("/").status_code == 200


def test_the_admin_that_up_creates_signs_in(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RFT_ADMIN_PASSWORD", PASSWORD)
    username, _ = ensure_admin()
    call_command("createsuperuser", interactive=False, username="root", email="", verbosity=0)
    assert sign_in(client, username, PASSWORD).status_code == 302 and signed_in(client)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 302 after signing in comes back as an HTTPError with its code


def live_sign_in(console: str, username: str, password: str) -> tuple[int, str]:
    """A browser's sign-in on the live console: the login page for its CSRF token, then the post."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    page = opener.open(f"http://{console}/login/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = {"username": username, "password": password, "csrfmiddlewaretoken": token}
    try:
        with opener.open(f"http://{console}/login/", urlencode(form).encode(), timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.read().decode()


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_the_count_is_shared_between_this_process_and_the_live_console(
    live_console: str,  # noqa: F811
    alice: User,
    bob: User,
) -> None:
    # Failures here (the test client, another address) lock alice in the running Daphne...
    fail(Client(REMOTE_ADDR="203.0.113.20"), "alice", LIMIT)
    status, page = live_sign_in(live_console, "alice", PASSWORD)
    assert status == 429 and LOCKED in page
    # ...and failures made in Daphne lock bob here, from an address Daphne never saw.
    for _ in range(LIMIT):
        assert live_sign_in(live_console, "bob", "wrong password")[0] in {200, 429}
    here = Client(REMOTE_ADDR="198.51.100.30")
    assert sign_in(here, "bob", PASSWORD).status_code == 429
    audit = AuditEvent.objects.filter(action="login_locked_out", ip_address="127.0.0.1")
    assert audit.filter(actor_name="bob").exists()  # recorded by the live console
