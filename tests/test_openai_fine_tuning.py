"""OpenAI's fine-tuning jobs API (`client.fine_tuning.jobs.*`) against a real Daphne, for what
needs no training: refused requests name their parameter and leave nothing behind, ids and `ft:`
names are owner-scoped, lists paginate and filter by metadata, events and checkpoints read the
job's rows with OpenAI's names, and the hyperparameter mapping follows its table.
(tests/test_openai_fine_tuning_run.py runs a job end to end.)"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import openai
import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from jobs.models import Checkpoint, Dataset, Job, JobEvent, MetricPoint
from playground.deployments import DeploymentError, deploy
from playground.v1.ft_hyperparameters import (
    HyperparameterProblem,
    console_hyperparameters,
    openai_hyperparameters,
)
from rewards.models import RewardFunction
from rftconsole.models import ApiKeyScope
from rftconsole.services import create_api_key
from tests.support.job_rows import add_points, make_job
from tests.support.stack import serving_v1

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

STRING_CHECK = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.reference_answer}}",
    "operation": "eq",
}


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_v1(tmp_path_factory.mktemp("daphne")) as url:
        yield url


def client_for(server: str, user: User, scope: str = ApiKeyScope.API) -> openai.OpenAI:
    key = create_api_key(user, "ft", scope)[1]
    return openai.OpenAI(base_url=server, api_key=key, max_retries=0, timeout=60)


@pytest.fixture
def client(server: str, alice: User) -> openai.OpenAI:
    return client_for(server, alice)


def raw_get(server: str, user: User, path: str) -> tuple[int, dict[str, Any]]:
    """A request the client would not send (a 5,000-digit limit, a thousand query fields)."""
    key = create_api_key(user, "raw", ApiKeyScope.API)[1]
    headers = {"Authorization": f"Bearer {key}"}
    call = urllib.request.Request(f"{server}/{path}", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(call, timeout=60) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def request(job: Job, **changes: Any) -> dict[str, Any]:
    """A valid create request for `job`'s model and data (the job only lends them)."""
    body: dict[str, Any] = {
        "model": "starter",
        "training_file": f"file-{job.train_dataset_id}",
        "method": {"type": "reinforcement", "reinforcement": {"grader": STRING_CHECK}},
    }
    return {**body, **changes}


def refused(client: openai.OpenAI, body: dict[str, Any]) -> openai.APIStatusError:
    before = (Job.objects.count(), RewardFunction.objects.count())
    with pytest.raises(openai.APIStatusError) as caught:
        client.fine_tuning.jobs.create(**body)
    assert (Job.objects.count(), RewardFunction.objects.count()) == before  # nothing stays
    return caught.value


# --- creating: what is refused, and where ----------------------------------------------------


@pytest.mark.parametrize("kind", ["supervised", "dpo"])
def test_other_methods_are_refused_as_not_supported(
    client: openai.OpenAI, alice: User, kind: str
) -> None:
    error = refused(client, request(make_job(alice), method={"type": kind, kind: {}}))
    assert error.status_code == 400 and error.body["param"] == "method.type"
    assert "not supported" in error.message and "reinforcement" in error.message


def test_a_request_without_a_method_is_told_to_use_reinforcement(
    client: openai.OpenAI, alice: User
) -> None:
    body = request(make_job(alice))
    del body["method"]
    error = refused(client, body)
    assert error.body["param"] == "method" and "reinforcement only" in error.message


@pytest.mark.parametrize(
    ("hyperparameters", "param", "text"),
    [
        ({"n_epochs": 0}, "n_epochs", "positive integer"),
        ({"n_epochs": "many"}, "n_epochs", '"auto"'),
        ({"batch_size": 1000}, "batch_size", "batchSize = 8000"),
        ({"learning_rate_multiplier": 5}, "learning_rate_multiplier", "learningRate = 0.005"),
        ({"compute_multiplier": 10}, "compute_multiplier", "trainingSamplePerPrompt = 80"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort", "low, medium, high"),
        ({"temperature": 1.0}, "temperature", "Unknown hyperparameter"),
        ({"reasoning_effort": []}, "reasoning_effort", "low, medium, high"),
        ({"compute_multiplier": 1e308}, "compute_multiplier", "at most 1000000"),
        ({"batch_size": 1e308}, "batch_size", "at most 1000000"),
    ],
)
def test_a_hyperparameter_out_of_range_is_refused_naming_it(
    client: openai.OpenAI, alice: User, hyperparameters: dict, param: str, text: str
) -> None:
    method = {"type": "reinforcement", "reinforcement": {"grader": STRING_CHECK}}
    method["reinforcement"]["hyperparameters"] = hyperparameters
    error = refused(client, request(make_job(alice), method=method))
    assert error.body["param"] == f"method.reinforcement.hyperparameters.{param}"
    assert text in error.message


def test_a_broken_grader_is_refused_and_no_reward_is_left(
    client: openai.OpenAI, alice: User
) -> None:
    grader = {**STRING_CHECK, "operation": "matches"}
    method = {"type": "reinforcement", "reinforcement": {"grader": grader}}
    error = refused(client, request(make_job(alice), method=method))
    assert error.body["param"] == "method.reinforcement.grader" and "operation" in error.message


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"model": "no-such-model"}, "model"),
        ({"training_file": "file-999999"}, "training_file"),
        ({"validation_file": "file-0"}, "validation_file"),
        ({"suffix": "a/b"}, "suffix"),
        ({"suffix": "x" * 65}, "suffix"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"seed": -1}, "seed"),
        ({"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]}, "integrations"),
        ({"hyperparameters": {"n_epochs": 2}}, "hyperparameters"),
        ({"suffix": 0}, "suffix"),
        ({"metadata": []}, "metadata"),
        ({"integrations": {}}, "integrations"),
        (
            {
                "method": {
                    "type": "reinforcement",
                    "reinforcement": {"grader": STRING_CHECK, "hyperparameters": [1]},
                }
            },
            "method.reinforcement.hyperparameters",
        ),
    ],
)
def test_each_bad_parameter_is_named(
    client: openai.OpenAI, alice: User, changes: dict, param: str
) -> None:
    error = refused(client, request(make_job(alice), **changes))
    assert error.status_code in (400, 404) and error.body["param"] == param


def test_a_response_format_is_refused_not_ignored(client: openai.OpenAI, alice: User) -> None:
    settings = {"grader": STRING_CHECK, "response_format": {"type": "json_schema"}}
    method = {"type": "reinforcement", "reinforcement": settings}
    error = refused(client, request(make_job(alice), method=method))
    assert error.body["param"] == "method.reinforcement.response_format"


def test_another_users_file_is_unknown(client: openai.OpenAI, alice: User, bob: User) -> None:
    bobs = make_job(bob).train_dataset
    error = refused(client, request(make_job(alice), training_file=f"file-{bobs.pk}"))
    assert error.body["param"] == "training_file" and "no such file" in error.message


def test_an_inference_key_may_not_manage_jobs(server: str, alice: User) -> None:
    limited = client_for(server, alice, ApiKeyScope.INFERENCE)
    with pytest.raises(openai.PermissionDeniedError):
        limited.fine_tuning.jobs.list()
    assert client_for(server, alice).fine_tuning.jobs.list().data == []  # control


# --- reading: ids, lists, events, checkpoints ------------------------------------------------


@pytest.mark.parametrize("given", ["ftjob-abc", "ftjob-01", "ftjob-1/../2", "1", "ftjob-+1"])
def test_a_malformed_job_id_is_openais_404(client: openai.OpenAI, alice: User, given: str) -> None:
    make_job(alice)
    with pytest.raises(openai.NotFoundError) as caught:
        client.fine_tuning.jobs.retrieve(given)
    assert "No such fine-tuning job" in caught.value.message


def test_jobs_are_private_to_their_owner(server: str, alice: User, bob: User) -> None:
    job = make_job(alice)
    job_id = f"ftjob-{job.pk}"
    bobs = client_for(server, bob)
    for call in (
        lambda: bobs.fine_tuning.jobs.retrieve(job_id),
        lambda: bobs.fine_tuning.jobs.cancel(job_id),
        lambda: bobs.fine_tuning.jobs.list_events(job_id),
        lambda: bobs.fine_tuning.jobs.checkpoints.list(job_id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert bobs.fine_tuning.jobs.list().data == []
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED  # bob's cancel did nothing
    alices = client_for(server, alice)  # control: the owner reads and lists it
    assert alices.fine_tuning.jobs.retrieve(job_id).id == job_id
    assert [j.id for j in alices.fine_tuning.jobs.list().data] == [job_id]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=" + "9" * 5000, "limit"),
        ("limit=0", "limit"),
        ("metadata=null&metadata[k]=v", "metadata"),
        ("&".join(f"f{i}=1" for i in range(1200)), None),
    ],
)
def test_a_malformed_list_query_is_an_openai_400(
    server: str, alice: User, query: str, param: str | None
) -> None:
    status, body = raw_get(server, alice, f"fine_tuning/jobs?{query}")
    assert status == 400 and body["error"]["param"] == param
    assert raw_get(server, alice, "fine_tuning/jobs?limit=5")[0] == 200  # control


def test_a_job_reads_as_openais_object(client: openai.OpenAI, alice: User) -> None:
    job = make_job(alice, suffix="demo", metadata={"team": "math"})
    found = client.fine_tuning.jobs.retrieve(f"ftjob-{job.pk}")
    assert found.object == "fine_tuning.job" and found.status == "queued"
    assert found.training_file == f"file-{job.train_dataset_id}" and found.model == "starter"
    assert found.hyperparameters.batch_size == 4  # 32 completions / 8 per prompt
    assert found.metadata == {"team": "math"} and found.user_provided_suffix == "demo"
    assert found.fine_tuned_model is None  # not until it succeeds
    assert found.method.type == "reinforcement"


def test_the_list_paginates_and_filters_by_metadata(client: openai.OpenAI, alice: User) -> None:
    jobs = [make_job(alice, f"j{i}", metadata={"run": str(i % 2)}) for i in range(5)]
    make_job(alice, "plain")
    first = client.fine_tuning.jobs.list(limit=2)
    assert first.has_more and len(first.data) == 2
    seen = [j.id for j in first.data]
    after = client.fine_tuning.jobs.list(limit=10, after=seen[-1])
    seen += [j.id for j in after.data]
    assert not after.has_more and len(seen) == len(set(seen)) == 6
    odd = client.fine_tuning.jobs.list(metadata={"run": "1"})
    assert sorted(j.id for j in odd.data) == sorted(f"ftjob-{j.pk}" for j in jobs[1::2])
    assert client.fine_tuning.jobs.list(metadata={"run": "7"}).data == []
    assert client.fine_tuning.jobs.list(metadata={"run'\"": "1"}).data == []  # keys are data


def test_events_use_openais_metric_names_and_page_without_gaps(
    client: openai.OpenAI, alice: User
) -> None:
    job = make_job(alice, total_steps=6)
    add_points(job, range(1, 7), {0: 0.1, 6: 0.5})
    same_moment = job.events.first().created_at + timedelta(seconds=1)
    for text in ("Claimed by worker w.", "Training."):
        JobEvent.objects.create(job=job, status=Job.Status.TRAINING, message=text)
    MetricPoint.objects.filter(job=job).update(created_at=same_moment)  # ties across tables
    JobEvent.objects.filter(job=job).update(created_at=same_moment)
    pages, after = [], None
    while True:
        page = client.fine_tuning.jobs.list_events(f"ftjob-{job.pk}", limit=3, after=after)
        pages += page.data
        if not page.has_more:
            break
        after = page.data[-1].id
    ids = [event.id for event in pages]
    assert len(ids) == len(set(ids)) == 8 + 3  # 6 steps, 2 validations, 3 status events
    metrics = [e for e in pages if e.type == "metrics"]
    steps = sorted(e.data["step"] for e in metrics if "train_reward_mean" in e.data)
    assert steps == [1, 2, 3, 4, 5, 6]
    valid = next(e for e in metrics if e.data.get("valid_accuracy") == 0.5)
    assert valid.data["step"] == 6 and "valid_reward_mean" in valid.data
    assert {e.object for e in pages} == {"fine_tuning.job.event"}


def test_checkpoints_list_their_ft_names_and_metrics(client: openai.OpenAI, alice: User) -> None:
    job = make_job(alice, suffix="v1")
    add_points(job, range(1, 5))
    for step in (2, 4):
        Checkpoint.objects.create(
            job=job, step=step, path=f"/nowhere/{step}", validation_reward=step / 10
        )
    page = client.fine_tuning.jobs.checkpoints.list(f"ftjob-{job.pk}", limit=1)
    assert page.has_more and page.data[0].step_number == 4
    newest = page.data[0]
    assert newest.fine_tuned_model_checkpoint == f"ft:starter:alice:v1:{job.pk}:ckpt-step-4"
    assert newest.metrics.step == 4 and newest.metrics.train_loss is not None
    rest = client.fine_tuning.jobs.checkpoints.list(f"ftjob-{job.pk}", after=newest.id)
    assert [c.step_number for c in rest.data] == [2] and not rest.has_more


# --- state changes and names -------------------------------------------------------------------


def test_cancel_and_pause_follow_the_console_rules(client: openai.OpenAI, alice: User) -> None:
    queued, other = make_job(alice, "a"), make_job(alice, "b")
    assert client.fine_tuning.jobs.pause(f"ftjob-{queued.pk}").status == "paused"
    assert client.fine_tuning.jobs.cancel(f"ftjob-{other.pk}").status == "cancelled"
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.cancel(f"ftjob-{other.pk}")
    assert "already stopped" in caught.value.message
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.resume(f"ftjob-{other.pk}")  # only a paused job resumes


def test_an_ft_name_before_success_says_its_job_is_not_ready(
    client: openai.OpenAI, alice: User
) -> None:
    job = make_job(alice, suffix="s")
    name = f"ft:starter:alice:s:{job.pk}"
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
    assert f"ftjob-{job.pk} is queued" in caught.value.message
    for wrong in (f"ft:starter:bob:s:{job.pk}", f"ft:other:alice:s:{job.pk}", "ft:x"):
        with pytest.raises(openai.NotFoundError) as caught:
            client.models.retrieve(wrong)
        assert "does not exist" in caught.value.message


def test_a_succeeded_jobs_ft_name_is_a_model(client: openai.OpenAI, alice: User) -> None:
    job = make_job(alice, suffix="s", status=Job.Status.COMPLETED, finished_at=timezone.now())
    Job.objects.filter(pk=job.pk).update(output_model=job.base_model)
    name = f"ft:starter:alice:s:{job.pk}"
    found = client.models.retrieve(name)
    assert found.id == name and found.created == int(
        Job.objects.get(pk=job.pk).finished_at.timestamp()
    )
    assert name in [m.id for m in client.models.list().data]
    assert client.fine_tuning.jobs.retrieve(f"ftjob-{job.pk}").fine_tuned_model == name


def test_a_deployment_may_not_take_an_ft_name(alice: User) -> None:
    entry = make_job(alice).base_model
    with pytest.raises(DeploymentError, match="starts with 'ft:'"):
        deploy(alice, entry, "ft:starter:alice::1")


# --- the hyperparameter table --------------------------------------------------------------------


def test_auto_keeps_the_defaults_and_numbers_map_through_the_table() -> None:
    assert console_hyperparameters({"n_epochs": "auto", "batch_size": "auto"}, "cpu") == {}
    mapped = console_hyperparameters(
        {
            "n_epochs": 2,
            "batch_size": 4,
            "learning_rate_multiplier": 0.5,
            "eval_interval": 5,
            "eval_samples": 16,
            "compute_multiplier": 0.5,
            "reasoning_effort": "high",
        },
        "cpu",
        seed=7,
    )
    assert mapped == {
        "epochCount": 2,
        "batchSize": 16,  # 4 prompts × 4 answers each (8 × 0.5)
        "learningRate": 0.0005,
        "evalInterval": 5,
        "evalSamples": 16,
        "trainingSamplePerPrompt": 4,
        "inferenceMaxTokens": 96,
        "seed": 7,
    }
    from jobs.training.hyperparameters import defaults

    shown = openai_hyperparameters({**defaults("cpu"), **mapped}, "cpu")
    assert shown == {
        "n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5, "eval_interval": 5,
        "eval_samples": 16, "compute_multiplier": 0.5, "reasoning_effort": "high",
    }  # fmt: skip


def test_the_mapping_refuses_what_is_not_an_object() -> None:
    with pytest.raises(HyperparameterProblem):
        console_hyperparameters(json.loads("[1]"), "cpu")
    assert Dataset.objects.count() == 0  # a pure function: touched nothing
