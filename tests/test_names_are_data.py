"""Names are data, never paths: a job named `a/../../../../../tmp/x` keeps that name as a label,
and everything the console writes for it stays inside the data directory (rftconsole/paths.py).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import Client
from transformers import AutoModelForCausalLM

from jobs.datasets.importer import import_lines
from jobs.models import Dataset, Job, ModelEntry
from jobs.registry.services import RegistryError, register_model, register_produced
from jobs.starter.tasks import make_rows
from jobs.tasks import fetch_model, merge_model
from jobs.training.output import publish_output
from rewards.models import RewardFunction
from rewards.services import create_reward
from rftconsole.paths import (
    UnsafePath,
    data_dir,
    download_filename,
    inside,
    models_dir,
    safe_child,
    slug,
)
from tests.support.tiny_models import save_tiny_model, tiny_tokenizer

HYPERPARAMETERS = {"maxPromptLength": 128, "inferenceMaxTokens": 16, "maxSteps": 1}


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("names") / "tiny-base")


@pytest.fixture
def world(alice: User, tiny_base: Path) -> dict[str, Any]:
    """What a job needs, cheaply: a tiny base model, small datasets, a built-in reward."""
    rows = [json.dumps(row).encode() + b"\n" for row in make_rows("arithmetic", 40, 0)]
    train, _ = import_lines(alice, "arith-train", rows[:30])
    validation, _ = import_lines(alice, "arith-validation", rows[30:])
    grader = {"grader": "final_answer_match"}
    create_reward(alice, "arithmetic", RewardFunction.Kind.BUILTIN, config=grader)
    return {
        "base": register_model(alice, str(tiny_base), "tiny"),
        "train": train,
        "validation": validation,
        "reward": RewardFunction.objects.get(owner=alice, name="arithmetic"),
    }


def job_via_api(client: Client, world: dict[str, Any], name: str) -> Job:
    body = {
        "name": name,
        "base_model": "tiny",
        "train_dataset": "arith-train",
        "validation_dataset": "arith-validation",
        "reward": "arithmetic",
        "hyperparameters": HYPERPARAMETERS,
    }
    created = client.post("/api/jobs/", body, content_type="application/json")
    assert created.status_code == 201, created.json()
    assert created.json()["name"] == name
    return Job.objects.get(pk=created.json()["id"])


def job_via_wizard(client: Client, world: dict[str, Any], name: str) -> Job:
    base = client.post("/jobs/new/").url.removesuffix("basics/")
    answers = {
        "basics": {"name": name, "base_model": world["base"].pk},
        "data": {
            "train_dataset": world["train"].pk,
            "validation_mode": "dataset",
            "validation_dataset": world["validation"].pk,
        },
        "reward": {"reward": world["reward"].pk},
        "hyperparameters": {key: str(value) for key, value in HYPERPARAMETERS.items()},
        "security": {},
        "review": {},
    }
    for step, values in answers.items():
        response = client.post(base + f"{step}/", values)
        assert response.status_code == 302, response.content.decode()[:2000]
    return Job.objects.get(name=name)


def trained_output(job: Job) -> ModelEntry:
    """Training's real publishing step, given the LoRA adapter a run would end with."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(job.base_model.path),
        LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False),
    )
    trainer = SimpleNamespace(
        model=model, processing_class=tiny_tokenizer(), state=SimpleNamespace(global_step=1)
    )
    entry, _ = publish_output(job, trainer)  # type: ignore[arg-type]
    return entry


def traces_outside_data_dir(token: str) -> list[Path]:
    """Anything named with `token` in the usual temporary folders, the data dir excepted."""
    data = data_dir()
    found = []
    for top in {Path("/tmp"), Path(tempfile.gettempdir()), data.parent}:
        for folder, subfolders, files in os.walk(top):
            depth = len(Path(folder).relative_to(top).parts)
            subfolders[:] = [] if depth >= 2 else subfolders
            for name in subfolders + files:
                path = Path(folder, name)
                if token in name and not path.is_relative_to(data):
                    found.append(path)
    return found


def zip_names(response: HttpResponse) -> list[str]:
    assert response.status_code == 200
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    return zipfile.ZipFile(io.BytesIO(body)).namelist()


def assert_plain_entries(names: list[str], folder: str) -> None:
    assert names
    for name in names:
        path = PurePosixPath(name)
        assert not path.is_absolute() and ".." not in path.parts and "\\" not in name, name
        assert path.parts[0] == folder, name


@pytest.mark.parametrize("make_job", [job_via_api, job_via_wizard], ids=["api", "wizard"])
def test_a_job_named_like_a_path_exports_inside_the_data_dir(
    alice_client: Client, world: dict[str, Any], make_job: Callable[..., Job]
) -> None:
    token = f"rft-names-{uuid.uuid4().hex[:12]}"
    name = f"a/../../../../../tmp/{token}"
    job = make_job(alice_client, world, name)
    assert job.name == name  # a name, kept verbatim: never refused, never cleaned

    tuned = trained_output(job)
    assert tuned.name == f"{name}-tuned" and inside(Path(tuned.path), models_dir())
    # What the old code built from the name: DATA_DIR/models/<pk>-merged-<name>-merged.
    naive = Path(os.path.normpath(f"{models_dir()}/{tuned.pk}-merged-{tuned.name}-merged"))
    assert merge_model(tuned.pk) == f"{name}-tuned-merged"  # the worker's task, run here

    merged = ModelEntry.objects.get(owner=job.owner, name=f"{name}-tuned-merged")
    assert not Path(f"/tmp/{token}-tuned-merged").exists() and not naive.exists()
    assert traces_outside_data_dir(token) == []
    assert inside(Path(merged.path), models_dir()) and Path(merged.path).parent == models_dir()
    assert (Path(merged.path) / "model.safetensors").is_file()
    for entry in (tuned, merged):
        download = alice_client.get(f"/models/{entry.pk}/download/")
        assert "/" not in download["Content-Disposition"].split("filename", 1)[1]
        assert_plain_entries(zip_names(download), slug(entry.name))
    assert f"{slug(merged.name)}/config.json" in zip_names(
        alice_client.get(f"/models/{merged.pk}/download/")
    )


def test_a_normally_named_job_exports_and_zips_the_expected_files(
    alice_client: Client, world: dict[str, Any]
) -> None:
    job = job_via_api(alice_client, world, "arith")
    tuned = trained_output(job)
    assert Path(tuned.path) == models_dir() / f"job-{job.pk}"
    merge_model(tuned.pk)
    merged = ModelEntry.objects.get(name="arith-tuned-merged")
    assert Path(merged.path) == models_dir() / f"{tuned.pk}-merged-arith-tuned"
    names = zip_names(alice_client.get(f"/models/{merged.pk}/download/"))
    assert {"arith-tuned-merged/config.json", "arith-tuned-merged/model.safetensors"} <= set(names)
    assert "arith-tuned/adapter_config.json" in zip_names(
        alice_client.get(f"/models/{tuned.pk}/download/")
    )


def test_merging_twice_never_shares_a_directory(alice: User, tiny_base: Path) -> None:
    from peft import LoraConfig, get_peft_model

    register_model(alice, str(tiny_base), "tiny")
    adapter = safe_child(models_dir(), f"adapter-{uuid.uuid4().hex}")
    get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_base),
        LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False),
    ).save_pretrained(adapter)
    tiny_tokenizer().save_pretrained(adapter)
    tuned = register_produced(alice, "x/..", adapter, None, "test", "")
    tuned.base = ModelEntry.objects.get(owner=alice, name="tiny")
    tuned.save()
    first, second = (ModelEntry.objects.get(name=merge_model(tuned.pk)) for _ in range(2))
    assert (first.name, second.name) == ("x/..-merged", "x/..-merged-2")
    assert first.path != second.path and Path(second.path).name.endswith("-2")


def test_the_zip_skips_symlinks_out_of_the_model_but_keeps_those_inside(
    alice: User, alice_client: Client, tiny_base: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "more.txt").write_text("not yours either")
    model = safe_child(models_dir(), f"links-{uuid.uuid4().hex}")
    shutil.copytree(tiny_base, model)
    (model / "stolen.txt").symlink_to(secret)
    (model / "stolen-dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    (model / "alias.json").symlink_to(model / "config.json")  # inside: kept
    entry = register_produced(alice, "links", model, None, "test", "")

    names = set(zip_names(alice_client.get(f"/models/{entry.pk}/download/")))
    assert {"links/config.json", "links/alias.json", "links/model.safetensors"} <= names
    assert not any("stolen" in name or "more.txt" in name for name in names)


def test_the_console_refuses_to_register_its_own_output_outside_the_models_dir(
    alice: User, tiny_base: Path, tmp_path: Path
) -> None:
    outside = shutil.copytree(tiny_base, tmp_path / "x-tuned-merged")
    with pytest.raises(RegistryError, match="outside"):
        register_produced(alice, "escaped", outside, None, "merged:1", "")
    with pytest.raises(RegistryError, match="outside"):
        register_produced(alice, "climbs", models_dir() / ".." / ".." / "x", None, "job:1", "")
    assert not ModelEntry.objects.exists()
    inside_copy = shutil.copytree(tiny_base, models_dir() / f"ok-{uuid.uuid4().hex}")
    assert register_produced(alice, "ok", inside_copy, None, "job:1", "").status == "ready"


def test_a_worker_fetches_hub_ids_only_never_a_directory_of_the_same_name(
    alice: User,
    tiny_base: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = tmp_path / "hub" / "models--acme--tiny"
    shutil.copytree(tiny_base, hub / "snapshots" / "abc123")
    (hub / "refs").mkdir()
    (hub / "refs" / "main").write_text("abc123")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    shutil.copytree(tiny_base, tmp_path / "work" / "acme" / "tiny")  # same shape as the hub id
    monkeypatch.chdir(tmp_path / "work")

    fetched = ModelEntry.objects.create(owner=alice, name="acme", source="acme/tiny")
    climbing = ModelEntry.objects.create(owner=alice, name="up", source="acme/..")
    local = ModelEntry.objects.create(owner=alice, name="local", source=str(tiny_base))
    for entry in (fetched, climbing, local):
        fetch_model(entry.pk)
        entry.refresh_from_db()
    assert (fetched.status, fetched.path) == ("ready", str(hub / "snapshots" / "abc123"))
    for refused in (climbing, local):
        assert (refused.status, refused.path) == ("failed", ""), refused.status_reason
        assert "is not a hub id" in refused.status_reason


def test_ordinary_users_cannot_pass_a_climbing_hub_id(alice_client: Client) -> None:
    refused = alice_client.post("/models/register/", {"source": "acme/..", "name": "x"})
    assert "Only administrators can register a directory" in refused.content.decode()
    assert not ModelEntry.objects.exists()
    alice_client.post("/models/register/", {"source": "acme/tiny", "name": "ok"})
    assert ModelEntry.objects.get(name="ok").status == "registering"


def test_a_download_filename_made_from_a_name_holds_no_quotes_newlines_or_slashes(
    alice: User, alice_client: Client
) -> None:
    row = b'{"messages": [{"role": "user", "content": "hi"}], "reference_answer": "1"}\n'
    hostile, _ = import_lines(alice, 'evil"\r\nX-Injected: 1/../x', [row])
    normal, _ = import_lines(alice, "arith v2 données", [row])
    header = alice_client.get(f"/datasets/{hostile.pk}/download/")["Content-Disposition"]
    assert header == 'attachment; filename="evil-X-Injected- 1-x.jsonl"'
    header = alice_client.get(f"/datasets/{normal.pk}/download/")["Content-Disposition"]
    assert header == "attachment; filename*=utf-8''arith%20v2%20donn%C3%A9es.jsonl"
    assert Dataset.objects.get(pk=hostile.pk).name == 'evil"\r\nX-Injected: 1/../x'


# The helper itself.


def test_safe_child_accepts_plain_parts_inside_the_base(tmp_path: Path) -> None:
    assert safe_child(tmp_path, "job-5", "checkpoints") == tmp_path.resolve() / "job-5/checkpoints"
    assert safe_child(tmp_path, ".incoming-ab12.jsonl").name == ".incoming-ab12.jsonl"


@pytest.mark.parametrize(
    "part",
    ["..", ".", "", "a/../b", "/etc/passwd", "a\x00b", "données", "x" * 129, "a\\b", "a b"],
    ids=[
        "dotdot",
        "dot",
        "empty",
        "slash",
        "absolute",
        "nul",
        "unicode",
        "long",
        "backslash",
        "space",
    ],
)
def test_safe_child_refuses_anything_but_a_plain_name(tmp_path: Path, part: str) -> None:
    with pytest.raises(UnsafePath):
        safe_child(tmp_path, part)


def test_safe_child_refuses_a_symlink_that_leads_out(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "base" / "link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "base" / "inner").symlink_to(tmp_path / "base")
    with pytest.raises(UnsafePath, match="leaves"):
        safe_child(tmp_path / "base", "link", "x")
    with pytest.raises(UnsafePath, match="leaves"):
        safe_child(tmp_path / "base", "inner")  # the base itself is no child
    assert safe_child(tmp_path / "base", "plain") == (tmp_path / "base" / "plain").resolve()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a/../../../../../tmp/x-tuned-merged", "a-tmp-x-tuned-merged"),
        ("données", "donnees"),
        ("..", "item"),
        ("", "item"),
        ("/", "item"),
        ("a\x00b", "a-b"),
        ("模型", "item"),
        ("x" * 500, "x" * 60),
    ],
)
def test_slug_turns_any_name_into_a_safe_part(tmp_path: Path, name: str, expected: str) -> None:
    assert slug(name) == expected
    assert safe_child(tmp_path, slug(name)).parent == tmp_path.resolve()


def test_download_filenames_keep_letters_and_drop_the_rest() -> None:
    assert download_filename('a"b\r\nc/d\\e', ".zip") == "a-b-c-d-e.zip"
    assert download_filename("données v2", ".jsonl") == "données v2.jsonl"
    assert download_filename("../..", ".zip", fallback="model-3") == "model-3.zip"
    assert download_filename("\u202egpj.exe", ".zip") == "gpj.exe.zip"
    assert settings.DATA_DIR  # the data dir these helpers guard is configured
