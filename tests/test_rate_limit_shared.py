"""The `/v1/` rate limit is one limit for all web processes: they count in one Redis. When Redis
cannot be reached, requests are still served and the limit holds per process until it answers."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client, override_settings

from playground.v1 import ratelimit
from rftconsole.processes.embedded_redis import redis_server_argv
from rftconsole.services import create_api_key
from tests.support.processes import wait_until
from tests.support.stack import child_env

LIMIT = 8
REQUESTS_PER_PROCESS = 8  # two processes: twice the limit in all

# One web process's view of /v1/: the real ASGI application (the handler Daphne serves), called
# with requests the parent releases at once, so that the two processes' counts interleave.
CHILD = """
import asyncio, json, sys
from channels.testing import HttpCommunicator
from rftconsole.asgi import application

key, control_key, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

async def get(raw_key):
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {raw_key}".encode())]
    response = await HttpCommunicator(application, "GET", "/v1/models", headers=headers).get_response()
    return [response["status"], dict(response["headers"]).get(b"Retry-After", b"").decode()]

async def main():
    return [await get(key) for _ in range(count)], await get(control_key)

print("ready", flush=True)
sys.stdin.readline()
answers, control = asyncio.run(main())
print(json.dumps({"answers": answers, "control": control}), flush=True)
"""


@pytest.fixture
def shared_redis() -> Iterator[str]:
    """A Redis of the test's own on a unix socket (a short path: sockets are limited to ~107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="rft-rl-"))
    socket_path = folder / "redis.sock"
    server = subprocess.Popen(
        redis_server_argv(socket_path, folder),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(unix_socket_path=str(socket_path))

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    try:
        wait_until(answers, 30, "the test's Redis")
        yield f"unix://{socket_path}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def fresh_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """No outage remembered from another test."""
    monkeypatch.setattr(ratelimit, "_shared_down_until", 0.0)


def redis_cache(location: str) -> dict[str, dict[str, object]]:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": location,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }


def wait_for_room_in_the_window(seconds: float = 15) -> None:
    """The count is per one-minute window: start a burst far enough from its end that the burst
    is not split over two windows (which would rightly allow more)."""
    left = ratelimit.WINDOW_SECONDS - time.time() % ratelimit.WINDOW_SECONDS
    if left < seconds:
        time.sleep(left + 0.1)


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_two_web_processes_enforce_one_limit_through_redis(alice: User, shared_redis: str) -> None:
    _, raw_key = create_api_key(alice, "burst")
    _, control_key = create_api_key(alice, "control")
    env = {
        **child_env(),
        "REDIS_URL": shared_redis,
        "RFT_RATE_LIMIT_PER_MINUTE": str(LIMIT),
    }
    argv = [sys.executable, "-c", CHILD, raw_key, control_key, str(REQUESTS_PER_PROCESS)]
    children = [
        subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        wait_for_room_in_the_window()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [json.loads(child.communicate(timeout=120)[0]) for child in children]
    finally:
        for child in children:
            child.kill()

    answers = [answer for result in results for answer in result["answers"]]
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == LIMIT, statuses  # not LIMIT per process
    assert statuses.count(429) == 2 * REQUESTS_PER_PROCESS - LIMIT, statuses
    assert all(int(retry) >= 1 for status, retry in answers if status == 429), answers
    # Control: another key of the same user is not limited by the first key's count.
    assert [result["control"][0] for result in results] == [200, 200]


@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_limiter")
def test_an_unreachable_redis_serves_requests_and_limits_per_process(
    alice: User, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, raw_key = create_api_key(alice, "outage")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}
    nothing_listens = f"unix://{tmp_path / 'no-redis.sock'}"
    with (
        override_settings(CACHES=redis_cache(nothing_listens), RFT_RATE_LIMIT_PER_MINUTE=3),
        caplog.at_level(logging.WARNING, logger=ratelimit.__name__),
    ):
        wait_for_room_in_the_window(5)  # four requests split over two windows would all pass
        statuses = [Client().get("/v1/models", **bearer).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert "rate-limit count is unreachable" in caplog.text


@pytest.mark.stack
@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_limiter")
def test_the_count_returns_to_redis_when_it_answers_again(
    alice: User,
    tmp_path: Path,
    shared_redis: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(ratelimit, "RETRY_SECONDS", 0.0)
    _, raw_key = create_api_key(alice, "recovery")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}
    with caplog.at_level(logging.WARNING, logger=ratelimit.__name__):
        with override_settings(CACHES=redis_cache(f"unix://{tmp_path / 'no-redis.sock'}")):
            assert Client().get("/v1/models", **bearer).status_code == 200
        with override_settings(CACHES=redis_cache(shared_redis)):
            assert Client().get("/v1/models", **bearer).status_code == 200
    assert "answers again" in caplog.text
    counted = redis.Redis.from_url(shared_redis)
    keys = [key.decode() for key in counted.keys("*v1-rate*")]
    assert len(keys) == 1 and counted.get(keys[0]) == b"1", keys
