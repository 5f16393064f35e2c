"""Engine rules checked without training: double delivery, budget guard, reward-error threshold."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerControl

from jobs.actions import claim, create_job
from jobs.models import Dataset, Job, MetricPoint, ModelEntry
from jobs.registry.export import export_merged
from jobs.registry.loading import load_for_inference
from jobs.registry.services import register_model
from jobs.training.callback import JobCallback, RewardErrorsExceeded
from jobs.training.data import prepare, prompt_length, split_rows
from jobs.training.hyperparameters import Hyperparameters
from jobs.training.reward_bridge import RewardBridge
from rewards.models import RewardFunction
from tests.support.tiny_models import save_tiny_model


@pytest.fixture
def job(alice: User, starter_artifacts: Path) -> Job:
    call_command("bootstrap_starter", "--no-progress", "--user", "alice", stdout=io.StringIO())
    return create_job(
        alice,
        "job",
        ModelEntry.objects.get(owner=alice, name="starter"),
        Dataset.objects.get(owner=alice, name="arithmetic-train"),
        RewardFunction.objects.get(owner=alice, name="arithmetic").latest_version(),
        Dataset.objects.get(owner=alice, name="arithmetic-validation"),
        given={"maxWallClockMinutes": 1, "evalInterval": 50},
        profile="cpu",
        launch=False,
    )


def callback_for(job: Job, previous_seconds: float = 0.0) -> JobCallback:
    bridge = RewardBridge(job.reward_version, samples_per_prompt=8)
    return JobCallback(
        job, bridge, evaluate=lambda model, step: {}, previous_seconds=previous_seconds
    )


def test_a_second_delivery_of_the_same_job_does_nothing(job: Job) -> None:
    assert claim(job.pk, "gpu@a") is not None
    assert claim(job.pk, "gpu@b") is None
    job.refresh_from_db()
    assert (job.worker, job.attempts, job.status) == ("gpu@a", 1, Job.Status.VALIDATING)


def test_the_wall_clock_budget_pauses_at_a_step_boundary_with_the_reason(job: Job) -> None:
    callback = callback_for(job, previous_seconds=61)
    state = SimpleNamespace(global_step=7, max_steps=100, epoch=0.1)

    control = callback.on_step_end(None, state, TrainerControl(), model=None)  # type: ignore[arg-type]

    assert control.should_training_stop and control.should_save
    job.refresh_from_db()
    assert job.requested == Job.Request.PAUSE
    assert callback.pause_reason.startswith(
        "Paused: reached maxWallClockMinutes (1 min) at step 7."
    )


def test_a_step_where_most_rewards_failed_fails_the_job_with_the_count(job: Job) -> None:
    callback = callback_for(job)
    callback.bridge.current.samples, callback.bridge.current.errors = 8, 6
    state = SimpleNamespace(global_step=3, epoch=0.1)

    with pytest.raises(RewardErrorsExceeded, match="6 of 8 rewards failed at step 3"):
        callback.on_log(None, state, TrainerControl(), logs={"reward": 0.1})  # type: ignore[arg-type]


def log_step(callback: JobCallback, step: int) -> None:
    """A logged step in which all 8 rewards were scored."""
    callback.bridge.current.samples = 8
    state = SimpleNamespace(global_step=step, epoch=step / 10)
    callback.on_log(None, state, TrainerControl(), logs={"reward": 0.5})  # type: ignore[arg-type]


def test_a_step_on_cuda_records_rank_0s_peak_gpu_memory_and_a_cpu_step_none(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    callback = callback_for(job)
    log_step(callback, 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the GPU: the outside edge
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 1.5 * 1024**3)
    log_step(callback, 2)

    points = {p.step: p.values for p in MetricPoint.objects.filter(job=job, kind="train")}
    assert "gpu_memory_peak_gib" not in points[1]  # CPU: nothing to record
    assert points[2]["gpu_memory_peak_gib"] == 1.5


def test_a_tuned_adapter_downloads_and_merges_into_equivalent_full_weights(
    alice: User, alice_client: Client, bob_client: Client, tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model

    base_dir = save_tiny_model(tmp_path / "base")
    base = register_model(alice, str(base_dir), "tiny")
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False),
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    tuned = register_model(alice, str(tmp_path / "adapter"), "tiny-tuned")

    download = alice_client.get(f"/models/{tuned.pk}/download/")
    assert download.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).namelist()
    assert "tiny-tuned/adapter_config.json" in names
    assert bob_client.get(f"/models/{tuned.pk}/download/").status_code == 404

    merged = export_merged(tuned)
    assert (merged.name, merged.base, merged.is_adapter) == ("tiny-tuned-merged", base, False)
    ids = torch.tensor([[5, 6, 7, 8]])
    adapter_model, _ = load_for_inference(tuned)
    merged_model, _ = load_for_inference(merged)
    with torch.no_grad():
        assert torch.allclose(adapter_model(ids).logits, merged_model(ids).logits, atol=1e-4)


def test_the_final_model_choice_is_checked(job: Job) -> None:
    from jobs.training.hyperparameters import resolve

    assert resolve({"finalModel": "newest"}, "cpu")[1] == {"finalModel": "must be best or last"}
    assert resolve({"finalModel": "last"}, "cpu")[0]["finalModel"] == "last"


def test_training_skips_prompts_longer_than_max_prompt_length_and_keeps_the_rest(
    job: Job,
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(job.base_model.path)
    hp = Hyperparameters.of_snapshot(job.config)
    train, _ = split_rows(job, hp)
    lengths = sorted(prompt_length(tokenizer, row) for row in train)
    assert lengths[0] > 2  # a real token count, not the keys of a BatchEncoding
    middle = lengths[len(lengths) // 2]
    short = prepare(job, tokenizer, replace(hp, max_prompt_length=middle))
    assert short.skipped_long == sum(1 for n in lengths if n > middle) > 0
    assert len(short.train) == len(train) - short.skipped_long
    roomy = prepare(job, tokenizer, replace(hp, max_prompt_length=lengths[-1]))  # the control
    assert roomy.skipped_long == 0 and len(roomy.train) == len(train)
