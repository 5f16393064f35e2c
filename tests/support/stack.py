"""A real Redis + Celery workers stack for tests, built from the same parts `manage.py up` uses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from rftconsole.celery import DEFAULT_QUEUE, GPU_QUEUE
from rftconsole.management.commands.up import (
    CHILD_ENV_DEFAULTS,
    celery_worker_argv,
    listening_socket,
    web_argv,
    worker_answers,
)
from rftconsole.processes.embedded_redis import prepare_socket, redis_ready, redis_server_argv
from rftconsole.processes.supervisor import Child, Supervisor
from tests.support.processes import free_port, http_status


def test_database_url() -> str:
    """DATABASE_URL for child processes: the test database pytest-django created."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["RFT_DATA_DIR"] = str(settings.DATA_DIR)
    env["DATABASE_URL"] = test_database_url()
    env["DJANGO_SETTINGS_MODULE"] = "rftconsole.settings"
    return {**CHILD_ENV_DEFAULTS, **env}


def start_stack(log_dir: Path) -> Supervisor:
    """Start the embedded Redis (unless REDIS_URL is set) and one worker per queue, both ready."""
    supervisor = Supervisor(child_env())
    try:
        if settings.EMBEDDED_REDIS:
            prepare_socket(settings.EMBEDDED_REDIS_SOCKET)
            argv = redis_server_argv(settings.EMBEDDED_REDIS_SOCKET, settings.DATA_DIR)
            supervisor.start(Child("redis", argv, log_dir / "redis.log", redis_ready), 30)
        for queue, concurrency in ((GPU_QUEUE, 1), (DEFAULT_QUEUE, 2)):
            start_worker(supervisor, queue, concurrency, log_dir)
    except BaseException:
        supervisor.stop_all(grace_seconds=5)
        raise
    return supervisor


def start_worker(
    supervisor: Supervisor, queue: str, concurrency: int, log_dir: Path, generation: int = 1
) -> Child:
    argv = celery_worker_argv(queue, concurrency)
    argv[argv.index("-n") + 1] = f"{queue}-test-{os.getpid()}-{generation}@%h"
    ready = lambda: worker_answers(queue)  # noqa: E731
    name = f"{queue}-worker-{generation}"
    worker = Child(name, argv, log_dir / f"worker-{queue}-{generation}.log", ready)
    supervisor.start(worker, 120)
    return worker


def session_id(user: User) -> str:
    """A signed-in session for `user`, for clients that are not Django's test client."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def start_web(supervisor: Supervisor, port: int, log_dir: Path, generation: int = 1) -> Child:
    """A web process serving the console on `port`, as `manage.py up` starts each of its own."""
    listener = listening_socket("127.0.0.1", port)
    ready = lambda: http_status(f"http://127.0.0.1:{port}/login/") == 200  # noqa: E731
    argv, log = web_argv(listener.fileno()), log_dir / f"web-{generation}.log"
    web = Child(f"web-{generation}", argv, log, ready, pass_fds=(listener.fileno(),))
    try:
        supervisor.start(web, 120)
    finally:
        listener.close()  # the web process holds its own copy: killing it frees the port
    return web


@contextmanager
def serving_v1(log_dir: Path, **environment: str) -> Iterator[str]:
    """A real web process (Daphne) on the test database, as `manage.py up` starts it, with `environment` added
    to its settings; yields the base URL of its OpenAI-compatible endpoint."""
    port = free_port()
    supervisor = Supervisor({**child_env(), **environment})
    start_web(supervisor, port, log_dir)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        supervisor.stop_all(grace_seconds=10)
