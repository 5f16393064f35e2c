"""Websockets answer only pages of the exact origin the console is served from: scheme, host and
port (rftconsole/security/ws_origin.py). A page on another local port, or over another scheme, that opens
`ws/jobs/<id>/` or `ws/playground/<id>/` with alice's cookie is refused before any data is sent."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from jobs.models import Job
from playground.models import PlaygroundSession
from rftconsole.asgi import application
from rftconsole.processes.supervisor import Supervisor
from tests.support.job_rows import add_points, make_job
from tests.support.processes import free_port
from tests.support.stack import child_env, session_id, start_web
from tests.test_live import IN_MEMORY, real_redis  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

SERVED = "127.0.0.1:8000"  # the Host a browser sends for http://127.0.0.1:8000/
FOREIGN_ORIGINS = [
    "http://127.0.0.1:9999",  # another local port
    "https://127.0.0.1:8000",  # the same host and port, another scheme
    "http://[::1]:5000",
    "http://localhost:8001",
    "null",  # sandboxed iframes, file:// pages
    None,  # no Origin at all
]


@pytest.fixture(autouse=True)
def in_memory_layer(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = IN_MEMORY


@pytest.fixture
def job(alice: User) -> Job:
    job = make_job(alice, status=Job.Status.TRAINING, current_step=3, total_steps=20)
    add_points(job, range(1, 4))
    return job


@pytest.fixture
def chat(alice: User) -> PlaygroundSession:
    return PlaygroundSession.objects.create(owner=alice)


def paths(job: Job, chat: PlaygroundSession) -> list[str]:
    return [f"/ws/jobs/{job.pk}/", f"/ws/playground/{chat.pk}/"]


def browser_headers(
    user: User, origin: str | None, host: str = SERVED
) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", host.encode()), (b"cookie", f"sessionid={session_id(user)}".encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return headers


def handshake(
    path: str, headers: list[tuple[bytes, bytes]], scheme: str = "ws"
) -> dict[str, Any] | None:
    """The first message the socket sends after connecting, or None when it was refused."""

    async def scenario() -> dict[str, Any] | None:
        socket = WebsocketCommunicator(application, path, headers)
        socket.scope["scheme"] = scheme
        connected, _ = await socket.connect(timeout=5)
        if not connected:
            return None
        first = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return first

    return async_to_sync(scenario)()


def test_the_console_own_origin_is_accepted_and_receives_data(
    alice: User, job: Job, chat: PlaygroundSession
) -> None:
    headers = browser_headers(alice, f"http://{SERVED}")
    jobs_first, chat_first = (handshake(path, headers) for path in paths(job, chat))
    assert jobs_first is not None and jobs_first["type"] == "backlog"
    assert [point["step"] for point in jobs_first["metrics"]] == [1, 2, 3]
    assert chat_first == {"type": "ready", "session": chat.pk}


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_any_other_origin_is_refused_with_alice_cookie(
    alice: User, job: Job, chat: PlaygroundSession, origin: str | None
) -> None:
    headers = browser_headers(alice, origin)
    for path in paths(job, chat):
        assert handshake(path, headers) is None, (path, origin)


def test_a_host_outside_allowed_hosts_is_refused_even_when_origin_matches_it(
    alice: User, job: Job
) -> None:
    """DNS rebinding: evil.example resolving to 127.0.0.1 sends Host and Origin that agree."""
    headers = browser_headers(alice, "http://evil.example:8000", host="evil.example:8000")
    assert handshake(f"/ws/jobs/{job.pk}/", headers) is None


def test_an_origin_listed_in_csrf_trusted_origins_is_accepted(
    settings,  # type: ignore[no-untyped-def]
    alice: User,
    job: Job,
) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://rft.example.com"]
    headers = browser_headers(alice, "https://rft.example.com")
    assert handshake(f"/ws/jobs/{job.pk}/", headers)["type"] == "backlog"  # type: ignore[index]
    lookalike = browser_headers(alice, "https://rft.example.com:8443")
    assert handshake(f"/ws/jobs/{job.pk}/", lookalike) is None


def test_over_wss_the_page_origin_is_https(alice: User, job: Job) -> None:
    path = f"/ws/jobs/{job.pk}/"
    assert handshake(path, browser_headers(alice, f"https://{SERVED}"), scheme="wss") is not None
    assert handshake(path, browser_headers(alice, f"http://{SERVED}"), scheme="wss") is None


def test_behind_a_tls_proxy_its_forwarded_proto_decides_the_scheme(
    settings,  # type: ignore[no-untyped-def]
    alice: User,
    job: Job,
) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    path = f"/ws/jobs/{job.pk}/"
    proxied = [(b"x-forwarded-proto", b"https")]
    assert handshake(path, browser_headers(alice, f"https://{SERVED}") + proxied) is not None
    assert handshake(path, browser_headers(alice, f"http://{SERVED}") + proxied) is None


def test_with_rft_https_a_plain_http_page_is_refused_even_without_the_proxy(
    settings,  # type: ignore[no-untyped-def]
    alice: User,
    job: Job,
) -> None:
    """Reached around the TLS proxy (no X-Forwarded-Proto), an http:// origin matches the Host;
    a console served over HTTPS has no such page, so it is refused; the https one is not."""
    path = f"/ws/jobs/{job.pk}/"
    assert handshake(path, browser_headers(alice, f"http://{SERVED}")) is not None  # control
    settings.RFT_HTTPS = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert handshake(path, browser_headers(alice, f"http://{SERVED}")) is None
    proxied = [(b"x-forwarded-proto", b"https")]
    assert handshake(path, browser_headers(alice, f"https://{SERVED}") + proxied) is not None


def test_two_origin_headers_are_refused(alice: User, job: Job) -> None:
    headers = browser_headers(alice, f"http://{SERVED}") + [(b"origin", b"http://127.0.0.1:9999")]
    assert handshake(f"/ws/jobs/{job.pk}/", headers) is None


@pytest.fixture
def live_console(real_redis: None, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """A real Daphne serving the console (as `up` starts it) on the test database: host:port."""
    port = free_port()
    supervisor = Supervisor(child_env())
    web = start_web(supervisor, port, tmp_path)
    yield f"127.0.0.1:{port}"
    os.killpg(web.pid, signal.SIGTERM)
    supervisor.stop_all(grace_seconds=10)


async def first_message(url: str, cookie: str, origin: str | None) -> dict[str, Any] | None:
    """What a real websocket client receives first, or None when the handshake was refused."""
    try:
        async with websockets.connect(
            url, additional_headers={"Cookie": cookie}, origin=origin, open_timeout=30
        ) as socket:
            return json.loads(await asyncio.wait_for(socket.recv(), timeout=30))
    except websockets.InvalidStatus as refused:
        assert refused.response.status_code == 403
        return None


@pytest.mark.stack
def test_a_real_daphne_serves_only_its_own_origin(
    live_console: str, alice: User, job: Job, chat: PlaygroundSession
) -> None:
    port = live_console.rsplit(":", 1)[1]
    cookie = f"sessionid={session_id(alice)}"
    urls = [f"ws://{live_console}{path}" for path in paths(job, chat)]
    foreign = [o.replace(":8000", f":{port}") if o else o for o in FOREIGN_ORIGINS]

    async def scenario() -> tuple[list[Any], list[Any]]:
        own = [await first_message(url, cookie, f"http://{live_console}") for url in urls]
        others = [await first_message(url, cookie, o) for url in urls for o in foreign]
        return own, others

    own, others = asyncio.run(scenario())
    assert own[0]["type"] == "backlog" and own[1] == {"type": "ready", "session": chat.pk}
    assert others == [None] * len(others)
