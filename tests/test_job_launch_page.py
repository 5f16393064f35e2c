"""The job page's Launch card: how the worker started the job (processes, strategy, device,
precision, generation, command, the accelerate config), shown once there is a launch record."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from jobs.models import Job
from jobs.training.distributed import launch_record
from jobs.training.hyperparameters import Hyperparameters
from tests.support.job_rows import make_job

COMMAND = ["torchrun", "--nproc_per_node", "2", "-m", "jobs.training.worker", "--job", "<7>"]


@pytest.fixture(autouse=True)
def in_memory_layer(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def launched(alice: User) -> Job:
    hp = Hyperparameters.from_bedrock({"numProcesses": 2, "distributed": "fsdp"}, "gpu")
    record = launch_record(hp, 2, cuda=True, bf16=True, vllm=True, command=COMMAND)
    return make_job(alice, "sharded", status=Job.Status.TRAINING, launch=record)


def test_the_job_page_shows_how_the_job_was_launched(alice_client: Client, launched: Job) -> None:
    html = alice_client.get(f"/jobs/{launched.pk}/").content.decode()
    assert '<h2 id="launch-title">Launch</h2>' in html
    assert "<dd>2 · fsdp</dd>" in html
    assert "cuda <span" in html and "(nccl between processes)" in html
    assert "bf16 · gradient checkpointing" in html
    assert "<dd>vLLM (colocate mode)</dd>" in html
    # escaped like everything else on the page ("<7>" quoted by shlex, then by the template)
    assert "--job &#x27;&lt;7&gt;&#x27;</code>" in html
    assert "accelerate launch --config_file" in html
    assert "distributed_type: FSDP" in html and "fsdp_version: 2" in html


def test_a_job_without_a_launch_record_has_no_launch_card(
    alice: User, alice_client: Client
) -> None:
    queued = make_job(alice, "waiting")
    html = alice_client.get(f"/jobs/{queued.pk}/").content.decode()
    assert 'id="launch-title"' not in html
    assert 'id="config-title"' in html  # the rest of the page is there


def test_bob_cannot_see_alices_launched_job(bob_client: Client, launched: Job) -> None:
    assert bob_client.get(f"/jobs/{launched.pk}/").status_code == 404
