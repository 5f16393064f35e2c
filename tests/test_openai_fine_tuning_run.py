"""Coming from OpenAI, end to end: the official `openai` client, with only `base_url` and
`api_key` changed, uploads data, creates a reinforcement job on the starter model with a `multi`
grader (python + string_check), watches its events, pauses and resumes it, lets it succeed, lists
its checkpoints and calls the tuned model and a checkpoint by their `ft:` names. Real Daphne, real
Redis and a real `gpu` Celery worker train it."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import openai
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from jobs.datasets.storage import iter_rows
from jobs.models import Checkpoint, Dataset, Job
from playground.models import InvocationLog
from rewards.models import RewardFunction
from rftconsole.models import ApiKeyScope
from rftconsole.processes.supervisor import Supervisor
from rftconsole.services import create_api_key
from tests.support.stack import serving_v1

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

GRADE = """
def grade(sample, item):
    text = sample["output_text"]
    answer = text.split("####")[-1].strip() if "####" in text else None
    return 1.0 if answer == item["reference_answer"]["final_answer"] else 0.0
"""
GRADER = {
    "type": "multi",
    "name": "arithmetic",
    "graders": {
        "exact": {"type": "python", "name": "exact", "source": GRADE},
        "format": {
            "type": "string_check",
            "name": "format",
            "input": "{{sample.output_text}}",
            "reference": "####",
            "operation": "like",
        },
    },
    "calculate_output": "0.8 * exact + 0.2 * format",
}
# 24 rows / 4 prompts per step = 6 steps in one epoch; validation (and a checkpoint) every 2.
HYPERPARAMETERS = {"n_epochs": 1, "batch_size": 4, "eval_interval": 2, "eval_samples": 8}


@pytest.fixture(scope="module")
def server(
    live_stack: Supervisor, django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with serving_v1(tmp_path_factory.mktemp("daphne")) as url:
        yield url


@pytest.fixture
def trainer(alice: User, starter_artifacts: Path) -> User:
    call_command("bootstrap_starter", "--no-progress", "--user", "alice", stdout=io.StringIO())
    return alice


def client_for(server: str, user: User) -> openai.OpenAI:
    key = create_api_key(user, "ft", ApiKeyScope.API)[1]
    return openai.OpenAI(base_url=server, api_key=key, max_retries=0, timeout=120)


def jsonl(user: User, dataset: str, count: int) -> bytes:
    rows = iter_rows(Dataset.objects.get(owner=user, name=dataset).path)
    return b"".join(json.dumps(row).encode() + b"\n" for row in islice(rows, count))


def wait_for(client: openai.OpenAI, job_id: str, statuses: set[str], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        assert job.status != "failed", job.error
        time.sleep(1)
    raise AssertionError(f"{job_id} still {job.status} after {timeout} s")


def all_events(client: openai.OpenAI, job_id: str) -> list[Any]:
    events, after = [], None
    while True:
        page = client.fine_tuning.jobs.list_events(job_id, limit=7, after=after)
        events += page.data
        if not page.has_more:
            return events
        after = page.data[-1].id


def test_an_openai_script_runs_a_reinforcement_job_here(
    server: str, trainer: User, bob: User
) -> None:
    client = client_for(server, trainer)
    train = client.files.create(
        file=("train.jsonl", jsonl(trainer, "arithmetic-train", 24)), purpose="fine-tune"
    )
    valid = client.files.create(
        file=("valid.jsonl", jsonl(trainer, "arithmetic-validation", 8)), purpose="fine-tune"
    )
    job = client.fine_tuning.jobs.create(
        model="starter",
        training_file=train.id,
        validation_file=valid.id,
        suffix="arith",
        seed=3,
        metadata={"team": "math"},
        method={
            "type": "reinforcement",
            "reinforcement": {"grader": GRADER, "hyperparameters": HYPERPARAMETERS},
        },
    )
    assert job.status in ("queued", "validating_files") and job.fine_tuned_model is None
    assert job.method.reinforcement.hyperparameters.batch_size == 4

    # Watch the events until a training step is reported, then pause at the next step.
    deadline = time.monotonic() + 300
    while not any(
        e.type == "metrics" and "train_reward_mean" in e.data for e in all_events(client, job.id)
    ):
        assert time.monotonic() < deadline, "no training step reported"
        time.sleep(1)
    client.fine_tuning.jobs.pause(job.id)
    paused = wait_for(client, job.id, {"paused", "succeeded"}, 300)
    assert paused.status == "paused", "the job ended before the pause took effect"
    console_job = Job.objects.get(pk=int(job.id.removeprefix("ftjob-")))
    assert Checkpoint.objects.filter(job=console_job, step=console_job.current_step).exists()
    # "queued", or already "validating_files" when the idle gpu worker took it at once
    assert client.fine_tuning.jobs.resume(job.id).status in ("queued", "validating_files")
    done = wait_for(client, job.id, {"succeeded"}, 600)

    # One metrics event per step, each step once across the pause; the status story is told.
    events = all_events(client, job.id)
    assert len({e.id for e in events}) == len(events)
    steps = [e.data["step"] for e in events if "train_reward_mean" in e.data]
    assert sorted(steps) == list(range(1, 7))
    messages = " ".join(e.message for e in events)
    assert "Pause requested" in messages and "Resumed" in messages
    assert any("valid_reward_mean" in e.data for e in events if e.type == "metrics")

    name = f"ft:starter:alice:arith:{console_job.pk}"
    assert done.fine_tuned_model == name and done.metadata == {"team": "math"}
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints and all(
        c.fine_tuned_model_checkpoint == f"{name}:ckpt-step-{c.step_number}" for c in checkpoints
    )
    assert name in [m.id for m in client.models.list().data]
    assert client.models.retrieve(name).id == name

    # The tuned model and a checkpoint answer by name: no deploy click.
    prompt = [{"role": "user", "content": "What is 2 + 3? Answer after ####."}]
    for model in (name, checkpoints[-1].fine_tuned_model_checkpoint):
        answer = client.chat.completions.create(model=model, messages=prompt, max_tokens=16)
        assert answer.model == model and answer.choices[0].message.content
    assert InvocationLog.objects.filter(owner=trainer, deployment=name).exists()
    with pytest.raises(openai.NotFoundError):  # bob cannot use alice's model
        client_for(server, bob).chat.completions.create(model=name, messages=prompt)

    # An ordinary console job: its grader is a reward in Rewards, its page shows it.
    reward = console_job.reward_version.reward
    assert reward.kind == RewardFunction.Kind.OPENAI_GRADER and reward.owner == trainer
    browser = Client()
    browser.force_login(trainer)
    assert reward.name in browser.get("/rewards/").content.decode()
    assert browser.get(f"/jobs/{console_job.pk}/").status_code == 200


def test_the_wizards_checks_refuse_a_job_that_cannot_run(server: str, trainer: User) -> None:
    client = client_for(server, trainer)
    train = client.files.create(
        file=("small.jsonl", jsonl(trainer, "arithmetic-train", 6)), purpose="fine-tune"
    )
    before = (Job.objects.count(), RewardFunction.objects.count())
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(
            model="starter",
            training_file=train.id,
            method={
                "type": "reinforcement",
                "reinforcement": {"grader": GRADER, "hyperparameters": {"batch_size": 8}},
            },
        )
    assert caught.value.body["param"] == "training_file"
    assert "fewer than one batch" in caught.value.message
    assert (Job.objects.count(), RewardFunction.objects.count()) == before


def test_a_job_the_queue_cannot_take_is_a_503_and_leaves_nothing(
    server: str, trainer: User, tmp_path: Path
) -> None:
    body = {
        "model": "starter",
        "training_file": f"file-{Dataset.objects.get(owner=trainer, name='arithmetic-train').pk}",
        "method": {"type": "reinforcement", "reinforcement": {"grader": GRADER}},
    }
    before = (Job.objects.count(), RewardFunction.objects.count())
    # The same console with its queue (Redis) unreachable: nothing listens on port 9.
    with (
        serving_v1(tmp_path, REDIS_URL="redis://127.0.0.1:9/0") as cut_off,
        pytest.raises(openai.InternalServerError) as caught,
    ):
        client_for(cut_off, trainer).fine_tuning.jobs.create(**body)
    assert caught.value.status_code == 503 and caught.value.code == "queue_unavailable"
    assert (Job.objects.count(), RewardFunction.objects.count()) == before
    created = client_for(server, trainer).fine_tuning.jobs.create(**body)  # control: accepted
    # queued, or already picked up by the idle gpu worker by the time the reply is written
    assert created.status in ("queued", "validating_files")
    client_for(server, trainer).fine_tuning.jobs.cancel(created.id)
    # Wait for the worker to finish with it: its last writes must not meet the test's teardown,
    # which empties every table (on PostgreSQL the two deadlocked once).
    wait_for(client_for(server, trainer), created.id, {"cancelled"}, 300)
