"""The test bench: a reward runs on real rows in a real Celery worker, before any training."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from jobs.models import Dataset, ModelEntry
from rewards.models import RewardFunction, RewardTest
from rewards.services import create_reward
from rftconsole.processes.supervisor import Supervisor

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

NOISY = """
def grade(sample, item):
    print("checking", item["task_id"])
    if "boom" in sample["output_text"]:
        raise ValueError("cannot grade this one")
    return float(sample["output_text"].strip() == "#### 4")
"""


@pytest.fixture
def starter_user(starter_artifacts: Path) -> User:
    user = User.objects.create_user("alice")
    call_command("bootstrap_starter", "--no-progress", "--user", "alice", stdout=io.StringIO())
    return user


@pytest.fixture
def client_of(starter_user: User) -> Client:
    client = Client()
    client.force_login(starter_user)
    return client


def run(client: Client, reward: RewardFunction, **body: Any) -> Any:
    return client.post(
        f"/api/rewards/{reward.pk}/run/", {"wait": 120, **body}, content_type="application/json"
    )


def test_typed_samples_are_scored_with_components_output_errors_and_time(
    live_stack: Supervisor, starter_user: User, client_of: Client
) -> None:
    reward = create_reward(starter_user, "noisy", "code", code=NOISY).reward
    row = {"messages": [{"role": "user", "content": "2+2?"}], "task_id": "t1"}
    samples = [{"row": row, "output_text": text} for text in ("#### 4", "#### 5", "boom")]
    response = run(client_of, reward, samples=samples)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "done"
    assert [r["score"] for r in body["results"]] == [1.0, 0.0, 0.0]
    assert body["results"][2]["error"] == "ValueError: cannot grade this one"
    assert "checking t1" in body["results"][0]["output"]
    assert all(r["ms"] > 0 for r in body["results"])
    assert body["summary"] == {"rows": 3, "mean_score": 0.5, "passed": 1, "errors": 1}


def test_dataset_rows_with_typed_completions_use_the_rows_reference(
    live_stack: Supervisor, starter_user: User, client_of: Client
) -> None:
    reward = RewardFunction.objects.get(owner=starter_user, name="arithmetic")
    dataset = Dataset.objects.get(owner=starter_user, name="arithmetic-validation")
    first = json.loads(Path(dataset.path).read_text().splitlines()[0])
    right = "#### " + first["reference_answer"]["final_answer"]
    response = run(client_of, reward, dataset=dataset.name, rows=2, completions=[right, "no idea"])
    results = response.json()["results"]
    assert [r["score"] for r in results] == [1.0, 0.0]
    assert results[0]["reference_answer"] == first["reference_answer"]
    assert results[0]["components"][0] == {"name": "correct", "value": 1.0, "type": "Reward"}
    short = run(client_of, reward, dataset=dataset.name, rows=2, completions=["one"])
    assert short.status_code == 400 and "one completion per row (2)" in short.json()["detail"][0]


def test_completions_can_be_sampled_from_a_registered_model(
    live_stack: Supervisor, starter_user: User, client_of: Client
) -> None:
    reward = RewardFunction.objects.get(owner=starter_user, name="arithmetic")
    response = run(
        client_of, reward, dataset="arithmetic-validation", rows=4, model="starter", temperature=0
    )
    body = response.json()
    assert body["status"] == "done", body["error"]
    assert len(body["results"]) == 4
    assert all(r["completion"] and r["error"] is None for r in body["results"])
    test = RewardTest.objects.get(pk=body["id"])
    assert test.model == ModelEntry.objects.get(owner=starter_user, name="starter")


def test_the_bench_page_runs_a_test_and_shows_each_row(
    live_stack: Supervisor, starter_user: User, client_of: Client
) -> None:
    reward = RewardFunction.objects.get(owner=starter_user, name="arithmetic")
    dataset = Dataset.objects.get(owner=starter_user, name="arithmetic-validation")
    page = client_of.get(f"/rewards/{reward.pk}/")
    assert b"Test bench" in page.content and b"Save as version 2" in page.content
    rows = client_of.get(f"/rewards/{reward.pk}/test/rows/?dataset={dataset.pk}&rows=2")
    assert rows.content.count(b'name="completion"') == 2
    started = client_of.post(
        f"/rewards/{reward.pk}/test/",
        {"dataset": dataset.pk, "rows": 2, "source": "typed", "completion": ["#### 1", "boom"]},
        headers={"HX-Request": "true"},
    )
    test_url = re.search(rb'hx-get="(/rewards/tests/\d+/)"', started.content).group(1).decode()
    html = poll_until_finished(client_of, test_url)
    assert "Mean score" in html and html.count('class="result-row"') == 2
    assert "#### 1" in html and "ms</td>" in html


def test_a_test_of_a_missing_model_fails_with_a_clear_message(
    live_stack: Supervisor, starter_user: User, client_of: Client
) -> None:
    reward = RewardFunction.objects.get(owner=starter_user, name="arithmetic")
    starter = ModelEntry.objects.get(owner=starter_user, name="starter")
    ModelEntry.objects.filter(pk=starter.pk).update(path="/nonexistent/model")
    body = run(client_of, reward, dataset="arithmetic-validation", rows=1, model="starter").json()
    assert body["status"] == "failed" and "/nonexistent/model" in body["error"]


def poll_until_finished(client: Client, url: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        html = client.get(url).content.decode()
        if "hx-trigger" not in html:
            return html
        time.sleep(0.3)
    raise AssertionError(f"the test at {url} did not finish")
