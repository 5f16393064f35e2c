"""Job configs are checked before any weights load, each problem with a specific message."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from jobs.actions import create_job
from jobs.datasets.importer import register_dataset_file
from jobs.models import Dataset, Job, ModelEntry
from jobs.tasks import reap_stale_jobs
from jobs.training.hyperparameters import BY_NAME, PARAMS, Hyperparameters, resolve
from jobs.training.preflight import JobConfigError
from rewards.models import RewardFunction
from rewards.services import create_reward


@pytest.fixture
def starter(alice: User, starter_artifacts: Path) -> dict[str, Any]:
    call_command("bootstrap_starter", "--no-progress", "--user", "alice", stdout=io.StringIO())
    return {
        "base_model": ModelEntry.objects.get(owner=alice, name="starter"),
        "train_dataset": Dataset.objects.get(owner=alice, name="arithmetic-train"),
        "reward_version": RewardFunction.objects.get(
            owner=alice, name="arithmetic"
        ).latest_version(),
        "validation_dataset": Dataset.objects.get(owner=alice, name="arithmetic-validation"),
    }


def errors_for(alice: User, starter: dict[str, Any], **given: Any) -> dict[str, str]:
    with pytest.raises(JobConfigError) as raised:
        create_job(alice, "job", given=given, profile="cpu", launch=False, **starter)
    return raised.value.errors


def test_the_defaults_are_valid_and_frozen_into_the_snapshot(
    alice: User, starter: dict[str, Any]
) -> None:
    job = create_job(
        alice, "job", given={"learningRate": 5e-4}, profile="cpu", launch=False, **starter
    )
    assert job.status == Job.Status.QUEUED
    assert job.config["hyperparameters"]["learningRate"] == 5e-4
    assert job.config["hyperparameters"]["batchSize"] == 64
    assert job.config["reward"] == {
        "name": "arithmetic",
        "version": 1,
        "kind": "builtin",
        "pass_threshold": 1.0,
    }
    assert job.config["base_model"]["name"] == "starter"


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        (
            {"batchSize": 20, "trainingSamplePerPrompt": 8},
            "batchSize",
            "must be divisible by trainingSamplePerPrompt (8)",
        ),
        ({"learningRate": 0.1}, "learningRate", "must be between 1e-07 and 0.001"),
        ({"epochCount": "many"}, "epochCount", "must be an integer"),
        ({"lossType": "ppo"}, "lossType", "must be one of dapo, grpo, dr_grpo, bnpo"),
        ({"warmupSteps": 3}, "warmupSteps", "unknown hyperparameter"),
        (
            {"inferenceMaxTokens": 400},
            "inferenceMaxTokens",
            "= 656 tokens exceeds the context of 'starter' (512 tokens)",
        ),
    ],
)
def test_a_bad_config_gets_a_specific_message(
    alice: User, starter: dict[str, Any], given: dict[str, Any], field: str, message: str
) -> None:
    assert message in errors_for(alice, starter, **given)[field]
    assert not Job.objects.exists()


def test_a_dataset_smaller_than_one_batch_is_refused(
    alice: User, starter: dict[str, Any], tmp_path: Path
) -> None:
    rows = Path(starter["train_dataset"].path).read_text().splitlines()[:3]
    (tmp_path / "tiny.jsonl").write_text("\n".join(rows) + "\n")
    starter["train_dataset"] = register_dataset_file(alice, "tiny", tmp_path / "tiny.jsonl")
    message = errors_for(alice, starter)["train_dataset"]
    assert (
        "3 training rows are fewer than one batch "
        "(8 prompts = batchSize 64 / trainingSamplePerPrompt 8)" in message
    )


def test_a_reward_that_fails_its_dry_run_is_refused(alice: User, starter: dict[str, Any]) -> None:
    crash = "def grade(sample, item):\n    raise RuntimeError('bad reward')\n"
    starter["reward_version"] = create_reward(alice, "broken", "code", code=crash)
    assert "RuntimeError: bad reward" in errors_for(alice, starter)["reward"]


def test_without_a_validation_dataset_the_split_must_be_sensible(
    alice: User, starter: dict[str, Any]
) -> None:
    starter["validation_dataset"] = None
    with pytest.raises(JobConfigError) as raised:
        create_job(alice, "job", validation_split=0.9, profile="cpu", launch=False, **starter)
    assert "hold out between 0 and 0.5" in raised.value.errors["validation_split"]


def test_the_hyperparameter_resolver_fills_gpu_defaults() -> None:
    values, errors = resolve({}, "gpu")
    assert not errors
    assert (values["batchSize"], values["learningRate"], values["loraRank"]) == (128, 1e-5, 32)


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_hyperparameters_round_trip_through_bedrock_names(profile: str) -> None:
    values, errors = resolve({"learningRate": "5e-4", "loraDropout": 0, "maxSteps": 7.0}, profile)
    assert not errors
    hp = Hyperparameters.from_bedrock(values)
    assert (hp.learning_rate, hp.lora_dropout, hp.max_steps) == (5e-4, 0.0, 7)
    assert hp.batch_size == (128 if profile == "gpu" else 64)
    # The stored snapshot keeps its names, values and order.
    assert list(hp.to_bedrock().items()) == list(values.items())
    assert Hyperparameters.of_snapshot({"profile": profile, "hyperparameters": values}) == hp
    with pytest.raises(dataclasses.FrozenInstanceError):
        hp.seed = 1  # type: ignore[misc]


def test_each_hyperparameter_has_help_and_a_bedrock_name() -> None:
    specs = dataclasses.fields(Hyperparameters)
    assert [spec.metadata["bedrock_name"] for spec in specs] == [param.name for param in PARAMS]
    for spec in specs:
        camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), spec.name)
        assert spec.metadata["bedrock_name"] == camel, spec.name
        assert spec.metadata["help"].endswith("."), spec.name
        param = BY_NAME[camel]
        assert (param.attribute, param.help) == (spec.name, spec.metadata["help"])
        for profile in ("cpu", "gpu"):
            assert isinstance(param.default(profile), param.kind), (spec.name, profile)
            if param.minimum is not None:
                assert param.minimum <= param.default(profile) <= param.maximum, spec.name


def test_an_unknown_hyperparameter_is_refused_by_name() -> None:
    values, _ = resolve({}, "cpu")
    with pytest.raises(ValueError, match="unknown hyperparameter: warmupSteps"):
        Hyperparameters.from_bedrock({**values, "warmupSteps": 3})
    assert resolve({"warmupSteps": 3}, "cpu")[1] == {"warmupSteps": "unknown hyperparameter"}


def test_several_processes_must_each_sample_whole_groups() -> None:
    _, errors = resolve({"numProcesses": 3, "batchSize": 64, "trainingSamplePerPrompt": 8}, "cpu")
    assert "numProcesses × trainingSamplePerPrompt (3 × 8 = 24)" in errors["numProcesses"]
    assert resolve({"numProcesses": 2, "batchSize": 64}, "cpu")[1] == {}  # control: 64 = 2 × 32


def test_a_sharded_strategy_needs_several_processes_and_a_cuda_worker() -> None:
    _, one_process = resolve({"distributed": "fsdp"}, "gpu")
    assert one_process == {"distributed": "fsdp shards across processes: set numProcesses ≥ 2"}
    _, no_cuda = resolve({"distributed": "deepspeed-zero3", "numProcesses": 2}, "cpu")
    assert "no gpu worker with CUDA has reported: use ddp" in no_cuda["distributed"]
    given = {"distributed": "deepspeed-zero3", "numProcesses": 2}
    assert resolve(given, "gpu")[1] == {}  # control: a console with a CUDA worker takes it


def test_a_snapshot_from_before_final_model_existed_still_loads() -> None:
    values, _ = resolve({}, "gpu")
    del values["finalModel"]
    hp = Hyperparameters.of_snapshot({"profile": "gpu", "hyperparameters": values})
    assert (hp.final_model, hp.batch_size) == ("best", 128)


def test_the_api_creates_a_job_and_reports_config_errors_by_field(
    alice_client: Client,
    starter: dict[str, Any],
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[Any] = []
    monkeypatch.setattr(
        "rftconsole.queue.app.send_task", lambda name, **kwargs: sent.append((name, kwargs))
    )
    body = {
        "name": "api-job",
        "base_model": "starter",
        "train_dataset": "arithmetic-train",
        "validation_dataset": "arithmetic-validation",
        "reward": "arithmetic",
        "hyperparameters": {"maxSteps": 5},
    }
    with django_capture_on_commit_callbacks(execute=True):
        created = alice_client.post("/api/jobs/", body, content_type="application/json")
    assert created.status_code == 201, created.json()
    assert created.json()["status"] == "queued"
    assert sent == [("jobs.train_job", {"args": [created.json()["id"]], "queue": "gpu"})]

    bad = alice_client.post(
        "/api/jobs/",
        {**body, "hyperparameters": {"batchSize": 20}},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert "divisible" in bad.json()["batchSize"]


def test_pause_stop_and_resume_answer_clearly_when_they_do_not_apply(
    alice_client: Client, alice: User, starter: dict[str, Any]
) -> None:
    job = create_job(alice, "job", profile="cpu", launch=False, **starter)
    assert alice_client.post(f"/api/jobs/{job.pk}/resume/").json() == {
        "detail": "Only a paused job can be resumed."
    }
    assert alice_client.post(f"/api/jobs/{job.pk}/stop/").json()["status"] == "stopped"
    assert alice_client.post(f"/api/jobs/{job.pk}/pause/").json() == {
        "detail": "A stopped job cannot be paused."
    }
    assert alice_client.post(f"/api/jobs/{job.pk}/stop/").json() == {
        "detail": "The job is already stopped."
    }


def test_a_job_whose_worker_vanished_too_often_fails_with_the_reason(
    alice: User, starter: dict[str, Any]
) -> None:
    job = create_job(alice, "job", profile="cpu", launch=False, **starter)
    stale = timezone.now() - timezone.timedelta(hours=1)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.TRAINING,
        heartbeat_at=stale,
        attempts=3,
        worker="gpu@host",
        current_step=17,
    )

    assert reap_stale_jobs() == []

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert (
        job.status_reason
        == "Worker gpu@host stopped responding at step 17; gave up after 3 attempts."
    )


def test_alice_cannot_see_or_control_bobs_jobs(
    alice_client: Client, bob: User, starter: dict[str, Any]
) -> None:
    bobs = create_job(bob, "bobs-job", profile="cpu", launch=False, **starter)
    for path in ("", "metrics/", "rollouts/", "checkpoints/", "clone/"):
        assert alice_client.get(f"/api/jobs/{bobs.pk}/{path}").status_code == 404, path
    for verb in ("stop", "pause", "resume"):
        assert alice_client.post(f"/api/jobs/{bobs.pk}/{verb}/").status_code == 404, verb
    assert alice_client.get("/api/jobs/").json()["results"] == []
    bobs.refresh_from_db()
    assert bobs.status == Job.Status.QUEUED


def test_a_job_cannot_use_another_users_model_or_dataset(
    alice_client: Client, bob: User, starter: dict[str, Any]
) -> None:
    call_command("bootstrap_starter", "--no-progress", "--user", "bob", stdout=io.StringIO())
    starter["base_model"].delete()  # alice no longer has a model named starter; bob does
    response = alice_client.post(
        "/api/jobs/",
        {
            "name": "x",
            "base_model": "starter",
            "train_dataset": "arithmetic-train",
            "reward": "arithmetic",
        },
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "does not exist" in json.dumps(response.json()["base_model"])


def test_the_train_command_rejects_a_bad_config_file(admin: User, tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text("name: x\nbase_model: starter\nrewardd: arithmetic\n")
    with pytest.raises(CommandError, match="Unknown keys in .*: rewardd"):
        call_command("train", str(config))
    config.write_text("name: [unclosed\n")
    with pytest.raises(CommandError, match="is not valid YAML"):
        call_command("train", str(config))


def test_prompts_longer_than_max_prompt_length_are_flagged_before_the_job_starts(
    alice: User, starter: dict[str, Any], tmp_path: Path
) -> None:
    rows = [
        json.loads(line) for line in Path(starter["train_dataset"].path).read_text().splitlines()
    ]
    for row in rows[:5]:
        row["messages"][-1]["content"] += " please" * 300
    (tmp_path / "long.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    starter["train_dataset"] = register_dataset_file(alice, "some-long", tmp_path / "long.jsonl")
    job = create_job(
        alice, "job", given={"maxPromptLength": 256}, profile="cpu", launch=False, **starter
    )
    messages = list(job.events.values_list("message", flat=True))
    assert (
        "5 training rows are longer than maxPromptLength (256 tokens) and will be skipped."
        in messages
    )
    for row in rows:
        row["messages"][-1]["content"] += " please" * 300
    (tmp_path / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    starter["train_dataset"] = register_dataset_file(alice, "all-long", tmp_path / "all.jsonl")
    assert (
        "every prompt is longer than maxPromptLength (256"
        in errors_for(alice, starter, maxPromptLength=256)["train_dataset"]
    )
