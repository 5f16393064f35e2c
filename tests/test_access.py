"""Every page needs a signed-in user and every API call a session or an API key."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.support.routes import all_paths

pytestmark = pytest.mark.reliability

PUBLIC = {"/login/", "/favicon.ico"}  # the icon: a redirect to a static file
# The OpenAI-compatible endpoint authenticates with API keys only and answers in OpenAI's JSON.
OPENAI_PREFIX = "/v1/"


def console_paths() -> list[str]:
    skip = ("/api/", "/admin/", OPENAI_PREFIX)
    return [p for p in all_paths() if not p.startswith(skip) and p not in PUBLIC]


def openai_paths() -> list[str]:
    return [p for p in all_paths() if p.startswith(OPENAI_PREFIX)]


def api_paths() -> list[str]:
    return [p for p in all_paths() if p.startswith("/api/")]


def test_the_sweep_finds_the_routes_it_must_guard() -> None:
    assert "/" in console_paths()
    assert "/keys/" in console_paths()
    assert {"/api/me/", "/api/keys/", "/api/schema/", "/api/docs/"} <= set(api_paths())
    assert {"/v1/models", "/v1/chat/completions"} <= set(openai_paths())


@pytest.mark.django_db
@pytest.mark.parametrize("path", console_paths())
def test_an_anonymous_visitor_is_sent_to_the_login_page(client: Client, path: str) -> None:
    for method in (client.get, client.post):
        response = method(path)
        assert response.status_code == 302, f"{method.__name__.upper()} {path}"
        assert response["Location"].startswith("/login/?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("path", api_paths())
def test_an_anonymous_api_call_gets_401(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401, path
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
@pytest.mark.parametrize("path", openai_paths())
def test_an_anonymous_openai_call_gets_json_never_a_login_redirect(
    client: Client, path: str
) -> None:
    for method in (client.get, client.post):
        response = method(path)
        assert response.status_code in {401, 404, 405}, f"{method.__name__.upper()} {path}"
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.django_db
def test_the_admin_site_asks_anonymous_visitors_to_sign_in(client: Client) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.django_db
def test_the_login_page_is_public_and_styled(client: Client) -> None:
    response = client.get("/login/")
    assert response.status_code == 200
    assert b"Sign in" in response.content
    assert b"/static/css/console.css" in response.content


def test_a_user_signs_in_and_out(client: Client, alice: object) -> None:
    from tests.conftest import PASSWORD

    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/logout/")
    assert client.get("/").status_code == 302


def test_a_wrong_password_gets_a_clear_message(client: Client, alice: object) -> None:
    response = client.post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
