"""Bad input of every kind gets a clear, specific error and changes nothing else.

Malformed datasets, oversized uploads and playground garbage have their own tests (test_datasets,
test_playground); this file covers the REST API's bodies, job configs, and the job websocket; test_bad_input_sweep
sends every write route broken bodies and every field the wrong kind of value.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from jobs.models import Dataset, Job, MetricPoint, ModelEntry
from playground.models import InvocationLog
from rewards.models import RewardFunction, RewardTest, RewardVersion
from rftconsole.models import ApiKey, ApiKeyScope
from rftconsole.services import create_api_key
from tests.support.job_rows import make_job
from tests.support.reports import record
from tests.test_live import IN_MEMORY, announce_point, session_headers, socket_for

pytestmark = pytest.mark.reliability

REPORT = ("bad-input", ("Input", "Answer", "Changed"))
POST_ROUTES = [
    "/api/jobs/",
    "/api/rewards/",
    "/api/keys/",
    "/api/models/",
    "/api/datasets/",
    "/api/datasets/from-logs/",
]


def counts() -> dict[str, int]:
    kinds = (Job, RewardFunction, RewardVersion, ApiKey, ModelEntry, Dataset, RewardTest)
    kinds += (InvocationLog,)
    return {kind.__name__: kind.objects.count() for kind in kinds}


@pytest.mark.parametrize("route", POST_ROUTES)
@pytest.mark.parametrize(
    ("body", "problem"),
    [('{"name": "x",', "JSON parse error"), ("[1, 2, 3]", ""), ("\xff\xfe", "")],
    ids=["cut-off JSON", "a list", "not UTF-8"],
)
def test_a_broken_api_body_is_refused_with_a_400_and_nothing_is_stored(
    alice_client: Client, route: str, body: str, problem: str
) -> None:
    before = counts()
    response = alice_client.post(route, body.encode("latin-1"), content_type="application/json")
    changed = counts() != before
    record(*REPORT, f"POST {route} with {body!r}", response.status_code, changed)
    assert response.status_code == 400, response.content[:500]
    assert problem in response.content.decode(errors="replace")
    assert not changed


def post_json(client: Client, path: str, body: Any) -> Any:
    text = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, text, content_type="application/json")


CODE_REWARD = {"name": "r", "kind": "code", "code": "def grade(sample, item):\n    return 1.0\n"}
ENDPOINT_JUDGE = {
    "instructions": "Rate {{response}} for {{prompt}}. Score: 0-10",
    "judge_type": "endpoint",
    "base_url": "http://127.0.0.1:9/v1",
    "model": "judge",
}


def test_a_json_body_nested_100k_deep_gets_a_400_not_a_500(alice_client: Client) -> None:
    before = counts()
    for path in ("/api/rewards/", "/api/datasets/"):
        response = post_json(alice_client, path, b"[" * 100_000)
        record(*REPORT, f"POST {path} with 100k nested [", response.status_code, counts() != before)
        assert response.status_code == 400, response.content[:300]
        assert "nested too deeply" in response.json()["detail"]
    assert counts() == before
    assert post_json(alice_client, "/api/rewards/", CODE_REWARD).status_code == 201  # control


def test_checking_a_reward_with_a_list_body_says_the_body_must_be_an_object(
    alice_client: Client,
) -> None:
    response = post_json(alice_client, "/api/rewards/validate/", "[1]")
    record(*REPORT, "POST /api/rewards/validate/ with [1]", response.status_code, False)
    assert response.status_code == 400, response.content[:300]
    assert response.json() == {"detail": ["The request body must be a JSON object."]}
    control = post_json(alice_client, "/api/rewards/validate/", CODE_REWARD)
    assert control.status_code == 200 and control.json()["valid"] is True


@pytest.mark.parametrize("path", ["/api/rewards/validate/", "/api/rewards/"])
def test_reward_code_that_is_a_number_is_refused_by_name(alice_client: Client, path: str) -> None:
    before = counts()
    response = post_json(alice_client, path, {**CODE_REWARD, "code": 123})
    record(*REPORT, f'POST {path} with "code": 123', response.status_code, counts() != before)
    assert response.status_code == 400, response.content[:300]
    assert response.json() == {"code": ["Must be text (a JSON string), not a number."]}
    assert counts() == before
    assert post_json(alice_client, path, CODE_REWARD).status_code in {200, 201}  # control


@pytest.mark.parametrize("path", ["/api/rewards/validate/", "/api/rewards/"])
def test_a_reward_config_that_is_a_list_is_refused_by_name(alice_client: Client, path: str) -> None:
    body = {"name": "exact", "kind": "builtin", "config": [1]}
    before = counts()
    response = post_json(alice_client, path, body)
    record(*REPORT, f'POST {path} with "config": [1]', response.status_code, counts() != before)
    assert response.status_code == 400, response.content[:300]
    assert response.json() == {
        "config": ['Must be a JSON object, e.g. {"grader": "string_check"}.']
    }
    assert counts() == before
    control = post_json(alice_client, path, {**body, "config": {"grader": "string_check"}})
    assert control.status_code in {200, 201}, control.content[:300]


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("judge", {**ENDPOINT_JUDGE, "judge_type": "local", "local_model": "starter"}),
        ("judge", {k: v for k, v in ENDPOINT_JUDGE.items() if k != "judge_type"}),
        ("builtin", {"grader": "string_check"}),
    ],
    ids=["a local judge", "a judge with no judge_type", "a builtin grader"],
)
def test_an_api_key_that_would_be_dropped_is_refused(
    alice_client: Client, kind: str, config: dict[str, Any]
) -> None:
    body = {"name": "judged", "kind": kind, "config": config, "api_key": "sk-secret"}
    response = post_json(alice_client, "/api/rewards/", body)
    record(*REPORT, f"api_key with {kind} {config.get('judge_type')}", response.status_code, False)
    assert response.status_code == 400, response.content[:300]
    assert response.json() == {
        "api_key": ["api_key is only used by an endpoint judge (judge_type: endpoint)."]
    }
    assert not RewardFunction.objects.exists()
    assert post_json(alice_client, "/api/rewards/", {**body, "api_key": ""}).status_code == 201


def test_an_api_key_inside_the_config_is_refused_not_stored_in_the_clear(
    alice_client: Client,
) -> None:
    body = {"name": "judged", "kind": "judge", "config": {**ENDPOINT_JUDGE, "api_key": "sk-x"}}
    response = post_json(alice_client, "/api/rewards/", body)
    assert response.status_code == 400, response.content[:300]
    assert "api_key beside config, not inside it" in response.json()["config"][0]
    assert not RewardFunction.objects.exists()
    control = post_json(alice_client, "/api/rewards/", {**body, "config": ENDPOINT_JUDGE})
    assert control.status_code == 201, control.content[:300]
    endpoint = {**body, "name": "keyed", "config": ENDPOINT_JUDGE, "api_key": "sk-x"}
    keyed = post_json(alice_client, "/api/rewards/", endpoint)
    assert keyed.status_code == 201 and keyed.json()["latest_version"]["config"]["has_api_key"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b'{"model": "m", "messages": [], "temperature": NaN}', "NaN and Infinity"),
        (b'{"model": "m", "messages": [], "metadata": {"n": 1e400}}', "1e400 is too large"),
    ],
    ids=["100k nested [", "NaN", "1e400"],
)
def test_a_v1_body_that_is_not_strict_json_gets_openais_400(
    alice: User, body: bytes, problem: str
) -> None:
    raw_key = create_api_key(alice, "k", ApiKeyScope.INFERENCE)[1]
    before = counts()
    response = Client().post(
        "/v1/chat/completions", body, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw_key}",
    )  # fmt: skip
    record(*REPORT, f"POST /v1/chat/completions with {body[:20]!r}", response.status_code, False)
    assert response.status_code == 400, response.content[:300]
    assert problem in response.json()["error"]["message"]
    assert counts() == before


def test_a_reward_form_config_nested_100k_deep_is_a_form_error(alice_client: Client) -> None:
    form = {"name": "numbers", "description": "", "pass_threshold": "1.0"}
    deep = {**form, "config_json": "[" * 100_000}
    response = alice_client.post("/rewards/new/number-match/", deep)
    assert response.status_code == 200, response.content[:300]
    assert "nested too deeply" in response.content.decode()
    assert not RewardFunction.objects.exists()
    good = {**form, "config_json": '{"grader": "number_match"}'}
    assert alice_client.post("/rewards/new/number-match/", good).status_code == 302  # control


@pytest.fixture
def starter(alice: User, starter_artifacts: Path) -> None:
    call_command("bootstrap_starter", "--no-progress", "--user", "alice", stdout=io.StringIO())


JOB = {
    "name": "api-job",
    "base_model": "starter",
    "train_dataset": "arithmetic-train",
    "validation_dataset": "arithmetic-validation",
    "reward": "arithmetic",
}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"hyperparameters": {"batchSize": "lots"}}, "batchSize", "must be an integer"),
        ({"hyperparameters": {"learningRate": 5}}, "learningRate", "between 1e-07 and 0.001"),
        ({"hyperparameters": {"epochCount": 0}}, "epochCount", "between 1 and 50"),
        ({"hyperparameters": {"lossType": "magic"}}, "lossType", "one of dapo, grpo"),
        ({"hyperparameters": {"batchSize": 20}}, "batchSize", "divisible"),
        ({"hyperparameters": {"noSuchKnob": 1}}, "noSuchKnob", "unknown hyperparameter"),
        ({"hyperparameters": "fast"}, "hyperparameters", "name: value pairs"),
        ({"base_model": "gpt-17"}, "base_model", "gpt-17"),
        ({"train_dataset": "bobs-data"}, "train_dataset", "bobs-data"),
        ({"reward": ""}, "reward", ""),
        ({"name": ""}, "name", ""),
    ],
)
def test_an_invalid_job_config_names_the_field_and_creates_nothing(
    alice_client: Client, starter: None, bob: User, change: dict, field: str, message: str
) -> None:
    Dataset.objects.create(owner=bob, name="bobs-data", row_count=1, size_bytes=1)
    response = alice_client.post("/api/jobs/", {**JOB, **change}, content_type="application/json")
    errors: Any = response.json()
    record(
        *REPORT, f"job config {change}", f"{response.status_code} {errors}", Job.objects.exists()
    )
    assert response.status_code == 400, errors
    assert field in errors, errors
    assert message in str(errors[field]), errors
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_garbage_frames_on_a_job_socket_are_ignored_and_points_keep_coming(
    alice: User, settings: Any
) -> None:
    settings.CHANNEL_LAYERS = IN_MEMORY
    job = make_job(alice, status=Job.Status.TRAINING, current_step=1, total_steps=5)
    frames = [{"text_data": "{not json"}, {"text_data": "[1, 2]"}, {"bytes_data": b"\x00\xff" * 50}]
    headers = session_headers(alice)

    async def scenario() -> tuple[list[int], bool]:
        socket = socket_for(headers, job)
        connected, _ = await socket.connect()
        assert connected
        await socket.receive_json_from(timeout=5)  # the history
        for frame in frames:
            await socket.send_to(**frame)
        await database_sync_to_async(announce_point)(job, 2)
        point = await socket.receive_json_from(timeout=5)
        still_open = await socket.receive_nothing(timeout=0.2)
        await socket.disconnect()
        return [point["step"]], still_open

    steps, still_open = async_to_sync(scenario)()
    record(*REPORT, "job websocket: invalid JSON, a list, binary", "ignored", False)
    assert steps == [2] and still_open
    assert list(MetricPoint.objects.filter(job=job).values_list("step", flat=True)) == [2]


# --- malformed JSON, wrong shapes and wrong types: a 400 that says what, never a 500 -----------


# int() takes "٣", "1_000" and " 7 "; str.isdigit() passes "²", which int() then refuses.
ODD_NUMBERS = ["²", "٣", "1_000", "9" * 40, "-", "", "1e3"]


def _number_links(job: Job) -> list[str]:
    return [
        "/playground/?job={}",
        f"/jobs/{job.pk}/rollouts/?step={{}}",
        "/jobs/compare/?ids={}&ids={}",
        "/jobs/new/?clone={}",
        f"/api/jobs/{job.pk}/metrics/?after={{}}",
        f"/api/jobs/{job.pk}/rollouts/?step={{}}",
    ]


@pytest.mark.parametrize("typed", ODD_NUMBERS)
def test_a_number_typed_oddly_in_a_link_gets_an_answer_not_a_500(
    alice_client: Client, alice: User, typed: str
) -> None:
    job = make_job(alice)
    for link in _number_links(job):
        response = alice_client.get(link.format(typed, typed))
        assert response.status_code in (200, 302, 400, 404), (link, response.status_code)
        record(*REPORT, f"GET {link.format(typed, typed)}", response.status_code, False)


def test_the_same_links_with_plain_numbers_work(alice_client: Client, alice: User) -> None:
    """Control: each link above answers 200 (or the wizard's redirect) for a real number."""
    job, other = make_job(alice), make_job(alice, name="second")
    answers = {
        link: alice_client.get(link.format(job.pk, other.pk)).status_code
        for link in _number_links(job)
    }
    assert answers == {
        "/playground/?job={}": 200,
        f"/jobs/{job.pk}/rollouts/?step={{}}": 200,
        "/jobs/compare/?ids={}&ids={}": 200,
        "/jobs/new/?clone={}": 302,
        f"/api/jobs/{job.pk}/metrics/?after={{}}": 200,
        f"/api/jobs/{job.pk}/rollouts/?step={{}}": 200,
    }
    assert alice_client.get(f"/api/jobs/{job.pk}/metrics/?after=²").status_code == 400
