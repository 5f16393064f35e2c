"""The offline starter: tokenizer with a chat template, a small Llama model, demo tasks, rewards."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings
from transformers import AutoModelForCausalLM, AutoTokenizer

from jobs.models import Dataset, ModelEntry
from jobs.starter import warmup
from jobs.starter.artifacts import Recipe, artifacts_dir, ensure_artifacts
from jobs.starter.tasks import held_out_rows, make_rows, prompt_key
from rewards.models import RewardFunction

DATASETS = [
    f"{task}-{split}"
    for task in ("arithmetic", "extraction", "support-tone")
    for split in ("train", "validation", "test")
]
ROWS = {"train": 500, "validation": 100, "test": 200}
TINY = Recipe(
    train_rows=10,
    validation_rows=5,
    warmup_pairs_per_task=40,
    model=warmup.WarmupConfig(
        hidden_size=32,
        layers=1,
        heads=2,
        intermediate_size=64,
        steps=3,
        batch_size=4,
        warmup_steps=1,
    ),
)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_starter_model_loads_and_chats_like_any_hf_model(starter_artifacts: Path) -> None:
    directory = starter_artifacts / "models" / "starter"
    model = AutoModelForCausalLM.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    messages = [
        {"role": "system", "content": "You are a math tutor."},
        {"role": "user", "content": "2 + 2?"},
    ]

    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    assert (
        text == "<|im_start|>system\nYou are a math tutor.<|im_end|>\n"
        "<|im_start|>user\n2 + 2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert model.config.architectures == ["LlamaForCausalLM"]
    assert tokenizer.decode(tokenizer("Gus has 12 apples.")["input_ids"]) == "Gus has 12 apples."


def test_the_demo_datasets_are_in_bedrock_format(starter_artifacts: Path) -> None:
    for name in DATASETS:
        rows = [
            json.loads(line) for line in (starter_artifacts / "datasets" / f"{name}.jsonl").open()
        ]
        assert len(rows) == ROWS[name.rsplit("-", 1)[1]]
        for row in rows:
            assert [m["role"] for m in row["messages"]] == ["system", "user"]
            assert row["reference_answer"] and row["task_id"]


def test_bootstrap_registers_everything_for_the_first_admin_once(
    admin: User, starter_artifacts: Path
) -> None:
    out = io.StringIO()
    call_command("bootstrap_starter", "--no-progress", stdout=out)
    assert "registered model starter" in out.getvalue()
    assert ModelEntry.objects.get(name="starter", owner=admin).architecture == "LlamaForCausalLM"
    assert sorted(Dataset.objects.filter(owner=admin).values_list("name", flat=True)) == sorted(
        DATASETS
    )
    assert sorted(RewardFunction.objects.filter(owner=admin).values_list("name", flat=True)) == [
        "arithmetic",
        "extraction",
        "support-tone",
    ]
    assert Dataset.objects.get(name="arithmetic-validation").row_count == 100

    again = io.StringIO()
    call_command("bootstrap_starter", "--no-progress", stdout=again)
    assert "already registered: 13 objects" in again.getvalue()
    assert "registered model" not in again.getvalue()
    assert ModelEntry.objects.count() == 1 and Dataset.objects.count() == 9


def read_split(artifacts: Path, task: str, split: str) -> list[dict]:
    path = artifacts / "datasets" / f"{task}-{split}.jsonl"
    return [json.loads(line) for line in path.open()]


@pytest.mark.parametrize("task", ["arithmetic", "extraction", "support-tone"])
def test_the_test_split_is_held_out_from_train_and_validation(
    starter_artifacts: Path, task: str
) -> None:
    seen = {
        prompt_key(row)
        for split in ("train", "validation")
        for row in read_split(starter_artifacts, task, split)
    }
    test = [prompt_key(row) for row in read_split(starter_artifacts, task, "test")]

    assert len(set(test)) == len(test) == 200  # no question asked twice either
    assert not seen & set(test)


@pytest.mark.parametrize("task", ["arithmetic", "extraction", "support-tone"])
def test_train_and_validation_are_the_first_rows_of_the_task_as_before_the_test_split(
    starter_artifacts: Path, task: str
) -> None:
    rows = read_split(starter_artifacts, task, "train") + read_split(
        starter_artifacts, task, "validation"
    )

    assert rows == make_rows(task, 600, seed=0)


def test_held_out_rows_skip_repeated_questions() -> None:
    def row(question: str) -> dict:
        return {"messages": [{"role": "user", "content": question}], "task_id": question}

    stream = iter([row("a"), row("b"), row("a"), row("c"), row("d")])

    picked = held_out_rows(stream, seen=[row("b")], count=2)

    assert [r["task_id"] for r in picked] == ["a", "c"]
    assert next(stream)["task_id"] == "d"  # nothing drawn past the last pick


def test_the_test_datasets_are_registered_and_say_what_they_are_for(
    admin: User, starter_artifacts: Path
) -> None:
    call_command("bootstrap_starter", "--no-progress", stdout=io.StringIO())

    for task in ("arithmetic", "extraction", "support-tone"):
        dataset = Dataset.objects.get(owner=admin, name=f"{task}-test")
        assert dataset.row_count == 200 and dataset.source == Dataset.Source.STARTER
        assert "held out" in dataset.description


@pytest.mark.django_db
def test_build_only_makes_the_artifacts_and_registers_nothing(starter_artifacts: Path) -> None:
    out = io.StringIO()
    call_command("bootstrap_starter", "--build-only", "--no-progress", stdout=out)
    assert out.getvalue() == f"Starter artifacts ready: {starter_artifacts}\n"
    assert not ModelEntry.objects.exists() and not Dataset.objects.exists()


@pytest.mark.parametrize("task", ["arithmetic", "extraction"])
def test_the_starter_is_pretty_good_but_inconsistent(
    admin: User, starter_artifacts: Path, task: str
) -> None:
    call_command("bootstrap_starter", "--no-progress", stdout=io.StringIO())
    out = io.StringIO()
    call_command(
        "evaluate",
        "--model",
        "starter",
        "--dataset",
        f"{task}-validation",
        "--reward",
        task,
        stdout=out,
    )

    summary = json.loads(out.getvalue().strip().splitlines()[-1])

    assert set(summary) >= {"accuracy", "mean_reward", "rows", "seconds"}
    assert summary["rows"] == 100
    assert 0.10 <= summary["accuracy"] <= 0.50, summary
    assert summary["mean_reward"] > summary["accuracy"] * 0.9  # partial credit where it is given


def test_evaluate_can_use_a_seeded_subset_of_rows(admin: User, starter_artifacts: Path) -> None:
    call_command("bootstrap_starter", "--no-progress", stdout=io.StringIO())
    runs = []
    for _ in range(2):
        out = io.StringIO()
        call_command(
            "evaluate",
            "--model",
            "starter",
            "--dataset",
            "arithmetic-validation",
            "--reward",
            "arithmetic",
            "--samples",
            "20",
            stdout=out,
        )
        runs.append(json.loads(out.getvalue().splitlines()[-1]))
    assert runs[0]["rows"] == 20
    assert runs[0]["accuracy"] == runs[1]["accuracy"]


def test_the_build_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    hashes = []
    for attempt in ("a", "b"):
        with override_settings(STARTER_CACHE=tmp_path / attempt):
            built = ensure_artifacts(TINY, show_progress=False)
        hashes.append(digest(built / "models" / "starter" / "model.safetensors"))
        assert digest(built / "datasets" / "arithmetic-train.jsonl")
    with override_settings(STARTER_CACHE=tmp_path / "c"):
        other_seed = ensure_artifacts(Recipe(**{**TINY.__dict__, "seed": 1}), show_progress=False)
    assert hashes[0] == hashes[1]
    assert digest(other_seed / "models" / "starter" / "model.safetensors") != hashes[0]


def test_an_interrupted_build_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with override_settings(STARTER_CACHE=tmp_path):
        monkeypatch.setattr(warmup, "train", crash)
        with pytest.raises(KeyboardInterrupt):
            ensure_artifacts(TINY, show_progress=False)
        assert not artifacts_dir(TINY).exists()
        monkeypatch.undo()
        assert (ensure_artifacts(TINY, show_progress=False) / "manifest.json").exists()
