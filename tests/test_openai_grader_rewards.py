"""An OpenAI grader as a reward (kind `openai_grader`): created through the service and the REST
API, scored through `score_batch` as training does (a python part in the real sandbox, once per
batch; a model part through the fake judge endpoint), shown with its keys masked, edited into a
new version, run on the test bench, and visible to its owner only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from rewards.models import RewardFunction, RewardVersion
from rewards.openai_graders.model_graders import SECRET_KEY_FIELD
from rewards.sandbox.runner import default_pool
from rewards.scoring import score_batch
from rewards.services import RewardError, create_from_openai_grader, new_version
from rewards.testbench import run_test, start_test
from rewards.types import Sample
from tests.support.judge_server import JudgeServer, serve

pytestmark = pytest.mark.django_db

CODE = """
def grade(sample, item):
    if "boom" in sample["output_text"]:
        raise ValueError("cannot grade " + item["answer"])
    return float(item["answer"] in sample["output_text"])
"""
SECRET = "sk-grader-secret-123"


def python_part(source: str = CODE) -> dict[str, Any]:
    return {"type": "python", "name": "code", "source": source}


def exact_part() -> dict[str, Any]:
    return {
        "type": "string_check", "name": "exact", "operation": "eq",
        "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
    }  # fmt: skip


def both(source: str = CODE) -> dict[str, Any]:
    return {
        "type": "multi", "name": "both", "calculate_output": "0.5 * code + 0.5 * exact",
        "graders": {"code": python_part(source), "exact": exact_part()},
    }  # fmt: skip


def rows() -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": f"Capital #{i}?"}], "answer": city}
        for i, city in enumerate(("Paris", "Rome", "Oslo", "Lima"))
    ]


def batch(*texts: str) -> list[Sample]:
    """Two answers per row, sharing the row object, as a GRPO group's answers do."""
    table = rows()
    return [Sample(str(i), text, table[i // 2]) for i, text in enumerate(texts)]


EIGHT = ("Paris", "It is Paris", "Rome", "Milan", "Oslo", "oslo", "Lima", "Lima!")
EXPECTED = [  # (reward, code, exact)
    (1.0, 1.0, 1.0), (0.5, 1.0, 0.0), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0),
    (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.5, 1.0, 0.0),
]  # fmt: skip


@pytest.fixture
def judge() -> Iterator[JudgeServer]:
    with serve() as server:
        yield server


def judged(judge: JudgeServer, **extra: Any) -> dict[str, Any]:
    return {
        "type": "score_model", "name": "judge", "model": "judge-model", "base_url": judge.url,
        "api_key": SECRET, "range": [0, 1],
        "input": [{"role": "user", "content": "Is {{sample.output_text}} {{item.answer}}?"}],
        **extra,
    }  # fmt: skip


def test_a_multi_grader_becomes_a_reward_and_scores_a_batch_with_one_sandbox_call(
    alice: User,
) -> None:
    version = create_from_openai_grader(alice, "capitals", both())
    assert version.reward.kind == RewardFunction.Kind.OPENAI_GRADER
    assert version.config == {"grader": both()}
    calls = default_pool().calls_of(CODE)
    results = score_batch(version, batch(*EIGHT))
    assert default_pool().calls_of(CODE) == calls + 1  # one sandbox call for the 8 samples
    assert [r.error for r in results] == [None] * 8
    assert [(r.score, *(c["value"] for c in r.components)) for r in results] == EXPECTED
    assert [c["name"] for c in results[0].components] == ["code", "exact"]
    assert {c["type"] for r in results for c in r.components} == {"Reward"}


def test_a_raising_python_part_is_that_rows_error_and_the_others_still_score(
    alice: User,
) -> None:
    version = create_from_openai_grader(alice, "capitals", both())
    results = score_batch(version, batch("Paris", "boom", "Rome", "Rome"))
    assert [r.score for r in results] == [1.0, 0.0, 1.0, 1.0]
    assert [r.error is None for r in results] == [True, False, True, True]
    assert results[1].error.startswith("code: python_grader_runtime_error: ValueError")
    assert "cannot grade Paris" in results[1].error


def test_code_that_fails_as_a_whole_gives_every_row_an_error_not_a_crash(alice: User) -> None:
    broken = "import no_such_module\n\ndef grade(sample, item):\n    return 1.0\n"
    version = create_from_openai_grader(alice, "broken", python_part(broken))
    results = score_batch(version, batch("Paris", "Paris", "Rome"))
    assert all(r.error and "ModuleNotFoundError" in r.error for r in results)


def test_a_grader_reward_is_created_over_the_rest_api(alice_client: Client) -> None:
    body = {"name": "capitals", "kind": "openai_grader", "config": {"grader": both()}}
    response = alice_client.post("/api/rewards/", body, content_type="application/json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["kind"] == "openai_grader"
    assert created["latest_version"]["config"] == {"grader": both()}
    version = RewardFunction.objects.get(pk=created["id"]).latest_version()
    results = score_batch(version, batch("Paris", "It is Paris"))
    assert [r.score for r in results] == [1.0, 0.5]


def test_a_validation_error_names_the_field(alice: User, alice_client: Client) -> None:
    wrong = both()
    wrong["graders"]["exact"]["operation"] = "contains"
    with pytest.raises(RewardError) as caught:
        create_from_openai_grader(alice, "capitals", wrong)
    assert caught.value.problems["config"][0].startswith("grader.graders.exact.operation: ")
    body = {"name": "capitals", "kind": "openai_grader", "config": {"grader": wrong}}
    response = alice_client.post("/api/rewards/", body, content_type="application/json")
    assert response.status_code == 400
    assert "grader.graders.exact.operation" in response.json()["config"][0]
    body = {"kind": "openai_grader", "config": {"grader": {**exact_part(), "input": "{{x}}"}}}
    response = alice_client.post("/api/rewards/validate/", body, content_type="application/json")
    assert response.json()["valid"] is False
    assert response.json()["problems"]["config"][0].startswith("grader.input: unknown template")
    assert not RewardFunction.objects.exists()


def test_bob_cannot_see_or_use_alices_grader_reward(
    alice: User, alice_client: Client, bob_client: Client
) -> None:
    reward = create_from_openai_grader(alice, "capitals", both()).reward
    run = {"samples": [{"row": rows()[0], "output_text": "Paris"}]}
    for client, seen in ((alice_client, 200), (bob_client, 404)):
        assert client.get(f"/api/rewards/{reward.pk}/").status_code == seen
        assert client.get(f"/rewards/{reward.pk}/").status_code == seen
        names = [r["name"] for r in client.get("/api/rewards/").json()["results"]]
        assert names == (["capitals"] if seen == 200 else [])
        started = client.post(f"/api/rewards/{reward.pk}/run/", run, "application/json")
        assert started.status_code == (202 if seen == 200 else 404)
        versions = client.post(f"/api/rewards/{reward.pk}/versions/", {}, "application/json")
        assert versions.status_code == (201 if seen == 200 else 404)


def test_the_test_bench_scores_three_typed_completions(alice: User) -> None:
    version = create_from_openai_grader(alice, "capitals", both())
    samples = [
        {"row": row, "output_text": text}
        for row, text in zip(rows(), ("Paris", "It is Rome", "boom"), strict=False)
    ]
    test = start_test(alice, version, samples=samples)
    run_test(test)  # what the Celery task runs
    test.refresh_from_db()
    assert test.status == "done", test.error
    assert [r["score"] for r in test.results] == [1.0, 0.5, 0.0]
    assert [r["passed"] for r in test.results] == [True, False, False]
    assert [c["name"] for c in test.results[0]["components"]] == ["code", "exact"]
    assert "python_grader_runtime_error" in test.results[2]["error"]
    assert test.summary() == {"rows": 3, "mean_score": 0.75, "passed": 1, "errors": 1}


def test_a_model_graders_key_is_stored_encrypted_shown_masked_and_kept_on_edit(
    alice: User, alice_client: Client, judge: JudgeServer
) -> None:
    grader = {**both(), "graders": {"code": python_part(), "exact": judged(judge)}}
    version = create_from_openai_grader(alice, "judged", grader)
    stored = version.config["grader"]["graders"]["exact"]
    assert "api_key" not in stored and stored[SECRET_KEY_FIELD]
    assert SECRET not in json.dumps(version.config)
    api = alice_client.get(f"/api/rewards/{version.reward.pk}/").json()
    shown = api["latest_version"]["config"]["grader"]["graders"]["exact"]
    assert shown["has_api_key"] is True and SECRET_KEY_FIELD not in shown
    page = alice_client.get(f"/rewards/{version.reward.pk}/").content.decode()
    assert SECRET not in page and stored[SECRET_KEY_FIELD] not in page
    assert "&quot;has_api_key&quot;: true" in page and "&quot;calculate_output&quot;" in page
    # Edited as shown (the mask included): the key stays; at another base_url it does not.
    second = new_version(version.reward, config=api["latest_version"]["config"])
    assert second.config == version.config
    moved = json.loads(json.dumps(api["latest_version"]["config"]))
    moved["grader"]["graders"]["exact"]["base_url"] = judge.url.replace("127.0.0.1", "localhost")
    third = new_version(version.reward, config=moved)
    assert SECRET_KEY_FIELD not in third.config["grader"]["graders"]["exact"]


def test_a_model_part_asks_the_judge_once_per_row_and_is_charted_beside_the_code(
    alice: User, judge: JudgeServer
) -> None:
    judge.answer = lambda body: '{"result": 0.8}'
    grader = {**both(), "graders": {"code": python_part(), "exact": judged(judge)}}
    version = create_from_openai_grader(alice, "judged", grader)
    results = score_batch(version, batch("Paris", "Nice", "Rome", "Rome"))
    assert [r.score for r in results] == pytest.approx([0.9, 0.4, 0.9, 0.9])
    assert len(judge.requests) == 4
    sent = judge.requests[0]
    assert sent["headers"]["authorization"] == f"Bearer {SECRET}"
    names = [(c["name"], c["type"]) for c in results[0].components]
    assert names[:2] == [("code", "Reward"), ("exact", "Reward")]


def test_the_editor_saves_edited_json_as_a_new_version_validated_the_same_way(
    alice: User, alice_client: Client
) -> None:
    reward = create_from_openai_grader(alice, "capitals", both()).reward
    edited = {"grader": {**both(), "calculate_output": "min(code, exact)"}}
    form = {"name": "capitals", "description": "", "pass_threshold": "1.0"}
    response = alice_client.post(
        f"/rewards/{reward.pk}/", {**form, "config_json": json.dumps(edited)}
    )
    assert response.status_code == 302
    assert reward.latest_version().config == edited
    edited["grader"]["calculate_output"] = "code +"
    response = alice_client.post(
        f"/rewards/{reward.pk}/", {**form, "config_json": json.dumps(edited)}
    )
    assert response.status_code == 200
    assert "grader.calculate_output" in response.content.decode()
    assert reward.versions.count() == 2
    assert RewardVersion.objects.filter(reward=reward).count() == 2


def test_the_list_and_the_wizards_reward_step_offer_it_to_its_owner_only(
    alice: User, alice_client: Client, bob_client: Client
) -> None:
    reward = create_from_openai_grader(alice, "capitals", both()).reward
    assert "OpenAI grader" in alice_client.get("/rewards/").content.decode()
    assert "capitals" not in bob_client.get("/rewards/").content.decode()
    for client, offered in ((alice_client, True), (bob_client, False)):
        base = client.post("/jobs/new/").url.removesuffix("basics/")
        step = client.get(base + "reward/").content.decode()
        assert ("capitals · OpenAI grader · v1" in step) is offered
        chosen = client.post(base + "reward/", {"reward": reward.pk})
        assert (chosen.status_code == 302) is offered


def test_a_grader_reward_is_created_from_the_gallery_by_pasting_its_json(
    alice: User, alice_client: Client
) -> None:
    page = alice_client.get("/rewards/new/openai-grader/").content.decode()
    assert "OpenAI grader (JSON)" in page and "calculate_output" in page
    form = {"name": "pasted", "description": "", "pass_threshold": "1.0"}
    broken = {"grader": {**both(), "calculate_output": "code +"}}
    response = alice_client.post(
        "/rewards/new/openai-grader/", {**form, "config_json": json.dumps(broken)}
    )
    assert response.status_code == 200 and "grader.calculate_output" in response.content.decode()
    assert not RewardFunction.objects.filter(owner=alice, name="pasted").exists()
    response = alice_client.post(
        "/rewards/new/openai-grader/", {**form, "config_json": json.dumps({"grader": both()})}
    )
    reward = RewardFunction.objects.get(owner=alice, name="pasted")  # control: a good one saves
    assert response.status_code == 302 and reward.kind == RewardFunction.Kind.OPENAI_GRADER
    assert reward.latest_version().config == {"grader": both()}
