"""The playground: 2 or 3 models answer side by side over a websocket, each answer logged, timed
and scored live by a real reward; sessions are kept and reopen; only their owner sees them.
Real parts throughout: the real ASGI application, tiny real models in the inference pool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from jobs.models import Dataset, Job, ModelEntry
from jobs.registry.services import register_model
from playground.inference import pool as inference
from playground.inference.pool import InferencePool
from playground.logs import LogFilter, dataset_from_logs
from playground.models import InvocationLog, PlaygroundSession
from playground.sessions import create_session
from rewards.services import create_reward
from rftconsole.asgi import application
from tests.support.job_rows import make_job
from tests.support.tiny_models import save_tiny_model

pytestmark = pytest.mark.django_db(transaction=True)
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Scores 1 when the reward got the loaded row's reference and the chat up to the user turn.
REWARD = (
    "def grade(sample, item):\n"
    "    messages = item['messages']\n"
    "    ok = item.get('reference_answer') == 'forty-two' and messages[-1]['role'] == 'user'\n"
    "    return float(ok and item.get('topic') == 'math')\n"
)


@pytest.fixture(autouse=True)
def in_memory_layer(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = IN_MEMORY


@pytest.fixture
def two_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[InferencePool]:
    """A pool that runs two generations at once, so both models really stream together."""
    pool = InferencePool(max_models=3, threads=2)
    monkeypatch.setattr(inference, "_pool", pool)
    yield pool
    pool.executor.shutdown(wait=True)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("playground-models")
    return [save_tiny_model(root / "base"), save_tiny_model(root / "tuned", "qwen2")]


@pytest.fixture
def models(alice: User, tiny_dirs: list[Path]) -> list[ModelEntry]:
    return [
        register_model(alice, str(d), name)
        for d, name in zip(tiny_dirs, ["base", "tuned"], strict=True)
    ]


@pytest.fixture
def session(alice: User, models: list[ModelEntry]) -> PlaygroundSession:
    version = create_reward(alice, "knows-42", "code", code=REWARD)
    settings = {"temperature": 0, "max_tokens": 12, "reward_version": version.pk}
    return create_session(alice, [m.pk for m in models], settings)


def headers_for(user: User | None) -> list[tuple[bytes, bytes]]:
    # What a browser on http://localhost sends: the origin check wants Origin == scheme://Host.
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


def socket(headers: list[tuple[bytes, bytes]], session_id: int) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/playground/{session_id}/", headers)


async def receive_until(
    ws: WebsocketCommunicator, stop: str, timeout: float = 120
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        event = await ws.receive_json_from(timeout=timeout)
        events.append(event)
        if event["type"] == stop:
            return events
        if event["type"] == "error" and not any(e["type"] == "start" for e in events):
            return events  # the turn could not start


def run_turn(
    user: User, session: PlaygroundSession, *messages: dict[str, Any]
) -> list[list[dict[str, Any]]]:
    """Send each message in turn (a `send` waits for `finished`, others for one reply)."""

    headers = headers_for(user)

    async def scenario() -> list[list[dict[str, Any]]]:
        ws = socket(headers, session.pk)
        connected, _ = await ws.connect()
        assert connected
        assert (await ws.receive_json_from())["type"] == "ready"
        replies = []
        for message in messages:
            if isinstance(message, str):
                await ws.send_to(text_data=message)
                replies.append([await ws.receive_json_from(timeout=30)])
                continue
            await ws.send_json_to(message)
            if message.get("type") == "send":
                replies.append(await receive_until(ws, "finished"))
            else:
                replies.append([await ws.receive_json_from(timeout=30)])
        await ws.disconnect()
        return replies

    return async_to_sync(scenario)()


ROW = {"messages": [{"role": "user", "content": "six times seven?"}],
       "reference_answer": "forty-two", "topic": "math"}  # fmt: skip


def test_two_models_stream_concurrently_with_stats_and_reward_scores_and_logs_become_a_dataset(
    alice: User, models: list[ModelEntry], session: PlaygroundSession, two_threads: InferencePool
) -> None:
    [events] = run_turn(alice, session, {"type": "send", "text": "six times seven?", "row": ROW})
    ids = {m.pk for m in models}
    assert events[0] == {"type": "start", "models": [m.pk for m in models]}
    tokens = [e for e in events if e["type"] == "token"]
    assert {e["model"] for e in tokens} == ids  # both streamed
    done = {e["model"]: e for e in events if e["type"] == "done"}
    scores = {e["model"]: e for e in events if e["type"] == "score"}
    assert set(done) == set(scores) == ids, [e for e in events if e["type"] != "token"]
    for model_id, event in done.items():
        streamed = "".join(e["text"] for e in tokens if e["model"] == model_id)
        assert event["text"] == streamed
        assert event["ttft_ms"] > 0 and event["tokens_per_second"] > 0
        assert event["prompt_tokens"] > 0 and 0 < event["completion_tokens"] <= 12
        assert scores[model_id]["score"] == 1.0 and scores[model_id]["error"] is None
        # the score comes after its own answer is done
        assert events.index(scores[model_id]) > events.index(event)
    assert events[-1] == {"type": "finished"}

    logs = InvocationLog.objects.filter(owner=alice).order_by("pk")
    assert logs.count() == 2
    for log in logs:
        assert log.request_metadata["source"] == "playground"
        assert log.request_metadata["session"] == str(session.pk)
        entry = next(m for m in models if m.pk == int(log.request_metadata["model_id"]))
        assert log.deployment == entry.name
        assert log.request["messages"] == [{"role": "user", "content": "six times seven?"}]
        assert log.response_text == done[entry.pk]["text"]
        assert log.pk == done[entry.pk]["log_id"]
        assert log.completion_tokens == done[entry.pk]["completion_tokens"]

    dataset, report = dataset_from_logs(
        alice, "from-playground", [LogFilter("source", "equals", "playground")],
        use_response_as_reference=True,
    )  # fmt: skip
    assert dataset.row_count == 2 and report.rows == 2
    session.refresh_from_db()
    for model in models:
        chat = session.transcript[str(model.pk)]
        assert [t["role"] for t in chat] == ["user", "assistant"]
        assert chat[1]["score"]["score"] == 1.0 and chat[1]["stats"]["completion_tokens"] > 0
    assert session.title == "six times seven?"


def test_a_second_turn_carries_the_chat_and_a_reward_without_row_scores_zero(
    alice: User, models: list[ModelEntry], session: PlaygroundSession
) -> None:
    first, second = run_turn(
        alice, session,
        {"type": "send", "text": "hello"},
        {"type": "send", "text": "again", "settings": {"system_prompt": "Be brief.",
                                                        "temperature": 0, "max_tokens": 4}},
    )  # fmt: skip
    assert {e["score"] for e in first if e["type"] == "score"} == {0.0}
    log = InvocationLog.objects.filter(owner=alice).order_by("-pk").first()
    roles = [m["role"] for m in log.request["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert log.request["max_tokens"] == 4 and log.completion_tokens <= 4
    session.refresh_from_db()
    assert session.system_prompt == "Be brief." and session.max_tokens == 4
    assert all(len(chat) == 4 for chat in session.transcript.values())


def test_feedback_thumbs_are_stored_on_the_answers_log(
    alice: User, bob: User, models: list[ModelEntry], session: PlaygroundSession
) -> None:
    [events] = run_turn(alice, session, {"type": "send", "text": "hi"})
    log_id = next(e["log_id"] for e in events if e["type"] == "done")
    up, bad, down = run_turn(
        alice, session,
        {"type": "feedback", "log_id": log_id, "value": "up"},
        {"type": "feedback", "log_id": log_id, "value": "meh"},
        {"type": "feedback", "log_id": log_id, "value": "down"},
    )  # fmt: skip
    assert up == [{"type": "feedback", "log_id": log_id, "value": "up"}]
    assert bad[0]["type"] == "error" and "Feedback is" in bad[0]["message"]
    assert down[0]["value"] == "down"
    assert InvocationLog.objects.get(pk=log_id).feedback == "down"
    session.refresh_from_db()
    answers = [t for chat in session.transcript.values() for t in chat if t.get("log_id") == log_id]
    assert answers[0]["feedback"] == "down"


def test_garbage_frames_and_too_long_prompts_get_error_events(
    alice: User, models: list[ModelEntry], session: PlaygroundSession
) -> None:
    long_text = "seven " * 400  # well over the tiny models' 256-token context
    garbage, listed, empty, too_long, huge, unknown = run_turn(
        alice, session,
        "{not json",
        "[1, 2]",
        {"type": "send", "text": "   "},
        {"type": "send", "text": long_text},
        {"type": "send", "text": "x" * 60_000},
        {"type": "dance"},
    )  # fmt: skip
    assert garbage[0] == {"type": "error", "message": "Messages must be JSON objects."}
    assert listed[0]["type"] == "error"
    assert empty[0] == {"type": "error", "message": "Type a message to send."}
    assert too_long[-1]["type"] == "error" and "too long for" in too_long[-1]["message"]
    assert "the model takes at most 256" in too_long[-1]["message"]
    assert huge[0]["type"] == "error" and "too long: 60,000 characters" in huge[0]["message"]
    assert unknown[0]["type"] == "error" and "Unknown message type" in unknown[0]["message"]
    assert not InvocationLog.objects.exists()
    session.refresh_from_db()
    assert all(chat == [] for chat in session.transcript.values())


def test_only_the_owner_may_open_a_session_page_or_socket(
    alice: User, bob: User, bob_client: Client, models: list[ModelEntry],
    session: PlaygroundSession,
) -> None:  # fmt: skip
    assert bob_client.get(f"/playground/{session.pk}/").status_code == 404

    async def scenario(user: User | None) -> int | None:
        ws = socket(headers[user], session.pk)
        connected, _ = await ws.connect()
        assert connected
        closed = await ws.receive_output(timeout=10)
        await ws.disconnect()
        return closed.get("code")

    headers = {bob: headers_for(bob), None: headers_for(None)}
    assert async_to_sync(scenario)(bob) == 4404
    assert async_to_sync(scenario)(None) == 4401
    # bob cannot choose alice's models, nor her reward
    response = bob_client.post("/playground/", {"model": [m.pk for m in models]})
    assert response.status_code == 400 and "is not yours" in response.content.decode()
    assert not PlaygroundSession.objects.filter(owner=bob).exists()
    bobs_models = [register_model(bob, m.path, f"bob-{m.name}") for m in models]
    response = bob_client.post(
        "/playground/",
        {"model": [m.pk for m in bobs_models], "reward_version": session.reward_version_id},
    )
    assert response.status_code == 400 and "reward version does not exist" in (
        response.content.decode()
    )
    assert bob_client.get("/playground/rows/?dataset=1&index=0").status_code == 400


def test_the_page_preselects_a_jobs_base_and_tuned_models_and_its_reward(
    alice: User, alice_client: Client, models: list[ModelEntry], tmp_path: Path
) -> None:
    base, tuned = models
    job = make_job(alice, status=Job.Status.COMPLETED)
    rows = tmp_path / "validation.jsonl"
    rows.write_text(json.dumps(ROW) + "\n")
    validation = Dataset.objects.create(
        owner=alice, name="val", path=str(rows), row_count=1, size_bytes=rows.stat().st_size
    )
    Job.objects.filter(pk=job.pk).update(
        base_model=base, output_model=tuned, validation_dataset=validation
    )
    page = alice_client.get(f"/playground/?job={job.pk}").content.decode()
    assert f'<option value="{base.pk}" selected>base</option>' in page
    assert f'<option value="{tuned.pk}" selected>tuned</option>' in page
    assert f'<option value="{job.reward_version_id}" selected>' in page
    assert f'<option value="{validation.pk}" data-rows="1" selected>' in page
    response = alice_client.post(
        "/playground/",
        {"model": [base.pk, tuned.pk, ""], "job": job.pk, "temperature": "0.5",
         "reward_version": job.reward_version_id, "dataset": validation.pk},
    )  # fmt: skip
    session = PlaygroundSession.objects.get(owner=alice)
    assert response.url == f"/playground/{session.pk}/"
    assert session.model_ids == [base.pk, tuned.pk] and session.temperature == 0.5
    assert session.reward_version_id == job.reward_version_id and session.job_id == job.pk
    row = alice_client.get(f"/playground/rows/?dataset={validation.pk}&index=0").json()
    assert row["prompt"] == "six times seven?" and row["reference_answer"] == "forty-two"
    assert row["row"]["topic"] == "math"
    assert alice_client.get(f"/playground/rows/?dataset={validation.pk}&index=5").status_code == 400
    # from a model's page: the tuned model with its base
    page = alice_client.get(f"/playground/?models={tuned.pk}").content.decode()
    assert f'<option value="{tuned.pk}" selected>' in page
    assert alice_client.get("/deployments/").status_code == 200


def test_a_session_reopens_with_its_transcript_and_is_listed(
    alice: User, alice_client: Client, models: list[ModelEntry], session: PlaygroundSession
) -> None:
    [events] = run_turn(alice, session, {"type": "send", "text": "What is 2 + 3?"})
    assert not [e for e in events if e["type"] == "error"], events
    page = alice_client.get(f"/playground/{session.pk}/").content.decode()
    assert f'data-ws-path="/ws/playground/{session.pk}/"' in page
    assert page.count('<li class="pg-user">What is 2 + 3?</li>') == 2
    for log in InvocationLog.objects.filter(owner=alice):
        assert f'data-log="{log.pk}"' in page
    assert "tok/s" in page and "Score <strong>0.000</strong>" in page
    listing = alice_client.get("/playground/").content.decode()
    assert f'href="/playground/{session.pk}/">What is 2 + 3?</a>' in listing


ROW_WITH_SYSTEM = {
    "messages": [
        {"role": "system", "content": "Answer with a number."},
        {"role": "user", "content": "six times seven?"},
        {"role": "assistant", "content": "42"},  # an answer in the row: validation leaves it out
    ],
    "reference_answer": "forty-two",
    "topic": "math",
}
ROW_PROMPT = ROW_WITH_SYSTEM["messages"][:2]


def test_loading_a_validation_row_starts_a_fresh_conversation_with_exactly_its_messages(
    alice: User, models: list[ModelEntry], session: PlaygroundSession
) -> None:
    row_turn = {"type": "send", "text": "six times seven?", "row": ROW_WITH_SYSTEM, "fresh": True}
    chatty = {"system_prompt": "Be chatty.", "max_tokens": 3, "temperature": 0,
              "reward_version": session.reward_version_id}  # fmt: skip
    chat_turn, first_row, follow_up, second_row = run_turn(
        alice, session,
        {"type": "send", "text": "hello", "settings": chatty},
        row_turn,
        {"type": "send", "text": "why?", "row": ROW_WITH_SYSTEM},  # continues the row's chat
        row_turn,  # loading the row again: the prompt does not grow
    )  # fmt: skip
    logs = list(InvocationLog.objects.filter(owner=alice).order_by("pk"))
    assert len(logs) == 8
    # control: a plain turn is sent with the session's system prompt
    assert logs[0].request["messages"] == [
        {"role": "system", "content": "Be chatty."},
        {"role": "user", "content": "hello"},
    ]
    for log in (logs[2], logs[3], logs[6], logs[7]):  # both loads, both models
        assert log.request["messages"] == ROW_PROMPT
    assert logs[6].prompt_tokens == logs[2].prompt_tokens
    assert [m["role"] for m in logs[4].request["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
    ]
    assert logs[4].prompt_tokens > logs[2].prompt_tokens
    # the reward scores the row's answer as validation would (reference, metadata)
    assert {e["score"] for e in second_row if e["type"] == "score"} == {1.0}
    session.refresh_from_db()
    for model in models:
        chat = session.transcript[str(model.pk)]
        assert [t["role"] for t in chat] == ["system", "user", "assistant"]
        assert chat[0]["content"] == "Answer with a number."
    assert session.system_prompt == "Be chatty."  # the row does not change the settings


def test_a_fresh_row_without_a_system_prompt_leaves_the_sessions_out_and_bad_rows_are_refused(
    alice: User, models: list[ModelEntry], session: PlaygroundSession
) -> None:
    session.system_prompt = "Be chatty."
    session.save()
    bad = {"messages": [{"role": "user", "content": ["a", "list"]}]}
    edited, refused = run_turn(
        alice, session,
        {"type": "send", "text": "six times SEVEN?", "row": ROW, "fresh": True},
        {"type": "send", "text": "x", "row": bad, "fresh": True},
    )  # fmt: skip
    log = InvocationLog.objects.filter(owner=alice).order_by("pk").first()
    assert log.request["messages"] == [{"role": "user", "content": "six times SEVEN?"}]
    assert refused[0]["type"] == "error" and "text content" in refused[0]["message"]
    assert InvocationLog.objects.filter(owner=alice).count() == 2


def test_clear_chat_empties_every_models_conversation_and_only_the_owners(
    alice: User, bob: User, models: list[ModelEntry], session: PlaygroundSession
) -> None:
    run_turn(alice, session, {"type": "send", "text": "hello"})
    session.refresh_from_db()
    assert all(len(chat) == 2 for chat in session.transcript.values())
    bob_client = Client()
    bob_client.force_login(bob)
    assert bob_client.post(f"/playground/{session.pk}/clear/").status_code == 404
    session.refresh_from_db()
    assert all(len(chat) == 2 for chat in session.transcript.values())
    alice_client = Client()
    alice_client.force_login(alice)
    assert alice_client.get(f"/playground/{session.pk}/clear/").status_code == 405
    answer = alice_client.post(f"/playground/{session.pk}/clear/")
    assert answer.status_code == 302 and answer["Location"] == f"/playground/{session.pk}/"
    session.refresh_from_db()
    assert session.transcript == {str(m.pk): [] for m in models}
    page = alice_client.get(f"/playground/{session.pk}/").content.decode()
    assert "Clear chat" in page and "pg-user" not in page.split('id="pg-answer-template"')[0]
    run_turn(alice, session, {"type": "send", "text": "again"})
    log = InvocationLog.objects.filter(owner=alice).order_by("-pk").first()
    assert log.request["messages"] == [{"role": "user", "content": "again"}]


def test_the_row_endpoint_gives_the_prompt_as_validation_sends_it(
    alice: User, alice_client: Client, tmp_path: Path
) -> None:
    data = tmp_path / "val.jsonl"
    data.write_text(json.dumps(ROW_WITH_SYSTEM) + "\n")
    dataset = Dataset.objects.create(
        owner=alice, name="val", path=str(data), row_count=1, size_bytes=data.stat().st_size
    )
    found = alice_client.get(f"/playground/rows/?dataset={dataset.pk}&index=0").json()
    assert found["messages"] == ROW_PROMPT and found["prompt"] == "six times seven?"
