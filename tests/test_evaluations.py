"""Evaluations: 2 or 3 models (registered models or job checkpoints) answer the first N rows of a
dataset, each answer scored by a reward version; the result is a mean score with a 95% interval,
accuracy with a Wilson interval, win/tie/loss against the first model, rows sortable by score
difference, and CSV / JSONL exports. Only their owner sees them; bad input is a clear 400.

Real parts: tiny real models answer, a real built-in grader scores (runs run synchronously
here; the queue is the browser test's)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from jobs.datasets.importer import import_lines
from jobs.models import Checkpoint, ModelEntry
from jobs.registry.services import register_model
from playground import evaluation_runner
from playground import evaluations as ev
from playground.evaluation_runner import run_evaluation
from playground.evaluation_stats import mean_interval, wilson_interval, win_tie_loss
from playground.models import Evaluation, EvaluationRow
from playground.tasks import run_evaluation_task
from rewards.models import RewardFunction, RewardVersion
from tests.support.job_rows import make_job
from tests.support.tiny_models import save_tiny_model

ROWS = [
    {
        "messages": [{"role": "user", "content": f"What is {i} + {i}?"}],
        "reference_answer": f"{2 * i}",
    }
    for i in range(6)
] + [{"messages": [{"role": "user", "content": "=HYPERLINK(1)"}], "reference_answer": "=1+1"}]


# --- the statistics, on numbers worked out by hand ---------------------------------------------


def test_the_mean_interval_is_the_normal_approximation_and_is_clamped_to_a_known_range() -> None:
    mean, low, high = mean_interval([0.0, 1.0, 1.0, 1.0])  # s = 0.5, n = 4: half = 1.96 * 0.25
    assert mean == 0.75 and low == pytest.approx(0.26, abs=1e-3)
    assert high == pytest.approx(1.24, abs=1e-3)
    assert mean_interval([0.0, 1.0, 1.0, 1.0], (0.0, 1.0))[1:] == (
        pytest.approx(0.26, abs=1e-3),
        1.0,
    )
    assert mean_interval([0.4]) == (0.4, 0.4, 0.4)
    assert mean_interval([]) == (None, None, None)


def test_accuracy_uses_the_wilson_interval_which_stays_informative_at_0_and_100_percent() -> None:
    rate, low, high = wilson_interval(8, 10)
    assert rate == 0.8 and low == pytest.approx(0.4902, abs=1e-3)
    assert high == pytest.approx(0.9433, abs=1e-3)
    rate, low, high = wilson_interval(0, 10)
    assert (rate, low) == (0.0, 0.0) and high == pytest.approx(0.2775, abs=1e-3)
    assert wilson_interval(0, 0) == (None, None, None)


def test_win_tie_loss_counts_rows_against_the_reference() -> None:
    assert win_tie_loss([1.0, 0.5, 0.0, 0.3], [0.0, 0.5, 1.0, 0.1]) == (2, 1, 1)


# --- real runs on tiny models -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("evaluation-models")
    base = save_tiny_model(root / "base")
    tuned = save_tiny_model(root / "tuned", "qwen2")
    adapter = root / "job" / "checkpoint-2"  # what a LoRA job saves: an adapter on its base
    lora = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=2, target_modules="all-linear")
    )
    lora.save_pretrained(adapter)
    return {"base": base, "tuned": tuned, "adapter": adapter}


@pytest.fixture
def setup(alice: User, tiny_dirs: dict[str, Path]) -> dict:
    starter = register_model(alice, str(tiny_dirs["base"]), "starter")  # the job's base
    tuned = register_model(alice, str(tiny_dirs["tuned"]), "tuned")
    job = make_job(alice, "arith", status="completed")
    assert job.base_model == starter
    checkpoint = Checkpoint.objects.create(
        job=job, step=2, path=str(tiny_dirs["adapter"]), validation_reward=0.4
    )
    dataset, _ = import_lines(alice, "sums", [json.dumps(r).encode() for r in ROWS])
    reward = RewardFunction.objects.create(owner=alice, name="similar", kind="builtin")
    version = RewardVersion.objects.create(
        reward=reward, number=1, pass_threshold=0.1,
        config={"grader": "text_similarity", "metric": "fuzzy"},
    )  # fmt: skip
    return {"starter": starter, "tuned": tuned, "job": job, "checkpoint": checkpoint,
            "dataset": dataset, "version": version}  # fmt: skip


SETTINGS = ev.Settings(temperature=0, max_tokens=6, max_prompt_length=256, seed=1)


def start(alice: User, s: dict, refs: list[str], rows: int | None = None) -> Evaluation:
    evaluation = ev.create_evaluation(alice, refs, s["dataset"], s["version"], SETTINGS, rows)
    run_evaluation(evaluation)
    evaluation.refresh_from_db()
    return evaluation


@pytest.mark.django_db
def test_a_model_and_a_lora_checkpoint_and_a_tuned_model_answer_every_row_and_are_scored(
    alice: User, setup: dict
) -> None:
    refs = [f"model:{setup['starter'].pk}", f"checkpoint:{setup['checkpoint'].pk}",
            f"model:{setup['tuned'].pk}"]  # fmt: skip
    evaluation = start(alice, setup, refs, rows=5)
    assert evaluation.status == "done", evaluation.status_reason
    assert (evaluation.progress_done, evaluation.progress_total) == (15, 15)
    rows = list(evaluation.rows.all())
    assert [r.index for r in rows] == [0, 1, 2, 3, 4]
    for row in rows:
        assert len(row.answers) == 3
        assert all(isinstance(a["score"], float) and 0 <= a["score"] <= 1 for a in row.answers)
    stats = evaluation.summary["models"]
    assert [s["label"] for s in stats] == ["starter", "arith · step 2", "tuned"]
    assert evaluation.summary["score_range"] == [0.0, 1.0]  # a built-in grader scores 0-1
    for s in stats:
        assert s["rows"] == 5 and s["mean_low"] <= s["mean"] <= s["mean_high"]
        assert 0 <= s["accuracy_low"] <= s["accuracy"] <= s["accuracy_high"] <= 1
    assert stats[0]["vs_first"] is None
    assert sum(stats[2]["vs_first"].values()) == 5
    scores = [[r.answers[m]["score"] for r in rows] for m in range(3)]
    assert stats[2]["mean"] == pytest.approx(sum(scores[2]) / 5)
    wins = sum(b > a + 1e-9 for a, b in zip(scores[0], scores[2], strict=True))
    assert stats[2]["vs_first"]["win"] == wins
    # Sorted by difference (last model minus first): biggest gain first, then the reverse.
    diffs = [ev.score_diff(r) for r in ev.sorted_rows(evaluation, "diff")]
    assert diffs == sorted(diffs, reverse=True)
    assert [ev.score_diff(r) for r in ev.sorted_rows(evaluation, "-diff")] == sorted(diffs)


@pytest.mark.django_db
def test_rows_over_max_prompt_length_are_skipped_and_counted_not_scored(
    alice: User, setup: dict
) -> None:
    long_row = {"messages": [{"role": "user", "content": "add " * 40}], "reference_answer": "1"}
    lines = [json.dumps(r).encode() for r in (ROWS[0], long_row)]
    dataset, _ = import_lines(alice, "one long", lines)
    evaluation = ev.create_evaluation(
        alice, [f"model:{setup['starter'].pk}", f"model:{setup['tuned'].pk}"], dataset,
        setup["version"], ev.Settings(0, 4, 64, 0), None,
    )  # fmt: skip
    run_evaluation(evaluation)
    evaluation.refresh_from_db()
    assert evaluation.status == "done"
    assert (evaluation.summary["skipped"], evaluation.summary["rows"]) == (1, 1)
    assert evaluation.progress_done == evaluation.progress_total == 4
    skipped = evaluation.rows.get(index=1)
    assert "maxPromptLength (64 tokens)" in skipped.skipped
    assert [a["score"] for a in skipped.answers] == [None, None]
    assert evaluation.summary["models"][0]["rows"] == 1


@pytest.mark.django_db
def test_a_reward_that_cannot_score_fails_the_evaluation_with_its_reason(
    alice: User, setup: dict, alice_client: Client
) -> None:
    broken = RewardVersion.objects.create(
        reward=setup["version"].reward, number=2, config={"grader": "no_such_grader"}
    )
    setup = {**setup, "version": broken}
    evaluation = start(
        alice, setup, [f"model:{setup['starter'].pk}", f"model:{setup['tuned'].pk}"], 2
    )
    assert evaluation.status == "failed"
    assert evaluation.status_reason.startswith("The reward cannot score: Unknown built-in grader")
    page = alice_client.get(f"/playground/evaluations/{evaluation.pk}/").content.decode()
    assert "The evaluation failed: The reward cannot score" in page


@pytest.mark.django_db
def test_a_cancelled_evaluation_never_runs(alice: User, setup: dict) -> None:
    evaluation = ev.create_evaluation(
        alice, [f"model:{setup['starter'].pk}", f"model:{setup['tuned'].pk}"], setup["dataset"],
        setup["version"], SETTINGS, 2,
    )  # fmt: skip
    assert ev.cancel(evaluation) and not ev.cancel(evaluation)  # the second: already finished
    run_evaluation(evaluation)
    evaluation.refresh_from_db()
    assert evaluation.status == "cancelled" and not evaluation.rows.exists()


@pytest.mark.django_db
def test_exports_are_csv_with_a_column_group_per_model_and_jsonl_per_row(
    alice: User, setup: dict, alice_client: Client
) -> None:
    evaluation = start(alice, setup, [f"model:{setup['starter'].pk}", f"model:{setup['tuned'].pk}"])
    url = f"/playground/evaluations/{evaluation.pk}/export"
    response = alice_client.get(f"{url}/csv/")
    assert (
        response["Content-Disposition"] == f'attachment; filename="evaluation-{evaluation.pk}.csv"'
    )
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert table[0][:4] == ["row", "prompt", "reference_answer", "skipped"]
    assert table[0][4:6] == ["starter answer", "starter score"] and "tuned passed" in table[0]
    assert len(table) == 1 + len(ROWS)
    assert table[1][1] == "What is 0 + 0?" and table[-1][1:3] == ["'=HYPERLINK(1)", "'=1+1"]
    lines = b"".join(alice_client.get(f"{url}/jsonl/").streaming_content).decode().splitlines()
    first = json.loads(lines[0])
    assert first["messages"][0]["content"] == "What is 0 + 0?"
    assert [a["model"] for a in first["answers"]] == [f"model:{setup['starter'].pk}",
                                                      f"model:{setup['tuned'].pk}"]  # fmt: skip
    assert alice_client.get(f"{url}/xlsx/").status_code == 400


# --- the pages ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_from_a_job_the_form_is_prefilled_with_its_base_its_best_checkpoint_and_its_settings(
    alice_client: Client, setup: dict
) -> None:
    job = setup["job"]
    page = alice_client.get(f"/playground/evaluations/new/?job={job.pk}").content.decode()
    assert f'<option value="model:{setup["starter"].pk}" selected>' in page
    assert f'<option value="checkpoint:{setup["checkpoint"].pk}" selected>' in page
    assert f'<option value="{setup["dataset"].pk}">' in page  # the job's dataset is not hers
    assert 'name="max_tokens" value="48"' in page  # the job's inferenceMaxTokens (cpu default)
    model_page = alice_client.get(f"/playground/evaluations/new/?model={setup['tuned'].pk}")
    assert f'<option value="model:{setup["tuned"].pk}" selected>' in model_page.content.decode()
    assert (
        "playground/evaluations/new/?job=" in alice_client.get(f"/jobs/{job.pk}/").content.decode()
    )


@pytest.mark.django_db
def test_the_form_starts_an_evaluation_and_the_result_page_shows_stats_and_sorts(
    alice: User, alice_client: Client, setup: dict
) -> None:
    form = {
        "model_a": f"model:{setup['starter'].pk}", "model_b": f"model:{setup['tuned'].pk}",
        "model_c": "", "dataset": setup["dataset"].pk, "rows": 4,
        "reward_version": setup["version"].pk, "temperature": 0, "max_tokens": 5,
        "max_prompt_length": 256, "seed": 0,
    }  # fmt: skip
    response = alice_client.post("/playground/evaluations/new/", form)
    evaluation = Evaluation.objects.get(owner=alice)
    assert response.status_code == 302 and response["Location"].endswith(f"/{evaluation.pk}/")
    assert evaluation.row_limit == 4 and evaluation.status == "queued"
    running = alice_client.get(f"/playground/evaluations/{evaluation.pk}/").content.decode()
    assert "Waiting for a worker" in running and "hx-get" in running
    run_evaluation(evaluation)
    page = alice_client.get(f"/playground/evaluations/{evaluation.pk}/?sort=diff").content.decode()
    assert "Per model" in page and "95% Wilson CI" in page and "won" in page
    assert '<strong aria-current="true">biggest gain first</strong>' in page
    assert page.count('class="eval-row"') == 4
    polled = alice_client.get(
        f"/playground/evaluations/{evaluation.pk}/", headers={"HX-Request": "true"}
    )
    assert polled["HX-Refresh"] == "true"  # finished: the poll reloads the page
    assert "sums" in alice_client.get("/playground/evaluations/").content.decode()


@pytest.mark.django_db
def test_the_form_refuses_one_model_or_the_same_model_twice_with_a_clear_error(
    alice_client: Client, setup: dict
) -> None:
    form = {"model_a": f"model:{setup['starter'].pk}", "dataset": setup["dataset"].pk,
            "reward_version": setup["version"].pk, "temperature": 1, "max_tokens": 5,
            "max_prompt_length": 256, "seed": 0}  # fmt: skip
    response = alice_client.post("/playground/evaluations/new/", form)
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    form["model_b"] = form["model_a"]
    response = alice_client.post("/playground/evaluations/new/", form)
    assert response.status_code == 400
    assert "Choose each model once" in response.content.decode()
    assert not Evaluation.objects.exists()


# --- privacy and the REST API ------------------------------------------------------------------


@pytest.mark.django_db
def test_bob_gets_404_for_alices_evaluation_and_cannot_use_her_models_or_data(
    alice: User, bob_client: Client, alice_client: Client, setup: dict
) -> None:
    evaluation = start(
        alice, setup, [f"model:{setup['starter'].pk}", f"model:{setup['tuned'].pk}"], 2
    )
    assert (
        alice_client.get(f"/playground/evaluations/{evaluation.pk}/").status_code == 200
    )  # control
    for url in (
        f"/playground/evaluations/{evaluation.pk}/",
        f"/playground/evaluations/{evaluation.pk}/export/csv/",
        f"/api/evaluations/{evaluation.pk}/",
        f"/api/evaluations/{evaluation.pk}/rows/",
        f"/api/evaluations/{evaluation.pk}/export/",
        f"/playground/evaluations/new/?job={setup['job'].pk}",
        f"/playground/evaluations/new/?model={setup['starter'].pk}",
    ):
        assert bob_client.get(url).status_code == 404, url
    assert bob_client.post(f"/playground/evaluations/{evaluation.pk}/cancel/").status_code == 404
    assert bob_client.get("/api/evaluations/").json()["results"] == []
    assert str(evaluation) not in bob_client.get("/playground/evaluations/").content.decode()
    bobs_dataset, _ = import_lines(
        User.objects.get(username="bob"), "b", [json.dumps(ROWS[0]).encode()]
    )
    body = {"models": [f"model:{setup['starter'].pk}", f"model:{setup['tuned'].pk}"],
            "dataset": bobs_dataset.pk, "reward_version": setup["version"].pk}  # fmt: skip
    response = bob_client.post("/api/evaluations/", body, content_type="application/json")
    assert response.status_code == 400
    assert (
        response.json()["detail"]
        == f"reward_version: no reward version {setup['version'].pk} of yours."
    )


@pytest.mark.django_db
def test_the_api_creates_with_a_jobs_settings_lists_and_returns_rows_sorted(
    alice: User, alice_client: Client, setup: dict
) -> None:
    body = {"models": [f"model:{setup['starter'].pk}", f"checkpoint:{setup['checkpoint'].pk}"],
            "dataset": setup["dataset"].pk, "reward_version": setup["version"].pk, "rows": 3,
            "job": setup["job"].pk, "temperature": 0}  # fmt: skip
    response = alice_client.post("/api/evaluations/", body, content_type="application/json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["status"] == "queued" and created["max_tokens"] == 48  # from the job
    assert created["temperature"] == 0 and created["progress_total"] == 6
    run_evaluation(Evaluation.objects.get(pk=created["id"]))
    got = alice_client.get(f"/api/evaluations/{created['id']}/").json()
    assert got["status"] == "done" and len(got["summary"]["models"]) == 2
    assert [e["id"] for e in alice_client.get("/api/evaluations/").json()["results"]] == [got["id"]]
    rows = alice_client.get(f"/api/evaluations/{got['id']}/rows/?sort=diff").json()
    assert rows["count"] == 3
    diffs = [r["score_diff"] for r in rows["results"]]
    assert diffs == sorted(diffs, reverse=True)
    export = alice_client.get(f"/api/evaluations/{got['id']}/export/?as=jsonl")
    assert len(b"".join(export.streaming_content).splitlines()) == 3
    assert alice_client.post(f"/api/evaluations/{got['id']}/cancel/").status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"models": ["model:1"]}, "models: Ensure this field has at least 2 elements."),
        (
            {"models": ["model:x", "model:y"]},
            "Unknown model 'model:x': use model:<id> or checkpoint:<id>.",
        ),
        ({"models": "starter"}, 'models: Expected a list of items but got type "str".'),
        ({"rows": 0}, "rows: Ensure this value is greater than or equal to 1."),
        ({"temperature": 3}, "temperature: Ensure this value is less than or equal to 2."),
        ({"dataset": 999999}, "dataset: no dataset 999999 of yours."),
        ({"job": 999999}, "job: no job 999999 of yours."),
    ],
)
def test_the_api_refuses_bad_input_with_a_clear_400(
    alice_client: Client, setup: dict, change: dict, detail: str
) -> None:
    body = {"models": [f"model:{setup['starter'].pk}", f"model:{setup['tuned'].pk}"],
            "dataset": setup["dataset"].pk, "reward_version": setup["version"].pk, **change}  # fmt: skip
    response = alice_client.post("/api/evaluations/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == detail
    assert not Evaluation.objects.exists()


@pytest.mark.django_db
def test_a_model_removed_or_not_ready_is_refused_by_name(alice: User, setup: dict) -> None:
    setup["tuned"].status = ModelEntry.Status.FAILED
    setup["tuned"].save()
    with pytest.raises(ev.EvaluationError, match="Model 'tuned' is failed"):
        ev.create_evaluation(alice, [f"model:{setup['starter'].pk}", f"model:{setup['tuned'].pk}"],
                             setup["dataset"], setup["version"], SETTINGS)  # fmt: skip
    assert not Evaluation.objects.exists()


@pytest.mark.django_db
def test_a_run_whose_worker_died_starts_over_and_a_finished_one_is_never_rerun(
    alice: User, setup: dict
) -> None:
    refs = [f"model:{setup['starter'].pk}", f"model:{setup['tuned'].pk}"]
    evaluation = ev.create_evaluation(alice, refs, setup["dataset"], setup["version"], SETTINGS, 2)
    Evaluation.objects.filter(pk=evaluation.pk).update(status="running", progress_done=3)
    run_evaluation(evaluation)  # the redelivered message of a worker that died mid-run
    evaluation.refresh_from_db()
    assert evaluation.status == "done" and evaluation.progress_done == 4
    finished = evaluation.finished_at
    run_evaluation(evaluation)  # a duplicate message: nothing happens
    evaluation.refresh_from_db()
    assert evaluation.finished_at == finished and evaluation.rows.count() == 2


@pytest.mark.django_db
def test_an_empty_form_post_names_the_missing_fields(alice_client: Client, setup: dict) -> None:
    response = alice_client.post("/playground/evaluations/new/", {})
    assert response.status_code == 400
    assert response.content.decode().count("This field is required") >= 4


@pytest.mark.django_db
def test_cancel_on_the_page_stops_a_queued_run_and_says_so(
    alice: User, alice_client: Client, setup: dict
) -> None:
    refs = [f"model:{setup['starter'].pk}", f"model:{setup['tuned'].pk}"]
    evaluation = ev.create_evaluation(alice, refs, setup["dataset"], setup["version"], SETTINGS, 2)
    url = f"/playground/evaluations/{evaluation.pk}/"
    assert 'action="' + url + 'cancel/"' in alice_client.get(url).content.decode()
    page = alice_client.post(f"{url}cancel/", follow=True).content.decode()
    assert "Cancelled by the user." in page and "cancel/" not in page.split("<main")[-1]
    evaluation.refresh_from_db()
    assert evaluation.status == "cancelled"
    again = alice_client.post(f"{url}cancel/", follow=True).content.decode()
    assert "has already finished" in again


@pytest.mark.django_db
def test_alice_deletes_a_finished_evaluation_with_its_rows_and_bob_cannot(
    alice: User, alice_client: Client, bob_client: Client, setup: dict
) -> None:
    refs = [f"model:{setup['starter'].pk}", f"model:{setup['tuned'].pk}"]
    kept, deleted = start(alice, setup, refs, 2), start(alice, setup, refs, 2)
    url = f"/playground/evaluations/{deleted.pk}/"
    assert 'action="' + url + 'delete/"' in alice_client.get(url).content.decode()
    assert bob_client.post(f"{url}delete/").status_code == 404
    assert bob_client.delete(f"/api/evaluations/{deleted.pk}/").status_code == 404
    assert Evaluation.objects.filter(pk=deleted.pk).exists()  # bob deleted nothing
    page = alice_client.post(f"{url}delete/", follow=True)  # the control: its owner may
    assert page.redirect_chain == [("/playground/evaluations/", 302)]
    assert f"Deleted “{deleted}” and its answers." in page.content.decode()
    assert not Evaluation.objects.filter(pk=deleted.pk).exists()
    assert not EvaluationRow.objects.filter(evaluation_id=deleted.pk).exists()
    assert alice_client.get(url).status_code == 404
    assert kept.rows.count() == 2  # the other one is untouched
    assert alice_client.delete(f"/api/evaluations/{kept.pk}/").status_code == 204
    assert not Evaluation.objects.exists()


@pytest.mark.django_db
def test_an_evaluation_deleted_while_it_runs_stops_after_its_batch(
    alice: User, setup: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = [f"model:{setup['starter'].pk}", f"model:{setup['tuned'].pk}"]
    evaluation = ev.create_evaluation(alice, refs, setup["dataset"], setup["version"], SETTINGS)
    batches = []
    real_generate = evaluation_runner.generate_answers

    def generate_then_delete(*args: object, **kwargs: object) -> list[str]:
        batches.append(1)
        texts = real_generate(*args, **kwargs)
        ev.delete_evaluation(Evaluation.objects.get(pk=evaluation.pk))  # the user deletes it
        return texts

    monkeypatch.setattr(evaluation_runner, "BATCH", 2)
    monkeypatch.setattr(evaluation_runner, "generate_answers", generate_then_delete)
    assert run_evaluation_task(evaluation.pk) == "gone"
    assert batches == [1]  # 7 rows in batches of 2: it stopped after the first
    assert not EvaluationRow.objects.filter(evaluation_id=evaluation.pk).exists()
