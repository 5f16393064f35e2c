"""Every route that names an object, filled with one of alice's objects, refuses bob.

The routes come from the URL configuration, so a new page or API action is swept automatically;
a route with a parameter this file does not know fails the sweep until it is taught.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from jobs.models import Checkpoint, Dataset, Job, JobDraft, MetricPoint, ModelEntry, Rollout
from playground.models import InvocationLog
from rewards.models import RewardTest
from rewards.services import create_reward
from rftconsole.services import create_api_key
from tests.support.reports import record
from tests.support.routes import fill, parameter_names, route_templates

pytestmark = pytest.mark.reliability
REPORT = ("privacy-sweep", ("Route (alice's object)", "Bob's method", "Answer", "Leaked"))

SECRET = "alice-private-7f3a"  # in every name of hers: it must never show up for bob
# Parameters that do not name an owned object, and what to put there.
PUBLIC_VALUES = {"step": "basics", "slug": "math-ground-truth", "action": "stop", "fmt": "csv"}
# DRF router routes name their object `pk`; the prefix says which kind.
API_KINDS = {
    "/api/models/": "model",
    "/api/datasets/": "dataset",
    "/api/jobs/": "job",
    "/api/rewards/": "reward",
    "/api/reward-tests/": "test",
    "/api/keys/": "key",
    "/api/invocation-logs/": "log",
    "/api/deployments/": "deployment",
    "/api/evaluations/": "evaluation",
}


@pytest.fixture
def alices(alice: User, tmp_path: Path) -> dict[str, Any]:
    """One of each kind of object, owned by alice."""
    data = tmp_path / "rows.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    model = ModelEntry.objects.create(
        owner=alice, name=f"{SECRET}-model", status=ModelEntry.Status.READY, path=str(tmp_path),
        source="local",
    )  # fmt: skip
    dataset = Dataset.objects.create(
        owner=alice, name=f"{SECRET}-data", path=str(data), row_count=1, size_bytes=1
    )
    code = "def grade(sample, item):\n    return 1.0\n"
    version = create_reward(alice, f"{SECRET}-reward", "code", code=code)
    job = Job.objects.create(
        owner=alice, name=f"{SECRET}-job", base_model=model, train_dataset=dataset,
        reward_version=version, status=Job.Status.TRAINING,
    )  # fmt: skip
    MetricPoint.objects.create(job=job, kind="train", step=1, values={"reward_mean": 0.5})
    Rollout.objects.create(job=job, step=1, prompt=[], completions=[])
    checkpoint = Checkpoint.objects.create(job=job, step=1, path=str(tmp_path))
    objects = {
        "checkpoint": checkpoint,
        "model": model,
        "dataset": dataset,
        "reward": version.reward,
        "job": job,
        "test": RewardTest.objects.create(owner=alice, version=version, samples=[]),
        "draft": JobDraft.objects.create(owner=alice, name=f"{SECRET}-draft"),
        "key": create_api_key(alice, f"{SECRET}-key")[0],
        "log": InvocationLog.objects.create(
            owner=alice, deployment=f"{SECRET}-dep", request={"messages": []}, response_text="x"
        ),
    }
    try:
        from playground.models import Deployment

        objects["deployment"] = Deployment.objects.create(
            owner=alice, name=f"{SECRET}-deployment", model=model
        )
    except ImportError:  # deployments arrive with the endpoint issue
        pass
    from playground.models import PlaygroundSession

    objects["session"] = PlaygroundSession.objects.create(
        owner=alice, title=f"{SECRET}-session", model_ids=[model.pk]
    )
    from playground.models import Evaluation

    objects["evaluation"] = Evaluation.objects.create(
        owner=alice, name=f"{SECRET}-evaluation", dataset=dataset, dataset_name=dataset.name,
        reward_version=version, reward_label=str(version), pass_threshold=1.0,
        candidates=[{"ref": f"model:{model.pk}", "label": model.name}] * 2, progress_total=2,
    )  # fmt: skip
    return objects


def owned_routes() -> list[str]:
    # /v1/ takes API keys only (a session gets 401) and deployment names, not ids: bob's key
    # meeting alice's deployment is swept in tests/test_openai_endpoint.py.
    return [
        t
        for t in route_templates()
        if not t.startswith(("/admin/", "/v1/")) and set(parameter_names(t)) - set(PUBLIC_VALUES)
    ]


def filled(template: str, objects: dict[str, Any]) -> str:
    values = dict(PUBLIC_VALUES)
    for name in parameter_names(template):
        if name in values:
            continue
        kind = name.removesuffix("_id")
        if name == "pk":
            kind = next(k for prefix, k in API_KINDS.items() if template.startswith(prefix))
        assert kind in objects, f"teach the sweep what {name!r} in {template} names"
        values[name] = str(objects[kind].pk)
    return fill(template, values)


def test_the_sweep_covers_every_kind_of_object_route() -> None:
    routes = owned_routes()
    assert len(routes) >= 40
    for fragment in (
        "/datasets/<int:dataset_id>/",
        "/api/jobs/<pk>/metrics/",
        "/rewards/<int:reward_id>/",
    ):
        assert any(fragment in route for route in routes), fragment


@pytest.mark.parametrize("template", owned_routes())
def test_bob_gets_nothing_from_any_route_naming_alices_object(
    template: str, alices: dict[str, Any], bob_client: Client
) -> None:
    path = filled(template, alices)
    answers = {}
    for method in ("get", "post", "delete"):
        response = getattr(bob_client, method)(path)
        answers[method.upper()] = response.status_code
        leaked = SECRET in response.content.decode(errors="replace")
        record(*REPORT, template, method.upper(), response.status_code, "yes" if leaked else "no")
        assert response.status_code in {403, 404, 405}, f"{method.upper()} {path}"
        assert not leaked, f"{method.upper()} {path}"
    assert Job.objects.get(pk=alices["job"].pk).status == Job.Status.TRAINING
    for kind, obj in alices.items():
        assert type(obj).objects.filter(pk=obj.pk).exists(), f"{kind} deleted by {path}"


@pytest.mark.parametrize(
    "path", [t for t in route_templates() if not parameter_names(t) and not t.startswith("/admin/")]
)
def test_bob_never_sees_alices_names_in_a_list(
    path: str, alices: dict[str, Any], bob_client: Client
) -> None:
    response = bob_client.get(path)
    assert SECRET not in response.content.decode(errors="replace"), path
