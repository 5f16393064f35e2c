"""Response headers: a Content-Security-Policy the pages keep to, TLS settings behind one switch,
and no cross-origin wildcard on static files.

The browser suite (test_browser_flow.py, test 8) proves in Chromium that no page breaks the policy;
these tests keep the policy strict and the templates free of what it would refuse.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, RequestFactory, override_settings

from rftconsole.middleware import StaticFilesMiddleware

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = [ROOT / "templates", *ROOT.glob("*/templates")]
# What a strict policy refuses in markup: inline scripts (a <script> without src that is not a
# JSON data block), style attributes and <style> elements, and on* event-handler attributes.
INLINE = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I),
    "style attribute": re.compile(r"<[a-z][^>]*\sstyle=", re.I),
    "style element": re.compile(r"<style[\s>]", re.I),
    "event handler": re.compile(r"<[a-z][^>]*\son[a-z]+=", re.I),
}


def policy(response: object) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]  # type: ignore[index]
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


def test_every_page_sends_a_policy_that_allows_scripts_and_styles_from_this_origin_only(
    alice_client: Client,
) -> None:
    for url in ("/", "/datasets/", "/rewards/new/", "/jobs/new/", "/keys/", "/api/docs/"):
        response = alice_client.get(url, follow=True)
        assert response.status_code == 200, url
        directives = policy(response)
        assert directives["script-src"] == ["'self'"], url
        # The one hash allows only an empty style element (Plotly fills it through the CSSOM).
        assert directives["style-src"] == ["'self'", settings.EMPTY_STYLE_ELEMENT], url
        assert directives["object-src"] == ["'none'"] and directives["frame-ancestors"] == [
            "'none'"
        ]
        assert "'unsafe-inline'" not in response["Content-Security-Policy"]
        assert "'unsafe-eval'" not in response["Content-Security-Policy"]


def test_the_only_inline_style_the_policy_allows_is_an_empty_one() -> None:
    digest = base64.b64encode(hashlib.sha256(b"").digest()).decode()
    assert f"'sha256-{digest}'" == settings.EMPTY_STYLE_ELEMENT


def test_the_login_page_has_the_policy_too(client: Client) -> None:
    assert policy(client.get("/login/"))["default-src"] == ["'self'"]


def test_no_template_holds_markup_the_policy_would_refuse() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {kind}: {match.group(0)[:80]}"
        for directory in TEMPLATE_DIRS
        for path in directory.rglob("*.html")
        for kind, pattern in INLINE.items()
        for match in pattern.finditer(path.read_text())
    ]
    assert found == []


@pytest.mark.parametrize(
    ("markup", "kind"),
    [
        ("<script>alert(1)</script>", "inline script"),
        ('<input style="width:5em">', "style attribute"),
        ("<style>p {}</style>", "style element"),
        ('<button onclick="go()">', "event handler"),
    ],
)
def test_the_template_check_finds_each_kind_of_inline_markup(markup: str, kind: str) -> None:
    """The control for the check above: each pattern does catch what it is for, and lets the
    console's own external scripts and JSON data blocks through."""
    assert INLINE[kind].search(markup)
    allowed = '<script src="/static/js/a.js" defer></script><script type="application/json">'
    assert not any(pattern.search(allowed) for pattern in INLINE.values())


def static_response(**overrides: object) -> object:
    with override_settings(**overrides):
        middleware = StaticFilesMiddleware(lambda request: None)
    request = RequestFactory().get("/static/css/console.css", HTTP_ORIGIN="https://evil.example")
    return middleware(request)


def test_static_files_send_no_cross_origin_wildcard() -> None:
    response = static_response()
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert "Access-Control-Allow-Origin" not in response  # type: ignore[operator]


def test_the_static_check_sees_the_wildcard_whitenoise_sends_by_default() -> None:
    """The control: with WhiteNoise's own default the same request carries the wildcard."""
    response = static_response(WHITENOISE_ALLOW_ALL_ORIGINS=True)
    assert response["Access-Control-Allow-Origin"] == "*"  # type: ignore[index]


PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
plain = Client(HTTP_HOST="localhost").get("/login/")
proxied = Client(HTTP_HOST="localhost").get("/login/", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({
    "redirect": plain.status_code == 301 and plain["Location"].startswith("https://"),
    "status": proxied.status_code,
    "hsts": proxied.get("Strict-Transport-Security"),
    "secure_cookies": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE],
    "csrf_cookie_secure": bool(proxied.cookies["csrftoken"]["secure"]),
}))
"""


def tls_settings(tmp_path: Path, **env: str) -> dict[str, object]:
    """What a fresh console process does with the given environment (settings are read once)."""
    environment = {name: value for name, value in os.environ.items() if name != "RFT_HTTPS"}
    environment |= {"DJANGO_SETTINGS_MODULE": "rftconsole.settings", "RFT_DATA_DIR": str(tmp_path)}
    environment |= env
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=environment, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_one_variable_turns_on_secure_cookies_hsts_and_the_https_redirect(tmp_path: Path) -> None:
    on = tls_settings(tmp_path, RFT_HTTPS="1")
    assert on["redirect"] is True and on["status"] == 200
    assert on["hsts"] == "max-age=31536000"
    assert on["secure_cookies"] == [True, True] and on["csrf_cookie_secure"] is True


def test_without_it_the_console_serves_plain_http_on_a_laptop(tmp_path: Path) -> None:
    """The control: the default (`make up` on 127.0.0.1) answers HTTP and sets plain cookies."""
    off = tls_settings(tmp_path)
    assert off["redirect"] is False and off["hsts"] is None
    assert off["secure_cookies"] == [False, False] and off["csrf_cookie_secure"] is False
    assert settings.SECURE_SSL_REDIRECT is False


def test_the_rest_api_answers_json_even_to_a_browser(alice_client: Client) -> None:
    """DRF's browsable HTML API needs inline script and style the CSP refuses: it is off, and a
    browser asking for HTML gets the JSON (the Swagger UI at /api/docs/ is the page for people)."""
    response = alice_client.get("/api/datasets/", HTTP_ACCEPT="text/html,*/*;q=0.8")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert alice_client.get("/api/docs/")["Content-Type"].startswith("text/html")  # the control


def test_the_csrf_failure_page_keeps_to_the_policy(alice: User) -> None:
    """Django's own CSRF failure page has an inline style block; the console's has none."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    refused = client.post("/keys/", {"name": "k"})
    assert refused.status_code == 403 and "script-src 'self'" in refused["Content-Security-Policy"]
    page = refused.content.decode()
    assert "CSRF verification failed" in page and not any(p.search(page) for p in INLINE.values())
    assert "/static/css/console.css" in page  # the console's page, with its stylesheet
