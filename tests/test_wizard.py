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


HP_STEP_POST = {  # one invalid value among valid ones, one of them in the Advanced group
    "epochCount": "2",
    "batchSize": "7",  # not divisible by trainingSamplePerPrompt, below the minimum too
    "learningRate": "0.0005",
    "temperature": "0.7",
    "lossType": "grpo",
}


def test_after_an_error_every_typed_value_stays_and_the_error_sits_by_its_field(
    alice_client: Client, starter: dict[str, Any]
) -> None:
    base = start(alice_client)
    html = alice_client.post(base + "hyperparameters/", HP_STEP_POST).content.decode()
    assert 'id="id_epochCount" name="epochCount" value="2"' in html
    assert 'id="id_batchSize" name="batchSize" value="7"' in html  # the invalid one too
    assert 'name="learningRate" value="0.0005"' in html and 'name="temperature" value="0.7"' in html
    assert '<option value="grpo" selected>' in html
    batch = html[html.index('id="id_batchSize"') :].split(">", 1)[0]
    assert 'aria-invalid="true"' in batch and "id_batchSize-error" in batch
    assert 'id="id_batchSize-error"' in html
    epochs = html[html.index('id="id_epochCount"') :].split(">", 1)[0]
    assert "aria-invalid" not in epochs  # only the wrong field is marked
    # An empty field shows its default as a hint that says so, not as a look-alike value.
    assert 'placeholder="default: 8"' in html  # trainingSamplePerPrompt, left empty
    assert not JobDraft.objects.get().data.get("hyperparameters")  # nothing saved while wrong


def test_advanced_values_are_collapsed_until_one_has_an_error_or_is_changed(
    alice_client: Client, starter: dict[str, Any]
) -> None:
    base = start(alice_client)
    fresh = alice_client.get(base + "hyperparameters/").content.decode()
    assert '<details class="param-group" id="advanced-params">' in fresh  # closed
    assert fresh.index('id="id_epochCount"') < fresh.index("advanced-params")
    assert fresh.index("advanced-params") < fresh.index('id="id_temperature"')
    wrong = alice_client.post(base + "hyperparameters/", {"temperature": "9"}).content.decode()
    assert '<details class="param-group" id="advanced-params" open>' in wrong
    basic_error = alice_client.post(base + "hyperparameters/", {"epochCount": "x"})
    assert 'id="advanced-params">' in basic_error.content.decode()  # control: stays closed
    alice_client.post(base + "hyperparameters/", {"seed": "7"})
    kept = alice_client.get(base + "hyperparameters/").content.decode()
    assert 'id="advanced-params" open>' in kept and 'name="seed" value="7"' in kept


def test_closed_choices_are_selects_built_from_the_hyperparameter_metadata(
    alice_client: Client, starter: dict[str, Any]
) -> None:
    from jobs.training.hyperparameters import BY_NAME, LORA_TARGET_PRESETS, LOSS_TYPES

    assert BY_NAME["lossType"].choices == LOSS_TYPES
    assert BY_NAME["finalModel"].choices == ("best", "last")
    base = start(alice_client)
    html = alice_client.get(base + "hyperparameters/").content.decode()
    for name in ("lossType", "finalModel"):
        assert f'<select id="id_{name}" name="{name}"' in html
    assert all(f'<option value="{loss}"' in html for loss in LOSS_TYPES)
    assert 'list="id_loraTargets-presets"' in html
    assert all(f'<option value="{preset}">' in html for preset in LORA_TARGET_PRESETS)
    refused = alice_client.post(base + "hyperparameters/", {"lossType": "ppo"}).content.decode()
    assert "must be one of dapo, grpo, dr_grpo, bnpo" in refused
    response = alice_client.post(base + "hyperparameters/", {"loraTargets": "q_proj,v_proj"})
    assert response.status_code == 302  # custom module lists stay accepted


def test_the_reward_step_offers_a_filter_and_a_version_select(
    alice_client: Client, starter: dict[str, Any]
) -> None:
    base = start(alice_client)
    html = alice_client.get(base + "reward/").content.decode()
    assert 'data-filter-select="id_reward"' in html and "js/wizard-filter.js" in html
    reward = starter["reward"]
    assert f'<optgroup label="{reward.name}" data-reward="{reward.pk}">' in html
    assert '<select id="id_reward_version" name="reward_version"' in html
    bad = alice_client.post(base + "reward/", {"reward": reward.pk, "reward_version": "9"})
    assert "has no version 9" in bad.content.decode()
    ok = alice_client.post(base + "reward/", {"reward": reward.pk, "reward_version": "1"})
    assert ok.status_code == 302


def test_max_prompt_length_help_and_review_say_what_training_does(
    alice_client: Client, starter: dict[str, Any]
) -> None:
    from jobs.training.hyperparameters import BY_NAME

    assert "skipped in training" in BY_NAME["maxPromptLength"].help
    assert "truncated" not in BY_NAME["maxPromptLength"].help
    base = start(alice_client)
    fill(alice_client, base, starter)
    review = alice_client.get(base + "review/").content.decode()
    assert "are skipped in training" in review and "counted (skipped" not in review


def test_the_preview_answers_a_hint_before_a_dataset_is_chosen(
    alice_client: Client, bob_client: Client, starter: dict[str, Any]
) -> None:
    base = start(alice_client)
    empty = alice_client.get(base + "preview/?train_dataset=")
    assert empty.status_code == 200 and "Choose a dataset" in empty.content.decode()
    assert alice_client.get(base + "preview/?train_dataset=x").status_code == 404
    bobs = start(bob_client)
    assert bob_client.get(bobs + "preview/?train_dataset=").status_code == 200
    foreign = bob_client.get(bobs + f"preview/?train_dataset={starter['train'].pk}")
    assert foreign.status_code == 404


@pytest.mark.parametrize(
    "given",
    [
        {},  # the CPU defaults: 64 / 8 = 8 prompts a step, 3 epochs
        {"batchSize": "24", "trainingSamplePerPrompt": "8", "epochCount": "2"},
        {"batchSize": "16", "trainingSamplePerPrompt": "4", "maxSteps": "500"},  # past the epochs
        {"maxPromptLength": "65", "epochCount": "1"},  # the longer prompts are skipped
    ],
)
def test_the_review_estimate_is_the_step_count_the_trainer_runs(
    alice: User, alice_client: Client, starter: dict[str, Any], tmp_path: Path, given: dict
) -> None:
    """The review, the engine's total_steps and TRL's own count agree (they said 189 and 186)."""
    from datasets import Dataset as HFDataset
    from trl import GRPOTrainer

    from jobs.registry.loading import load_tokenizer
    from jobs.training.data import prepare
    from jobs.training.engine import grpo_config
    from jobs.training.hyperparameters import Hyperparameters
    from jobs.training.schedule import total_steps
    from jobs.wizard.steps import plan
    from tests.support.tiny_models import save_tiny_model

    base = start(alice_client)
    fill(alice_client, base, starter, **given)
    split = {"train_dataset": starter["train"].pk, "validation_split": "0.2"}
    assert alice_client.post(base + "data/", split).status_code == 302  # the seeded hold-out
    estimate = plan(JobDraft.objects.get()).estimate()
    assert alice_client.post(base + "review/").status_code == 302
    job = Job.objects.get(owner=alice)
    hp = Hyperparameters.of_snapshot(job.config)
    data = prepare(job, load_tokenizer(job.base_model.path), hp)  # what the engine trains on
    assert (estimate["rows"], estimate["skipped_long"]) == (len(data.train), data.skipped_long)
    if "maxPromptLength" in given:
        assert data.skipped_long > 0 and data.train  # the case this parameter is here for
    trainer = GRPOTrainer(  # the row count is all that matters here: a tiny model will do
        model=str(save_tiny_model(tmp_path / "tiny")),
        reward_funcs=lambda completions, **_: [0.0] * len(completions),
        args=grpo_config(hp, tmp_path / "out"),
        train_dataset=HFDataset.from_list(
            [{"prompt": [{"role": "user", "content": "x"}]}] * len(data.train)
        ),
    )
    trl_steps = trainer.set_initial_training_values(trainer.args, trainer.get_train_dataloader())[
        -1
    ]
    assert estimate["steps"] == total_steps(len(data.train), hp) == trl_steps
