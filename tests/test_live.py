"""The job websocket: history on connect, live events after it, the gap after a reconnect, and
only the owner may listen. Through the real ASGI application (session cookie, origin check)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client

from jobs import consumers
from jobs.actions import set_status
from jobs.events import metric_event, send_job_event
from jobs.models import Job, MetricPoint
from rftconsole.asgi import application
from rftconsole.processes.embedded_redis import prepare_socket, redis_server_argv, socket_in_use
from rftconsole.processes.supervisor import Child, Supervisor
from tests.support.job_rows import add_points, make_job, train_values
from tests.support.stack import child_env

pytestmark = pytest.mark.django_db(transaction=True)
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def in_memory_layer(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = IN_MEMORY


def session_headers(user: User | None) -> list[tuple[bytes, bytes]]:
    # What a browser on http://localhost sends: the origin check wants Origin == scheme://Host.
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


def socket_for(
    headers: list[tuple[bytes, bytes]], job: Job, query: str = ""
) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/jobs/{job.pk}/{query}", headers)


def announce_point(job: Job, step: int, kind: str = "train") -> None:
    """What the trainer does: persist first, then announce."""
    values = train_values(step)
    MetricPoint.objects.create(job=job, kind=kind, step=step, epoch=step / 10, values=values)
    send_job_event(job.pk, metric_event(kind, step, step / 10, values))


def steps_of(message: dict[str, Any], kind: str = "train") -> list[int]:
    return [point["step"] for point in message["metrics"] if point["kind"] == kind]


@pytest.fixture
def job(alice: User) -> Job:
    job = make_job(alice, status=Job.Status.TRAINING, current_step=5, total_steps=20)
    add_points(job, range(1, 6), evals={0: 0.2})
    return job


def test_connecting_sends_every_point_the_status_and_the_timeline(
    in_memory_layer: None, alice: User, job: Job
) -> None:
    headers = session_headers(alice)

    async def scenario() -> dict[str, Any]:
        socket = socket_for(headers, job)
        connected, _ = await socket.connect()
        assert connected
        message = await socket.receive_json_from()
        await socket.disconnect()
        return message

    message = async_to_sync(scenario)()
    assert message["type"] == "backlog" and message["after"] is None
    assert steps_of(message) == [1, 2, 3, 4, 5] and steps_of(message, "eval") == [0]
    assert message["metrics"][0] == {
        "kind": "eval",
        "step": 0,
        "epoch": 0.0,
        "values": {"accuracy": 0.2, "mean_reward": 0.2, "rows": 20},
    }
    assert message["job"] == {
        "status": "training",
        "status_display": "Training",
        "sub_status": "",
        "reason": "",
        "current_step": 5,
        "total_steps": 20,
    }
    assert [event["message"] for event in message["events"]] == ["Queued for a gpu worker."]


def test_points_and_status_changes_after_connecting_arrive_live(
    in_memory_layer: None, alice: User, job: Job
) -> None:
    headers = session_headers(alice)

    async def scenario() -> list[dict[str, Any]]:
        socket = socket_for(headers, job)
        await socket.connect()
        await socket.receive_json_from()  # the backlog
        await database_sync_to_async(announce_point)(job, 6)
        await database_sync_to_async(set_status)(job, Job.Status.EVALUATING, "Validating")
        received = [await socket.receive_json_from(), await socket.receive_json_from()]
        await socket.disconnect()
        return received

    point, status = async_to_sync(scenario)()
    assert point["type"] == "metric" and point["kind"] == "train" and point["step"] == 6
    assert point["values"]["reward_mean"] == pytest.approx(0.26)
    assert status == {
        "type": "status",
        "status": "evaluating",
        "sub_status": "Validating",
        "message": "",
    }


def test_a_reconnect_with_after_gets_exactly_the_gap(
    in_memory_layer: None, alice: User, job: Job
) -> None:
    headers = session_headers(alice)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        first = socket_for(headers, job)
        await first.connect()
        before = await first.receive_json_from()
        await first.disconnect()  # the connection drops; training goes on
        for step in (6, 7, 8):
            await database_sync_to_async(announce_point)(job, step)
        last_seen = max(steps_of(before))
        second = socket_for(headers, job, f"?after={last_seen}")
        await second.connect()
        after = await second.receive_json_from()
        await second.disconnect()
        return before, after

    before, after = async_to_sync(scenario)()
    assert after["after"] == 5 and steps_of(after) == [6, 7, 8] and steps_of(after, "eval") == []
    assert sorted(steps_of(before) + steps_of(after)) == list(range(1, 9))  # no gap, no repeat
    assert after["job"]["status"] == "training" and after["events"]  # the timeline, in full


def test_a_point_announced_right_after_the_history_is_read_is_not_lost(
    in_memory_layer: None, alice: User, job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer joins the group before it reads: nothing falls between the two."""
    real_backlog = consumers.backlog

    def backlog_then_a_new_point(job_id: int, after: int | None) -> dict[str, Any]:
        history = real_backlog(job_id, after)
        announce_point(job, 6)
        return history

    monkeypatch.setattr(consumers, "backlog", backlog_then_a_new_point)

    headers = session_headers(alice)

    async def scenario() -> list[dict[str, Any]]:
        socket = socket_for(headers, job)
        await socket.connect()
        received = [await socket.receive_json_from(), await socket.receive_json_from()]
        await socket.disconnect()
        return received

    history, live = async_to_sync(scenario)()
    assert steps_of(history) == [1, 2, 3, 4, 5]
    assert live["type"] == "metric" and live["step"] == 6


@pytest.mark.parametrize(("who", "code"), [("bob", 4404), ("anonymous", 4401), ("alice", 4404)])
def test_only_the_owner_may_listen(
    in_memory_layer: None, alice: User, bob: User, job: Job, who: str, code: int
) -> None:
    user = {"bob": bob, "anonymous": None, "alice": alice}[who]
    target = job
    if who == "alice":  # alice, on a job that does not exist: the same answer as bob's
        target = Job(pk=job.pk + 1000)

    headers = session_headers(user)

    async def scenario() -> dict[str, Any]:
        socket = socket_for(headers, target)
        await socket.connect()
        closed = await socket.receive_output()
        await socket.wait()
        return closed

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": code}


def test_non_finite_values_reach_the_browser_as_null(
    in_memory_layer: None, alice: User, job: Job
) -> None:
    """Browsers' JSON.parse rejects NaN: a diverged loss must not break the page's socket."""
    headers = session_headers(alice)
    nan = metric_event("train", 6, 0.6, {"loss": float("nan")})

    async def scenario() -> str:
        socket = socket_for(headers, job)
        await socket.connect()
        await socket.receive_from()  # the backlog
        await database_sync_to_async(send_job_event)(job.pk, nan)
        text = await socket.receive_from()
        await socket.disconnect()
        return text

    text = async_to_sync(scenario)()
    assert "NaN" not in text and '"values": {"loss": null}' in text


class RolledBack(Exception):
    """Raised inside a transaction to roll it back, as a failing later write would."""


@pytest.fixture(params=["in-memory", pytest.param("redis", marks=pytest.mark.stack)])
def layer(request: pytest.FixtureRequest, settings: Any) -> str:
    """The in-memory layer, and (with the stack) the real Redis layer that `up` runs."""
    if request.param == "in-memory":
        settings.CHANNEL_LAYERS = IN_MEMORY
    else:
        request.getfixturevalue("real_redis")
    return str(request.param)


def test_an_event_sent_inside_a_transaction_waits_for_the_commit(
    layer: str, alice: User, job: Job
) -> None:
    headers = session_headers(alice)

    def announce_inside_a_transaction(socket: WebsocketCommunicator) -> bool:
        with transaction.atomic():
            announce_point(job, 6)
            heard_before_commit = not async_to_sync(socket.receive_nothing)(timeout=0.5)
        return heard_before_commit

    async def scenario() -> tuple[bool, dict[str, Any]]:
        socket = socket_for(headers, job)
        await socket.connect(timeout=5)
        await socket.receive_json_from(timeout=5)  # the backlog
        # Not thread-sensitive: the consumer needs the main thread (it closes old connections
        # there before each message) to deliver while the transaction is still open.
        inside = database_sync_to_async(announce_inside_a_transaction, thread_sensitive=False)
        early = await inside(socket)
        live = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return early, live

    early, live = async_to_sync(scenario)()
    assert not early
    assert live["type"] == "metric" and live["step"] == 6  # sent once the commit happened


def test_an_event_of_a_rolled_back_change_is_never_sent(layer: str, alice: User, job: Job) -> None:
    headers = session_headers(alice)

    def rolled_back_then_committed() -> None:
        with contextlib.suppress(RolledBack), transaction.atomic():
            announce_point(job, 6)
            raise RolledBack
        announce_point(job, 7)  # the control: a change that commits is heard

    async def scenario() -> tuple[dict[str, Any], bool]:
        socket = socket_for(headers, job)
        await socket.connect(timeout=5)
        await socket.receive_json_from(timeout=5)  # the backlog
        await database_sync_to_async(rolled_back_then_committed)()
        live = await socket.receive_json_from(timeout=5)  # a group delivers in order: 6 first
        quiet = await socket.receive_nothing(timeout=0.5)
        await socket.disconnect()
        return live, quiet

    live, quiet = async_to_sync(scenario)()
    assert live["type"] == "metric" and live["step"] == 7 and quiet
    assert not MetricPoint.objects.filter(job=job, step=6).exists()
    assert MetricPoint.objects.filter(job=job, step=7).exists()


@pytest.fixture
def real_redis(tmp_path) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The embedded Redis that `up` runs (reused when a stack fixture already started it)."""
    if not settings.EMBEDDED_REDIS or socket_in_use(settings.EMBEDDED_REDIS_SOCKET):
        yield  # an external REDIS_URL, or the session's live stack
        return
    from rftconsole.processes.embedded_redis import redis_ready

    supervisor = Supervisor(child_env())
    prepare_socket(settings.EMBEDDED_REDIS_SOCKET)
    argv = redis_server_argv(settings.EMBEDDED_REDIS_SOCKET, settings.DATA_DIR)
    supervisor.start(Child("redis", argv, tmp_path / "redis.log", redis_ready), 30)
    yield
    supervisor.stop_all(grace_seconds=5)


@pytest.mark.stack
def test_history_and_live_events_over_the_real_redis_layer(
    real_redis: None, alice: User, job: Job
) -> None:
    assert "Redis" in settings.CHANNEL_LAYERS["default"]["BACKEND"]

    headers = session_headers(alice)

    async def scenario() -> list[dict[str, Any]]:
        socket = socket_for(headers, job, "?after=3")
        connected, _ = await socket.connect(timeout=5)
        assert connected
        history = await socket.receive_json_from(timeout=5)
        await database_sync_to_async(announce_point)(job, 6)
        live = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return [history, live]

    history, live = async_to_sync(scenario)()
    assert steps_of(history) == [4, 5] and live["step"] == 6


@pytest.mark.stack
def test_an_idle_socket_stays_open_on_the_real_redis_layer(
    real_redis: None, alice: User, job: Job
) -> None:
    """A job page waits minutes between events (loading a model, validating): the channel layer's
    blocking read must outlast its 5 s poll. redis-py 8 made `socket_timeout` default to 5 s, which
    tears every idle consumer down (django/channels_redis#422); CHANNEL_LAYERS must turn it off."""
    headers = session_headers(alice)

    async def scenario() -> dict[str, Any]:
        socket = socket_for(headers, job)
        await socket.connect(timeout=5)
        await socket.receive_json_from(timeout=5)
        assert await socket.receive_nothing(timeout=7, interval=0.5)  # idle past the poll
        await database_sync_to_async(announce_point)(job, 6)
        live = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return live

    assert async_to_sync(scenario)()["step"] == 6
