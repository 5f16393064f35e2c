"""The model registry: local directories, hub ids, adapters; facts read without loading weights."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from transformers import AutoModelForCausalLM

from jobs.models import ModelEntry
from jobs.registry.services import RegistryError, register_model
from jobs.tasks import fetch_model
from tests.support.tiny_models import save_tiny_model


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


def test_it_reads_the_facts_of_a_local_model_directory(alice: User, tiny_llama: Path) -> None:
    entry = register_model(alice, str(tiny_llama), "tiny")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert entry.status == ModelEntry.Status.READY and entry.kind == ModelEntry.Kind.BASE
    assert (entry.architecture, entry.model_type) == ("LlamaForCausalLM", "llama")
    assert entry.parameter_count == model.num_parameters()
    assert entry.context_length == 256
    assert entry.has_chat_template
    on_disk = sum(f.stat().st_size for f in tiny_llama.iterdir())
    assert entry.size_bytes == on_disk


def test_it_refuses_a_directory_that_is_not_a_model(alice: User, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="has no config.json: it is not a Hugging Face model"):
        register_model(alice, str(tmp_path), "empty")
    assert not ModelEntry.objects.exists()


def test_it_refuses_a_source_that_is_neither_path_nor_hub_id(alice: User) -> None:
    with pytest.raises(RegistryError, match="neither an existing directory nor a hub id"):
        register_model(alice, "/no/such/dir", "x")


def test_an_unreachable_hub_gives_a_clear_error_not_a_traceback(admin: User) -> None:
    with pytest.raises(CommandError) as raised:
        call_command("register_model", "rft-console-tests/no-such-model", "--name", "x")
    message = str(raised.value)
    assert (
        "Could not download 'rft-console-tests/no-such-model' from the Hugging Face Hub" in message
    )
    assert "register its local directory instead" in message


def test_a_hub_id_already_in_the_local_cache_registers_offline(
    alice: User, tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / "abc123"
    shutil.copytree(tiny_llama, snapshot)
    (tmp_path / "hub" / "models--acme--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))

    entry = register_model(alice, "acme/tiny", "acme-tiny")

    assert entry.path == str(snapshot)
    assert entry.architecture == "LlamaForCausalLM"


def test_a_peft_adapter_registers_as_tuned_on_its_base(
    alice: User, tiny_llama: Path, tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model

    base = register_model(alice, str(tiny_llama), "tiny")
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"]),
    )
    model.save_pretrained(tmp_path / "adapter")

    tuned = register_model(alice, str(tmp_path / "adapter"), "tiny-tuned")

    assert (tuned.kind, tuned.base, tuned.is_adapter) == (ModelEntry.Kind.TUNED, base, True)
    assert tuned.architecture == "PEFT LORA"
    assert tuned.parameter_count == model.get_nb_trainable_parameters()[0]


def test_an_adapter_whose_base_is_unknown_is_refused(
    alice: User, tiny_llama: Path, tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama), LoraConfig(r=4, target_modules=["q_proj"])
    )
    model.save_pretrained(tmp_path / "adapter")
    with pytest.raises(RegistryError, match="register that base model first"):
        register_model(alice, str(tmp_path / "adapter"), "orphan")


def test_the_command_registers_for_the_first_admin_and_prints_the_facts(
    admin: User, tiny_llama: Path
) -> None:
    out = io.StringIO()
    call_command("register_model", str(tiny_llama), "--name", "tiny", stdout=out)
    assert "Registered 'tiny': LlamaForCausalLM" in out.getvalue()
    assert ModelEntry.objects.get(name="tiny").owner == admin


def test_a_name_is_unique_per_owner(alice: User, bob: User, tiny_llama: Path) -> None:
    register_model(alice, str(tiny_llama), "tiny")
    register_model(bob, str(tiny_llama), "tiny")  # bob may use the same name
    with pytest.raises(RegistryError, match="already have a model named 'tiny'"):
        register_model(alice, str(tiny_llama), "tiny")


def test_an_admin_registers_a_server_directory_in_the_ui(
    admin: User, client: Client, tiny_llama: Path
) -> None:
    client.force_login(admin)
    response = client.post(
        "/models/register/", {"source": str(tiny_llama), "name": "tiny"}, follow=True
    )
    html = response.content.decode()
    assert "LlamaForCausalLM" in html and "ready" in html
    assert "tiny" in client.get("/models/").content.decode()


def test_other_users_may_not_register_server_directories(
    alice_client: Client, tiny_llama: Path
) -> None:
    response = alice_client.post("/models/register/", {"source": str(tiny_llama), "name": "tiny"})
    assert "Only administrators can register a directory on the server" in response.content.decode()
    assert not ModelEntry.objects.exists()


def test_a_hub_id_is_fetched_by_a_worker_task(
    alice_client: Client,
    django_capture_on_commit_callbacks,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(
        "rftconsole.queue.app.send_task",
        lambda name, args, queue: sent.append((name, *args, queue)),
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(
            "/models/register/", {"source": "rft-console-tests/nothing", "name": "remote"}
        )
    entry = ModelEntry.objects.get(name="remote")
    assert response.status_code == 302 and sent == [("jobs.fetch_model", entry.pk, "default")]
    assert entry.status == ModelEntry.Status.REGISTERING

    fetch_model(entry.pk)  # what the worker runs: offline here, so it fails with the reason
    entry.refresh_from_db()
    assert entry.status == ModelEntry.Status.FAILED
    assert "Could not download 'rft-console-tests/nothing'" in entry.status_reason
    assert "Could not download" in alice_client.get(f"/models/{entry.pk}/").content.decode()


def test_the_api_lists_and_registers_models(alice_client: Client) -> None:
    response = alice_client.post(
        "/api/models/", {"source": "/etc", "name": "etc"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "Only administrators" in response.json()["source"][0]
    assert alice_client.get("/api/models/").json()["results"] == []


def test_alice_cannot_see_bobs_models(alice_client: Client, bob: User, tiny_llama: Path) -> None:
    bobs = register_model(bob, str(tiny_llama), "bobs-model")
    assert "bobs-model" not in alice_client.get("/models/").content.decode()
    assert alice_client.get(f"/models/{bobs.pk}/").status_code == 404
    assert alice_client.get(f"/api/models/{bobs.pk}/").status_code == 404
    assert alice_client.get("/api/models/").json()["results"] == []


def test_a_model_can_be_removed_unless_a_tuned_model_is_built_on_it(
    alice_client: Client, alice: User, tiny_llama: Path, tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model

    base = register_model(alice, str(tiny_llama), "tiny")
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama), LoraConfig(r=2, target_modules=["q_proj"])
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    tuned = register_model(alice, str(tmp_path / "adapter"), "tiny-tuned")

    refused = alice_client.post(f"/models/{base.pk}/remove/", follow=True)
    assert "is the base of &#x27;tiny-tuned&#x27;: remove those first" in refused.content.decode()
    assert alice_client.delete(f"/api/models/{base.pk}/").status_code == 400

    assert alice_client.delete(f"/api/models/{tuned.pk}/").status_code == 204
    removed = alice_client.post(f"/models/{base.pk}/remove/", follow=True)
    assert "Removed “tiny” from the registry." in removed.content.decode()
    assert not ModelEntry.objects.exists()
    assert (tiny_llama / "config.json").exists()  # files are never deleted


def test_alice_cannot_remove_bobs_model(alice_client: Client, bob: User, tiny_llama: Path) -> None:
    bobs = register_model(bob, str(tiny_llama), "bobs-model")
    assert alice_client.post(f"/models/{bobs.pk}/remove/").status_code == 404
    assert alice_client.delete(f"/api/models/{bobs.pk}/").status_code == 404
    assert ModelEntry.objects.filter(pk=bobs.pk).exists()
