"""Deployments: one click from a model's page, plain reasons when loading fails, a bounded pool
that shares base weights between adapters, and privacy between users."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from django.utils.html import escape
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from jobs.models import ModelEntry
from jobs.registry.services import register_model
from playground.deployments import DeploymentError, deploy
from playground.inference.generate import run_choices
from playground.inference.pool import UNKNOWN_CONTEXT, InferencePool, Served, get_pool
from playground.inference.streaming import chat_prompt_ids
from playground.inference.types import Delta, Finish, Sampling, StopScanner
from playground.models import Deployment
from playground.tasks import fail_stuck_deployments
from rftconsole.models import AuditEvent
from tests.support.processes import wait_until
from tests.support.tiny_models import save_tiny_model

PROMPT = [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return [save_tiny_model(root / f"tiny{n}") for n in range(3)]


def save_adapter(base_dir: Path, directory: Path, seed: int) -> Path:
    """A LoRA adapter with random (not zero) weights, so it changes the base's answers."""
    base = AutoModelForCausalLM.from_pretrained(str(base_dir))
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(seed)
    get_peft_model(base, config).save_pretrained(directory)
    return directory


def logits(served: Served) -> torch.Tensor:
    """The next-token logits for PROMPT, as this deployment's generation would see them."""
    ids = torch.tensor([chat_prompt_ids(served.tokenizer, PROMPT)])
    weights = served.weights
    with torch.inference_mode(), weights.lock, weights.activated(served.adapter) as model:
        return model(input_ids=ids).logits[0, -1]


def answer(served: Served) -> tuple[str, int]:
    events: list[Delta | Finish] = []
    ids = chat_prompt_ids(served.tokenizer, PROMPT)
    run_choices(
        served, ids, Sampling(temperature=0, max_tokens=5), events.append, threading.Event()
    )
    finish = events[-1]
    assert isinstance(finish, Finish)
    return "".join(e.text for e in events if isinstance(e, Delta)), finish.completion_tokens


@pytest.mark.django_db(transaction=True)
def test_deploy_from_a_ready_models_page_makes_an_active_deployment(
    alice: User, alice_client: Client, tiny_dirs: list[Path]
) -> None:
    entry = register_model(alice, str(tiny_dirs[0]), "tiny model")
    page = alice_client.get(f"/models/{entry.pk}/").content.decode()
    assert f'action="/deployments/deploy/{entry.pk}/"' in page and ">Deploy</button>" in page
    response = alice_client.post(f"/deployments/deploy/{entry.pk}/", follow=True)
    assert "Deploying “tiny model” as “tiny-model”" in response.content.decode()
    deployment = Deployment.objects.get(owner=alice)
    assert deployment.name == "tiny-model" and deployment.log_requests
    wait_until(
        lambda: Deployment.objects.get(pk=deployment.pk).status == "active", 60, "deployment"
    )
    listing = alice_client.get("/deployments/").content.decode()
    assert "<code>tiny-model</code>" in listing and 'badge ok">active' in listing
    assert alice_client.get("/playground/").status_code == 200
    again = deploy(alice, entry, background=False)
    assert again.name == "tiny-model-2" and again.status == "active"
    with pytest.raises(DeploymentError, match="already have a deployment named 'tiny-model'"):
        deploy(alice, entry, "tiny-model")


@pytest.mark.django_db(transaction=True)
def test_a_model_whose_files_are_gone_fails_with_a_plain_reason(
    alice: User, alice_client: Client, tmp_path: Path
) -> None:
    entry = register_model(alice, str(save_tiny_model(tmp_path / "doomed")), "doomed")
    shutil.rmtree(tmp_path / "doomed")
    alice_client.post(f"/deployments/deploy/{entry.pk}/", {"no_logs": "on"})
    deployment = Deployment.objects.get(owner=alice)
    assert not deployment.log_requests
    wait_until(lambda: Deployment.objects.get(pk=deployment.pk).status == "failed", 60, "failure")
    deployment.refresh_from_db()
    assert deployment.status_reason.startswith("The files of model 'doomed' are gone:")
    assert escape(deployment.status_reason) in alice_client.get("/deployments/").content.decode()


@pytest.mark.django_db
def test_only_a_ready_model_can_be_deployed(alice: User) -> None:
    entry = ModelEntry.objects.create(owner=alice, name="pending", source="org/pending")
    with pytest.raises(DeploymentError, match="'pending' is registering"):
        deploy(alice, entry)
    entry.status = ModelEntry.Status.READY
    with pytest.raises(DeploymentError, match="not a valid deployment name"):
        deploy(alice, entry, "has spaces")


@pytest.mark.django_db
def test_the_pool_keeps_at_most_n_sets_of_weights_least_recently_used_out_first(
    alice: User, tiny_dirs: list[Path]
) -> None:
    a, b, c = (register_model(alice, str(d), f"m{n}") for n, d in enumerate(tiny_dirs))
    pool = InferencePool(max_models=2)
    first = pool.get(a).weights
    pool.get(b)
    assert pool.get(a).weights is first  # still loaded: no second copy
    pool.get(c)
    assert pool.loaded() == [str(tiny_dirs[0].resolve()), str(tiny_dirs[2].resolve())]
    assert pool.get(b).weights is not None and len(pool.loaded()) == 2


@pytest.mark.django_db
def test_adapter_deployments_reuse_their_loaded_base(
    alice: User, tiny_dirs: list[Path], tmp_path: Path
) -> None:
    base = register_model(alice, str(tiny_dirs[1]), "base")
    tuned = register_model(alice, str(save_adapter(tiny_dirs[1], tmp_path / "a1", 1)), "tuned")
    other = register_model(alice, str(save_adapter(tiny_dirs[1], tmp_path / "a2", 2)), "other")
    assert tuned.is_adapter and tuned.base == base
    for entry in (base, tuned, other):
        assert deploy(alice, entry, background=False).status == "active"
    pool = get_pool()
    plain, with_tuned, with_other = pool.get(base), pool.get(tuned), pool.get(other)
    assert with_tuned.weights is plain.weights and with_other.weights is plain.weights
    assert with_tuned.weights.model is plain.weights.model  # one copy of the base weights
    assert {with_tuned.adapter, with_other.adapter} == set(plain.weights.adapters.values())
    base_logits = logits(plain)
    assert not torch.allclose(logits(with_tuned), base_logits)
    assert not torch.allclose(logits(with_other), logits(with_tuned))
    assert torch.equal(logits(plain), base_logits)  # the base still answers without adapters
    assert answer(with_tuned)[1] > 0 and answer(plain)[1] > 0


@pytest.mark.django_db(transaction=True)
def test_bob_can_neither_see_nor_change_alices_deployments(
    alice: User, alice_client: Client, bob_client: Client, tiny_dirs: list[Path]
) -> None:
    entry = register_model(alice, str(tiny_dirs[0]), "private")
    deployment = deploy(alice, entry, background=False)
    assert "private" not in bob_client.get("/deployments/").content.decode()
    assert bob_client.post(f"/deployments/{deployment.pk}/delete/").status_code == 404
    assert bob_client.post(f"/deployments/{deployment.pk}/logging/").status_code == 404
    assert bob_client.post(f"/deployments/deploy/{entry.pk}/").status_code == 404
    assert Deployment.objects.get(pk=deployment.pk).status == "active"
    alice_client.post(f"/deployments/{deployment.pk}/logging/")
    assert not Deployment.objects.get(pk=deployment.pk).log_requests
    response = alice_client.post(f"/deployments/{deployment.pk}/delete/", follow=True)
    assert "Deleted deployment “private”" in response.content.decode()
    assert Deployment.objects.get(pk=deployment.pk).status == "deleted"
    actions = AuditEvent.objects.filter(actor=alice).values_list("action", flat=True)
    assert {"deployment.create", "deployment.delete"} <= set(actions)
    assert "<code>private</code>" not in alice_client.get("/deployments/").content.decode()
    assert deploy(alice, entry, "private", background=False).status == "active"  # name reusable


def test_stop_sequences_are_cut_even_when_split_across_tokens() -> None:
    scanner = StopScanner(("###", "END"))
    pieces = [scanner.feed(t) for t in ("The answer", " is 4#", "#", "# and more")]
    assert pieces == ["The answer", " is 4", "", ""] and scanner.stopped
    held = StopScanner(("END",))
    assert [held.feed("an E"), held.feed("xit"), held.flush()] == ["an ", "Exit", ""]


@pytest.mark.django_db
def test_a_deployment_stuck_loading_past_the_deadline_fails_with_that_reason(
    alice: User, tmp_path: Path
) -> None:
    # its loading thread died with its web process: nothing will ever mark it Active or Failed
    entry = register_model(alice, str(save_tiny_model(tmp_path / "tiny")), "tiny")
    stuck, fresh, served = (
        Deployment.objects.create(owner=alice, name=name, model=entry, status=status)
        for name, status in (("stuck", "creating"), ("fresh", "creating"), ("served", "active"))
    )
    long_ago = timezone.now() - timedelta(seconds=settings.RFT_DEPLOYMENT_LOAD_DEADLINE + 1)
    Deployment.objects.filter(pk__in=[stuck.pk, served.pk]).update(created_at=long_ago)

    assert fail_stuck_deployments() == 1

    statuses = dict(Deployment.objects.values_list("name", "status"))
    assert statuses == {"stuck": "failed", "fresh": "creating", "served": "active"}  # controls
    assert Deployment.objects.get(pk=stuck.pk).status_reason == (
        f"Loading did not finish in {settings.RFT_DEPLOYMENT_LOAD_DEADLINE} s (the web process "
        "restarted?): deploy the model again."
    )


@pytest.mark.django_db
def test_a_model_whose_config_names_no_context_length_is_still_held_to_one(
    alice: User, tmp_path: Path
) -> None:
    directory = save_tiny_model(tmp_path / "no-context")
    config = json.loads((directory / "config.json").read_text())
    del config["max_position_embeddings"]  # transformers falls back to its default on load
    (directory / "config.json").write_text(json.dumps(config))
    unknown = register_model(alice, str(directory), "no-context")
    known = register_model(alice, str(save_tiny_model(tmp_path / "known")), "known")
    assert unknown.context_length is None and known.context_length == 256
    pool = get_pool()
    assert pool.get(unknown).context_length == UNKNOWN_CONTEXT  # the endpoint's cap on a prompt
    assert pool.get(known).context_length == 256  # control: the config's own figure
