"""Checkpoints beyond the published one: each validation's answers are kept and shown per step,
and "Use as model" turns any kept checkpoint into a registered tuned model. Only the owner sees
them; a checkpoint whose files were pruned says so."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from transformers import AutoTokenizer, TrainerControl

from jobs.models import Checkpoint, Job, ModelEntry, ValidationAnswers
from jobs.registry.loading import SamplingSettings, generate_answers, load_for_inference
from jobs.training.callback import JobCallback
from jobs.training.evaluation import evaluate_loaded
from jobs.training.reward_bridge import RewardBridge
from jobs.training.validation_answers import save_answers
from rewards.services import create_reward
from rewards.types import RewardResult
from rftconsole.paths import models_dir
from tests.support.job_rows import make_job
from tests.support.tiny_models import save_tiny_model

ROWS = [
    {"messages": [{"role": "system", "content": "Add."}, {"role": "user", "content": f"{n}+1?"}],
     "reference_answer": str(n + 1)}
    for n in range(3)
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("ckpt") / "model")


def checkpoint_dir(tmp_path: Path, tiny_dir: Path, step: int) -> Path:
    """What the Trainer saves: the weights, the tokenizer, and the state to resume training."""
    import shutil

    target = tmp_path / "checkpoints" / f"checkpoint-{step}"
    shutil.copytree(tiny_dir, target)
    (target / "optimizer.pt").write_bytes(b"optimizer state")
    (target / "trainer_state.json").write_text("{}")
    return target


def test_each_validation_keeps_its_answers_through_the_evaluation_hook(
    alice: User, tiny_dir: Path
) -> None:
    job = make_job(alice)
    version = create_reward(
        alice, "plus-one", "code",
        code="def grade(sample, item):\n    return 1.0 if 'x' in sample['output_text'] else 0.5\n",
    )  # fmt: skip
    model = __import__("transformers").AutoModelForCausalLM.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    sampling = SamplingSettings(max_new_tokens=4)
    for step in (0, 20, 20):  # a replayed step replaces its answers
        result = evaluate_loaded(
            model, tokenizer, ROWS, version, sampling,
            on_rows=lambda rows, answers, results, step=step: save_answers(
                job, step, rows, answers, results
            ),
        )  # fmt: skip
    assert result.rows == 3
    saved = list(ValidationAnswers.objects.filter(job=job))
    assert [s.step for s in saved] == [0, 20] and saved[1].rows == 3
    expected = generate_answers(model, tokenizer, [r["messages"] for r in ROWS], sampling)
    first = saved[1].answers[0]
    assert first["prompt"] == ROWS[0]["messages"] and first["answer"] == expected[0]
    assert first["reward"] in (0.5, 1.0) and first["error"] is None
    assert first["reference_answer"] == "1"


def test_answers_are_capped_and_a_reward_error_is_kept_as_such(alice: User) -> None:
    job = make_job(alice)
    rows = [{"messages": [{"role": "user", "content": str(n)}]} for n in range(250)]
    results = [RewardResult(str(n), 0.0, error="boom" if n == 1 else None) for n in range(250)]
    saved = save_answers(job, 5, rows, ["a"] * 250, results)
    assert saved.rows == 250 and len(saved.answers) == ValidationAnswers.MAX_ROWS == 200
    assert saved.answers[1]["reward"] is None and saved.answers[1]["error"] == "boom"
    assert saved.answers[0]["reward"] == 0.0 and saved.answers[0]["error"] is None


def test_the_trainer_callback_passes_the_step_to_the_validation(alice: User) -> None:
    job = make_job(alice, hp={"evalInterval": 5})
    seen: list[Any] = []
    bridge = RewardBridge(job.reward_version, samples_per_prompt=8)
    callback = JobCallback(job, bridge, lambda model, step: seen.append(step) or {}, 0.0)
    for step in (4, 5):
        state = SimpleNamespace(global_step=step, max_steps=100, epoch=0.1)
        callback.on_step_end(None, state, TrainerControl(), model=None)  # type: ignore[arg-type]
    assert seen == [5]


def test_the_job_page_lists_checkpoints_and_their_answers_page_shows_them(
    alice: User, alice_client: Client, bob_client: Client, tmp_path: Path, tiny_dir: Path
) -> None:
    job = make_job(alice, status=Job.Status.COMPLETED)
    kept = Checkpoint.objects.create(
        job=job, step=10, path=str(checkpoint_dir(tmp_path, tiny_dir, 10)),
        validation_reward=0.5, validation_accuracy=0.5,
    )  # fmt: skip
    Checkpoint.objects.create(job=job, step=20, path=str(tmp_path / "gone"), validation_reward=0.25)
    rows = [{"messages": [{"role": "user", "content": "What is 2+2?"}]}]
    save_answers(job, 10, rows, ["#### 4"], [RewardResult("0", 1.0)])
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    card = html[html.index('id="checkpoints"') :]
    assert "Use as model" in card and "files pruned" in card
    assert f"/jobs/{job.pk}/checkpoints/{kept.pk}/use/" in card
    assert f"/jobs/{job.pk}/validation-answers/?step=10" in card
    assert "?step=0" not in card  # no base answers kept: no link to them
    save_answers(job, 0, rows, ["5"], [RewardResult("0", 0.0)])
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert f"/jobs/{job.pk}/validation-answers/?step=0" in html
    page = alice_client.get(f"/jobs/{job.pk}/validation-answers/?step=10").content.decode()
    assert "What is 2+2?" in page and "#### 4" in page and "1 of 1 row kept" in page
    assert alice_client.get(f"/jobs/{job.pk}/validation-answers/?step=99").status_code == 404
    assert alice_client.get(f"/jobs/{job.pk}/validation-answers/?step=x").status_code == 404
    # bob: 404 on alice's answers and checkpoint
    assert bob_client.get(f"/jobs/{job.pk}/validation-answers/?step=10").status_code == 404
    assert bob_client.post(f"/jobs/{job.pk}/checkpoints/{kept.pk}/use/").status_code == 404
    assert not ModelEntry.objects.filter(source__startswith=f"job:{job.pk}:").exists()


def test_use_as_model_registers_a_loadable_tuned_model_once(
    alice: User, alice_client: Client, tmp_path: Path, tiny_dir: Path
) -> None:
    job = make_job(alice, status=Job.Status.COMPLETED)
    checkpoint = Checkpoint.objects.create(
        job=job, step=10, path=str(checkpoint_dir(tmp_path, tiny_dir, 10)), validation_reward=0.5
    )
    answer = alice_client.post(f"/jobs/{job.pk}/checkpoints/{checkpoint.pk}/use/")
    entry = ModelEntry.objects.get(owner=alice, source=f"job:{job.pk}:step:10")
    assert answer.status_code == 302 and answer["Location"] == f"/models/{entry.pk}/"
    assert entry.kind == ModelEntry.Kind.TUNED and entry.base == job.base_model
    assert entry.name == "arith-step-10" and "step 10" in entry.description
    path = Path(entry.path)
    assert path.is_relative_to(models_dir()) and not (path / "optimizer.pt").exists()
    model, tokenizer = load_for_inference(entry)
    assert generate_answers(
        model, tokenizer, [ROWS[0]["messages"]], SamplingSettings(max_new_tokens=2)
    )
    again = alice_client.post(f"/jobs/{job.pk}/checkpoints/{checkpoint.pk}/use/")
    assert again["Location"] == f"/models/{entry.pk}/"
    assert ModelEntry.objects.filter(owner=alice, source=entry.source).count() == 1
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/models/{entry.pk}/">arith-step-10<' in html


def test_a_pruned_checkpoint_says_its_files_are_gone(
    alice: User, alice_client: Client, tmp_path: Path
) -> None:
    job = make_job(alice, status=Job.Status.COMPLETED)
    gone = Checkpoint.objects.create(job=job, step=20, path=str(tmp_path / "checkpoint-20"))
    answer = alice_client.post(f"/jobs/{job.pk}/checkpoints/{gone.pk}/use/", follow=True)
    assert answer.status_code == 200
    assert "The files of the step 20 checkpoint are gone" in answer.content.decode()
    assert not ModelEntry.objects.filter(source=f"job:{job.pk}:step:20").exists()


def test_the_published_checkpoint_is_the_jobs_output_model(
    alice: User, alice_client: Client, tmp_path: Path
) -> None:
    job = make_job(alice, status=Job.Status.COMPLETED)
    output = ModelEntry.objects.create(
        owner=alice, name="arith-tuned", source="job:1", path="/m", status="ready"
    )
    Job.objects.filter(pk=job.pk).update(output_model=output, output_step=20)
    published = Checkpoint.objects.create(job=job, step=20, path=str(tmp_path / "c"))
    answer = alice_client.post(f"/jobs/{job.pk}/checkpoints/{published.pk}/use/")
    assert answer["Location"] == f"/models/{output.pk}/"
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "published" in html[html.index('id="checkpoints"') :]


def test_the_api_lists_validation_answers_and_uses_a_checkpoint_as_a_model(
    alice: User, alice_client: Client, bob_client: Client, tmp_path: Path, tiny_dir: Path
) -> None:
    job = make_job(alice, status=Job.Status.COMPLETED)
    Checkpoint.objects.create(job=job, step=10, path=str(checkpoint_dir(tmp_path, tiny_dir, 10)))
    rows = [{"messages": [{"role": "user", "content": "2+2?"}]}]
    save_answers(job, 0, rows, ["5"], [RewardResult("0", 0.0)])
    save_answers(job, 10, rows, ["4"], [RewardResult("0", 1.0)])
    listed = alice_client.get(f"/api/jobs/{job.pk}/validation-answers/?step=10").json()
    assert [(s["step"], s["rows"], s["answers"][0]["answer"]) for s in listed] == [(10, 1, "4")]
    assert len(alice_client.get(f"/api/jobs/{job.pk}/validation-answers/").json()) == 2
    use = f"/api/jobs/{job.pk}/use-checkpoint/"
    assert bob_client.post(use, {"step": 10}, content_type="application/json").status_code == 404
    missing = alice_client.post(use, {"step": 11}, content_type="application/json")
    assert missing.status_code == 400 and "no checkpoint at step 11" in missing.content.decode()
    made = alice_client.post(use, {"step": 10}, content_type="application/json")
    assert made.status_code == 201 and made.json()["name"] == "arith-step-10"
    assert ModelEntry.objects.get(pk=made.json()["id"]).source == f"job:{job.pk}:step:10"
