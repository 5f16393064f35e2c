"""What a page costs in database queries does not grow with the number of rows it shows.

Each page is fetched through Django's test client with 3 and with 30 of its objects (jobs,
points, rewards, models, sessions, evaluations, deployments); both must take the same number of
queries, counted with Django's cache empty and again with what the page kept in it. Counts with 3 → 30 objects before this file (issue 22),
and now, with either:

    page               before     now     why it grew (fixed)
    jobs list          5 → 5      5       (25 jobs a page, points in one query)
    job page           15 → 29    10      one query per checkpoint for its model (and the
                                          job's model, reward and data joined: 4 fewer)
    rewards list       7 → 34     4       one query per reward for its latest version
    playground index   6 → 6      6
    evaluations list   3 → 3      3
    models list        3 → 3      3
    /v1/models         3 → 3      3
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from jobs.models import Checkpoint, Dataset, Job, JobEvent, ModelEntry
from playground.models import Deployment, Evaluation, PlaygroundSession
from rewards.models import RewardFunction, RewardVersion
from rftconsole.services import create_api_key
from tests.support.job_rows import add_points, make_job

pytestmark = pytest.mark.django_db

FEW, MANY = 3, 30


def jobs(owner: User, n: int) -> str:
    for i in range(n):
        job = make_job(owner, f"job-{i}", status=Job.Status.COMPLETED, output_step=4)
        add_points(job, range(1, 6), evals={0: 0.2, 4: 0.6})
    return "/jobs/"


def job_page(owner: User, n: int) -> str:
    job = make_job(owner, "one", status=Job.Status.TRAINING)
    add_points(job, range(1, n + 1), evals={step: 0.5 for step in range(0, n + 1, 2)})
    for step in range(2, n + 1, 2):
        Checkpoint.objects.create(job=job, step=step, path=f"/c/{step}", validation_reward=0.5)
        JobEvent.objects.create(job=job, status=Job.Status.TRAINING, message=f"Step {step}.")
    return f"/jobs/{job.pk}/"


def rewards(owner: User, n: int) -> str:
    for i in range(n):
        reward = RewardFunction.objects.create(owner=owner, name=f"reward-{i}", kind="builtin")
        for number in (1, 2):
            RewardVersion.objects.create(reward=reward, number=number, pass_threshold=0.5)
    return "/rewards/"


def base_and_tuned(owner: User, i: int) -> tuple[ModelEntry, ModelEntry]:
    base = ModelEntry.objects.create(
        owner=owner, name=f"base-{i}", source="/m", path="/m", status="ready"
    )
    tuned = ModelEntry.objects.create(
        owner=owner, name=f"tuned-{i}", source="/t", path="/t", status="ready", kind="tuned",
        base=base, is_adapter=True,
    )  # fmt: skip
    return base, tuned


def playground(owner: User, n: int) -> str:
    for i in range(n):
        base, tuned = base_and_tuned(owner, i)
        Dataset.objects.create(owner=owner, name=f"data-{i}", path="/d", row_count=10, size_bytes=1)
        reward = RewardFunction.objects.create(owner=owner, name=f"reward-{i}", kind="builtin")
        RewardVersion.objects.create(reward=reward, number=1)
        PlaygroundSession.objects.create(
            owner=owner, title=f"chat-{i}", model_ids=[base.pk, tuned.pk]
        )
    return "/playground/"


def evaluations(owner: User, n: int) -> str:
    dataset = Dataset.objects.create(
        owner=owner, name="data", path="/d", row_count=10, size_bytes=1
    )
    for i in range(n):
        Evaluation.objects.create(
            owner=owner, name=f"eval-{i}", dataset=dataset, dataset_name=dataset.name,
            reward_label="r v1", pass_threshold=1.0, status="done",
            candidates=[{"ref": "model:1", "label": "a"}, {"ref": "model:2", "label": "b"}],
        )  # fmt: skip
    return "/playground/evaluations/"


def models(owner: User, n: int) -> str:
    for i in range(n):
        base_and_tuned(owner, i)
    return "/models/"


PAGES: dict[str, Callable[[User, int], str]] = {
    "jobs list": jobs,
    "job page": job_page,
    "rewards list": rewards,
    "playground index": playground,
    "evaluations list": evaluations,
    "models list": models,
}


def queries(client: Client, url: str, **headers: str) -> tuple[int, int]:
    """Queries for the page with Django's cache empty, then with what the page kept in it (jobs at
    rest keep their rows there): neither may grow with the rows."""
    client.get(url, **headers)  # once first: what a page caches per process is not its cost
    counts = []
    cache.clear()
    for _ in ("cold", "warm"):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url, **headers)
        assert response.status_code == 200, (url, response.status_code)
        counts.append(len(captured))
    return counts[0], counts[1]


@pytest.mark.parametrize("page", PAGES)
def test_a_pages_query_count_does_not_grow_with_its_rows(
    page: str, alice: User, bob: User, alice_client: Client, bob_client: Client
) -> None:
    few = queries(bob_client, PAGES[page](bob, FEW))
    many = queries(alice_client, PAGES[page](alice, MANY))
    assert many == few, f"{page}: {few} queries with {FEW} objects, {many} with {MANY}"


def v1_models(owner: User, n: int) -> dict[str, str]:
    for i in range(n):
        base, tuned = base_and_tuned(owner, i)
        Deployment.objects.create(owner=owner, name=f"chat-{i}", model=base, status="active")
        job = make_job(owner, f"job-{i}", status=Job.Status.COMPLETED)
        job.output_model = tuned
        job.save(update_fields=["output_model"])
    _, raw_key = create_api_key(owner, "costs")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}


def test_v1_models_costs_the_same_for_3_and_30_models(alice: User, bob: User) -> None:
    few = queries(Client(), "/v1/models", **v1_models(bob, FEW))
    many = queries(Client(), "/v1/models", **v1_models(alice, MANY))
    assert many == few, f"/v1/models: {few} queries with {FEW} objects, {many} with {MANY}"
