"""Bad input of every kind gets a clear, specific error and changes nothing else.

Malformed datasets, oversized uploads and playground garbage have their own tests (test_datasets,
test_playground); this file covers the REST API's bodies, job configs, and the job websocket.
"""

from __future__ import annotations

import io
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
from rewards.models import RewardFunction, RewardTest
from rftconsole.models import ApiKey
from tests.job_rows import make_job
from tests.reports import record
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
    kinds = (Job, RewardFunction, ApiKey, ModelEntry, Dataset, RewardTest, InvocationLog)
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
