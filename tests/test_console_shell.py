"""The console shell: navigation, vendored assets only, and the API schema and docs."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client

EXTERNAL_ASSET = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", re.IGNORECASE)


def test_the_overview_shows_every_console_section(alice_client: Client) -> None:
    html = alice_client.get("/").content.decode()
    for label in ["Jobs", "Datasets", "Rewards", "Models", "Playground", "API keys"]:
        assert label in html
    assert 'href="/keys/"' in html


def test_no_template_loads_anything_from_another_host() -> None:
    offenders = [
        str(path)
        for path in Path(settings.BASE_DIR, "templates").rglob("*.html")
        if EXTERNAL_ASSET.search(path.read_text())
    ]
    assert offenders == []


def test_htmx_and_plotly_are_served_from_installed_packages() -> None:
    assert finders.find("django_htmx/htmx-2.min.js")
    plotly_js = finders.find("vendor/plotly/plotly.min.js")
    assert plotly_js and Path(plotly_js).stat().st_size > 1_000_000


def test_the_api_schema_and_docs_are_served_locally(alice_client: Client) -> None:
    schema = alice_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/keys/" in schema.json()["paths"]
    docs = alice_client.get("/api/docs/").content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist" in docs
    assert not EXTERNAL_ASSET.search(docs)


def test_static_files_and_pages_are_served_by_an_all_async_middleware_chain() -> None:
    """No sync-only middleware: one would put every request through a thread hop and back."""
    from asgiref.sync import SyncToAsync, iscoroutinefunction

    from rftconsole.asgi import django_asgi_app, v1_asgi_app

    for handler in (django_asgi_app, v1_asgi_app):
        chain = handler._middleware_chain
        assert iscoroutinefunction(chain) and not isinstance(chain, SyncToAsync)


def test_static_files_still_come_with_their_cache_headers() -> None:
    import asyncio

    from django.test import AsyncClient

    response = asyncio.run(AsyncClient().get("/static/django_htmx/htmx-2.min.js"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/javascript")
    assert "max-age" in response["Cache-Control"]


def test_the_favicon_is_served_locally_even_signed_out(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response.url == "/static/favicon.svg"
    assert finders.find("favicon.svg")
    page = client.get("/login/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg"' in page


DESTRUCTIVE_ACTION = re.compile(r"""action="\{% url '[a-z]+:(delete|revoke|remove|discard)""")


def test_every_destructive_form_asks_first_with_a_specific_message() -> None:
    """Delete, revoke, remove and discard forms carry data-confirm (static/js/confirm.js asks)."""
    forms = [
        (path.name, form)
        for path in Path(settings.BASE_DIR, "templates").rglob("*.html")
        for form in re.findall(r"<form[^>]*>", path.read_text())
        if DESTRUCTIVE_ACTION.search(form)
    ]
    assert len(forms) >= 6  # dataset, reward, model, key, deployment, draft
    assert [name for name, form in forms if 'data-confirm="' not in form] == []
    assert all("{{" in form.split('data-confirm="', 1)[1] for _, form in forms)  # names the thing
    base = Path(settings.BASE_DIR, "templates", "base.html").read_text()
    assert "js/confirm.js" in base and finders.find("js/confirm.js")
