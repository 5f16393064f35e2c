"""Rewards over the API: create, validate, edit into a new version, keys kept secret, privacy."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from rewards.models import RewardFunction, RewardVersion
from rewards.services import RewardError, create_reward, new_version
from rftconsole.security.crypto import decrypt_text

GRADE = "def grade(sample, item):\n    return float('yes' in sample['output_text'])\n"
JUDGE = {
    "instructions": "Rate {{response}} for {{prompt}}. Score: 0-10",
    "judge_type": "endpoint",
    "base_url": "http://127.0.0.1:9/v1",
    "model": "judge",
}


def post(client: Client, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, body, content_type="application/json")


def test_a_code_reward_is_created_with_its_interface_detected(alice_client: Client) -> None:
    response = post(alice_client, "/api/rewards/", {"name": "yes", "kind": "code", "code": GRADE})
    assert response.status_code == 201, response.json()
    latest = response.json()["latest_version"]
    assert latest["number"] == 1 and latest["interface"] == "grade"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"kind": "code", "code": "def grade(sample, item)\n  return 1"}, "code", "line 1"),
        ({"kind": "code", "code": "def score(x):\n    return 1"}, "code", "lambda_handler"),
        ({"kind": "builtin", "config": {"grader": "nope"}}, "config", "Unknown grader"),
        (
            {
                "kind": "builtin",
                "config": {
                    "grader": "multi",
                    "graders": {"a": {"grader": "json_fields"}},
                    "formula": "a // 2",
                },
            },
            "config",
            "not allowed",
        ),
        (
            {"kind": "judge", "config": {**JUDGE, "instructions": "no response here"}},
            "config",
            "{{response}}",
        ),
        (
            {"kind": "judge", "config": {**JUDGE, "score_min": 10, "score_max": 1}},
            "config",
            "score_min",
        ),
    ],
)
def test_a_bad_reward_is_refused_with_a_specific_message(
    alice_client: Client, body: dict, field: str, words: str
) -> None:
    response = post(alice_client, "/api/rewards/", {"name": "bad", **body})
    assert response.status_code == 400
    assert words in " ".join(response.json()[field])
    assert not RewardFunction.objects.filter(name="bad").exists()


def test_validate_checks_a_definition_without_saving_it(alice_client: Client) -> None:
    good = post(alice_client, "/api/rewards/validate/", {"kind": "code", "code": GRADE}).json()
    assert good == {"valid": True, "problems": {}, "interface": "grade"}
    bad = post(alice_client, "/api/rewards/validate/", {"kind": "builtin", "config": {}}).json()
    assert bad["valid"] is False and "Unknown grader" in bad["problems"]["config"][0]
    assert not RewardFunction.objects.exists()


def test_editing_adds_a_version_and_leaves_the_pinned_one_unchanged(
    alice: User, alice_client: Client
) -> None:
    first = create_reward(alice, "yes", "code", code=GRADE)
    changed = GRADE.replace("'yes'", "'si'")
    url = f"/api/rewards/{first.reward.pk}/versions/"
    response = post(alice_client, url, {"code": changed, "pass_threshold": 0.5})
    assert response.status_code == 201 and response.json()["number"] == 2
    first.refresh_from_db()
    assert first.code == GRADE and first.pass_threshold == 1.0
    numbers = [v["number"] for v in alice_client.get(url).json()]
    assert numbers == [2, 1]
    with pytest.raises(ValueError, match="immutable"):
        first.save()


def test_an_edit_with_broken_code_makes_no_version(alice: User, alice_client: Client) -> None:
    first = create_reward(alice, "yes", "code", code=GRADE)
    url = f"/api/rewards/{first.reward.pk}/versions/"
    response = post(alice_client, url, {"code": "def grade(:"})
    assert response.status_code == 400 and "line 1" in response.json()["code"][0]
    assert RewardVersion.objects.filter(reward=first.reward).count() == 1


def test_a_judge_key_is_stored_encrypted_and_never_returned(
    alice: User, alice_client: Client
) -> None:
    body = {"name": "judge", "kind": "judge", "config": JUDGE, "api_key": "sk-secret-123"}
    response = post(alice_client, "/api/rewards/", body)
    assert response.status_code == 201, response.json()
    assert "sk-secret-123" not in response.content.decode()
    assert response.json()["latest_version"]["config"]["has_api_key"] is True
    stored = RewardVersion.objects.get(reward__name="judge").config
    assert "sk-secret-123" not in str(stored)
    assert decrypt_text(stored["api_key_encrypted"]) == "sk-secret-123"
    listed = alice_client.get("/api/rewards/").content.decode()
    assert "judge" in listed
    assert "api_key_encrypted" not in listed and "sk-secret" not in listed


def test_a_new_judge_version_keeps_the_stored_key_unless_told_otherwise(alice: User) -> None:
    first = create_reward(alice, "judge", "judge", config=JUDGE, api_key="sk-one")
    kept = new_version(first.reward, config={**JUDGE, "model": "bigger"})
    assert decrypt_text(kept.config["api_key_encrypted"]) == "sk-one"
    replaced = new_version(first.reward, api_key="sk-two")
    assert decrypt_text(replaced.config["api_key_encrypted"]) == "sk-two"
    removed = new_version(first.reward, api_key="")
    assert "api_key_encrypted" not in removed.config


def test_two_rewards_of_one_owner_cannot_share_a_name(alice: User, bob: User) -> None:
    create_reward(alice, "same", "code", code=GRADE)
    with pytest.raises(RewardError, match="already have"):
        create_reward(alice, "same", "code", code=GRADE)
    create_reward(bob, "same", "code", code=GRADE)  # another owner's names are their own


def test_a_reward_can_be_created_from_a_template_over_the_api(alice_client: Client) -> None:
    response = post(alice_client, "/api/rewards/", {"template": "math-ground-truth", "name": "m"})
    assert response.status_code == 201
    assert "lambda_handler" in response.json()["latest_version"]["code"]
    missing = post(alice_client, "/api/rewards/", {"template": "nope", "name": "n"})
    assert missing.status_code == 400 and "nope" in missing.json()["template"][0]


def test_bob_cannot_see_edit_run_or_delete_alices_reward(alice: User, bob_client: Client) -> None:
    reward = create_reward(alice, "private", "code", code=GRADE).reward
    base = f"/api/rewards/{reward.pk}/"
    assert bob_client.get("/api/rewards/").json()["results"] == []
    assert bob_client.get(base).status_code == 404
    assert post(bob_client, base + "versions/", {"code": GRADE}).status_code == 404
    assert post(bob_client, base + "run/", {"samples": []}).status_code == 404
    assert bob_client.delete(base).status_code == 404
    assert bob_client.get(f"/rewards/{reward.pk}/").status_code == 404
    assert RewardVersion.objects.filter(reward=reward).count() == 1


def test_run_refuses_someone_elses_dataset_or_model_by_name(
    alice: User, bob: User, alice_client: Client
) -> None:
    from jobs.models import Dataset

    reward = create_reward(alice, "r", "code", code=GRADE).reward
    Dataset.objects.create(owner=bob, name="bobs", path="/nonexistent", row_count=1, size_bytes=1)
    response = post(alice_client, f"/api/rewards/{reward.pk}/run/", {"dataset": "bobs"})
    assert (
        response.status_code == 400 and "no dataset named 'bobs'" in response.json()["dataset"][0]
    )
