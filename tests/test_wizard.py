"""The job wizard: one step per screen, each checked on the server, kept as a draft."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from jobs.models import Dataset, Job, JobDraft, ModelEntry
from rewards.models import RewardFunction


@pytest.fixture
def starter(alice: User, starter_artifacts: Path) -> dict[str, Any]:
    call_command("bootstrap_starter", "--no-progress", "--user", "alice", stdout=io.StringIO())
    return {
        "model": ModelEntry.objects.get(owner=alice, name="starter"),
        "train": Dataset.objects.get(owner=alice, name="arithmetic-train"),
        "validation": Dataset.objects.get(owner=alice, name="arithmetic-validation"),
        "reward": RewardFunction.objects.get(owner=alice, name="arithmetic"),
    }


def start(client: Client) -> str:
    response = client.post("/jobs/new/")
    assert response.status_code == 302 and response.url.endswith("/basics/")
    return response.url.removesuffix("basics/")


def fill(client: Client, base: str, starter: dict[str, Any], **hyperparameters: str) -> None:
    answers = {
        "basics": {"name": "arith", "base_model": starter["model"].pk},
        "data": {
            "train_dataset": starter["train"].pk,
            "validation_mode": "dataset",
            "validation_dataset": starter["validation"].pk,
        },
        "reward": {"reward": starter["reward"].pk},
        "hyperparameters": hyperparameters,
        "security": {},
    }
    for step, values in answers.items():
        response = client.post(base + f"{step}/", values)
        assert response.status_code == 302, response.content.decode()[:3000]


def test_each_step_is_checked_with_a_message_next_to_the_field(
    alice_client: Client, starter: dict[str, Any]
) -> None:
    base = start(alice_client)
    html = alice_client.post(base + "basics/", {"name": "", "base_model": ""}).content.decode()
    assert "Give the job a name" in html and "Choose one of your models" in html
    alice_client.post(base + "basics/", {"name": "j", "base_model": starter["model"].pk})
    same = {"train_dataset": starter["train"].pk, "validation_mode": "dataset",
            "validation_dataset": starter["train"].pk}  # fmt: skip
    assert "Validate on other rows" in alice_client.post(base + "data/", same).content.decode()
    split = {"train_dataset": starter["train"].pk, "validation_split": "0.9"}
    assert "between 0 and 0.5" in alice_client.post(base + "data/", split).content.decode()
    bad_version = {"reward": starter["reward"].pk, "reward_version": "7"}
    assert "has no version 7" in alice_client.post(base + "reward/", bad_version).content.decode()
    html = alice_client.post(base + "hyperparameters/", {"batchSize": "7"}).content.decode()
    assert "batchSize" in html and 'class="field-error"' in html


def test_a_job_is_created_from_the_review_with_an_estimate(
    alice: User, alice_client: Client, starter: dict[str, Any]
) -> None:
    base = start(alice_client)
    fill(alice_client, base, starter, maxSteps="4")
    review = alice_client.get(base + "review/").content.decode()
    assert "4 steps (8 prompts × 8 answers each)" in review and "a dry run" in review
    response = alice_client.post(base + "review/")
    job = Job.objects.get(owner=alice, name="arith")
    assert response.status_code == 302 and response.url == f"/jobs/{job.pk}/"
    assert job.config["hyperparameters"]["maxSteps"] == 4 and job.validation_dataset is not None
    assert not JobDraft.objects.exists()


def test_review_names_a_failed_check_and_the_step_that_fixes_it(
    alice_client: Client, starter: dict[str, Any]
) -> None:
    base = start(alice_client)
    fill(alice_client, base, starter, maxPromptLength="600")  # + 48 tokens > context 512
    html = alice_client.post(base + "review/").content.decode()
    assert "exceeds the context of" in html and "go to that step" in html
    assert not Job.objects.exists()


def test_a_draft_is_kept_to_resume_later_and_the_data_step_previews_rows(
    alice_client: Client, starter: dict[str, Any]
) -> None:
    base = start(alice_client)
    alice_client.post(base + "basics/", {"name": "later", "base_model": starter["model"].pk})
    listing = alice_client.get("/jobs/new/").content.decode()
    assert "later" in listing and "1 of 6" in listing  # of the real step list
    preview = alice_client.get(base + f"preview/?train_dataset={starter['train'].pk}")
    assert preview.content.decode().count('class="chat-row"') == 3


def test_clone_copies_a_jobs_choices_into_a_new_draft(
    alice: User, alice_client: Client, starter: dict[str, Any]
) -> None:
    base = start(alice_client)
    fill(alice_client, base, starter, maxSteps="3", learningRate="0.0005")
    alice_client.post(base + "review/")
    job = Job.objects.get(owner=alice)
    response = alice_client.get(f"/jobs/new/?clone={job.pk}")
    assert response.url.endswith("/review/")
    draft = JobDraft.objects.get(owner=alice)
    assert draft.data["name"] == "arith-copy" and draft.data["hyperparameters"]["maxSteps"] == "3"
    assert "arith-copy" in alice_client.get(response.url).content.decode()


def test_bob_cannot_open_or_use_alices_draft_or_objects(
    alice_client: Client, bob_client: Client, starter: dict[str, Any]
) -> None:
    base = start(alice_client)
    assert bob_client.get(base + "basics/").status_code == 404
    assert bob_client.post(base + "discard/").status_code == 404
    bobs = start(bob_client)
    html = bob_client.post(bobs + "basics/", {"name": "x", "base_model": starter["model"].pk})
    assert "Choose one of your models" in html.content.decode()
    assert bob_client.get(bobs + f"preview/?train_dataset={starter['train'].pk}").status_code == 404
