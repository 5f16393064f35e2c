"""The sweep: every write route of the REST API (taken from the URL configuration, so a new route
is swept too) gets broken bodies, and each field of a valid body the wrong kind of value; each
answers a clear 400 (or its normal answer), never a 500, and stores nothing it refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import resolve
from rest_framework.settings import api_settings

from jobs.models import Dataset
from rftconsole.parsers import StrictJSONParser
from tests.support.reports import record
from tests.support.routes import fill, parameter_names, route_templates
from tests.test_bad_input import REPORT, counts
from tests.test_privacy_sweep import alices, filled  # noqa: F401 - alices is a fixture

pytestmark = pytest.mark.reliability

DEEP = b"[" * 100_000 + b"]" * 100_000
BROKEN_BODIES = {
    "100k nested [": (DEEP, "nested too deeply"),
    "100k nested {": (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    "NaN": (b'{"name": NaN}', "NaN and Infinity are not valid JSON numbers"),
    "-Infinity": (b'{"name": -Infinity}', "NaN and Infinity are not valid JSON numbers"),
    "1e400": (b'{"name": 1e400}', "the number 1e400 is too large"),
    "10**400": (b'{"name": 1' + b"0" * 400 + b"}", "(401 digits) is too large"),
    "not UTF-8": (b'{"name": "\xff\xfe"}', "JSON parse error"),
    "half a surrogate pair": (b'{"name": "\\ud800"}', "lone surrogate"),
    "a surrogate deep in an object": (b'{"config": {"pattern": "\\udc00"}}', "lone surrogate"),
    "a NUL character": (b'{"name": "a\\u0000b"}', "NUL character"),
    "cut off": (b'{"name": "x",', "JSON parse error"),
    "a list": (b"[1]", ""),
    "text": (b'"x"', ""),
    "null": (b"null", ""),
}
# Actions that take no body at all (the job's state says what happens): a body is ignored.
IGNORES_BODY = {
    "/api/jobs/<pk>/stop/", "/api/jobs/<pk>/pause/", "/api/jobs/<pk>/resume/",
    "/api/evaluations/<pk>/cancel/",
}  # fmt: skip


@pytest.fixture
def objects(request: pytest.FixtureRequest) -> dict[str, Any]:
    """One of each kind of alice's objects (test_privacy_sweep's), to fill routes with; her
    dataset gets four rows, so that it can be split, and her log a prompt, to build one from."""
    found = request.getfixturevalue("alices")
    dataset = found["dataset"]
    Path(dataset.path).write_text(Path(dataset.path).read_text() * 4)
    Dataset.objects.filter(pk=dataset.pk).update(row_count=4)
    found["log"].request = {"messages": [{"role": "user", "content": "hi"}]}
    found["log"].save(update_fields=["request"])
    return found


def valid_body(template: str, objects: dict[str, Any]) -> dict[str, Any]:
    """The route's valid body, naming alice's objects where it refers to them."""
    text = json.dumps(VALID_BODIES[template])
    for kind in ("model", "dataset", "reward"):
        text = text.replace(f"@{kind}@", objects[kind].name)
    ids = {f"@{kind}.pk@": obj.pk for kind, obj in objects.items()}  # routes that take ids
    ids["@version.pk@"] = objects["job"].reward_version_id
    ids["@checkpoint.pk@"] = objects["job"].checkpoints.get().pk
    for placeholder, pk in ids.items():
        text = text.replace(placeholder, str(pk))
    return json.loads(text)


def write_routes() -> list[tuple[str, str]]:
    """(method, route) for every POST/PUT/PATCH the REST API answers."""
    found = []
    for template in route_templates():
        if not template.startswith("/api/"):
            continue
        view = resolve(fill(template, {name: "1" for name in parameter_names(template)})).func
        actions = getattr(view, "actions", None)  # a viewset route: method → action
        methods = set(actions) if actions is not None else set(view.cls.http_method_names)
        if actions is None:
            methods = {m for m in methods if hasattr(view.cls, m)}
        found += [(m, template) for m in sorted(methods & {"post", "put", "patch"})]
    return found


def message_of(response: Any) -> str:
    try:
        return json.dumps(response.json())
    except ValueError:
        return ""


def test_the_rest_api_reads_json_with_the_strict_parser() -> None:
    """rftconsole/settings.py must name it: REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] starts with
    "rftconsole.parsers.StrictJSONParser" (DRF's own parser lets RecursionError through)."""
    assert api_settings.DEFAULT_PARSER_CLASSES[0] is StrictJSONParser


def test_the_sweep_finds_the_write_routes() -> None:
    routes = {route for _, route in write_routes()}
    assert len(routes) >= 12
    assert {"/api/rewards/validate/", "/api/datasets/", "/api/jobs/"} <= routes


@pytest.mark.parametrize(("method", "template"), write_routes())
def test_every_write_route_refuses_each_broken_body_with_a_400_and_stores_nothing(
    alice_client: Client, objects: dict[str, Any], method: str, template: str
) -> None:
    path = filled(template, objects)
    for attack, (body, problem) in BROKEN_BODIES.items():
        before = counts()
        response = getattr(alice_client, method)(path, body, content_type="application/json")
        changed = counts() != before
        record(*REPORT, f"{method.upper()} {template} with {attack}", response.status_code, changed)
        assert response.status_code < 500, (attack, response.content[:300])
        if template in IGNORES_BODY:
            continue
        assert response.status_code == 400, (attack, response.content[:300])
        assert problem in message_of(response), (attack, response.content[:300])
        assert len(message_of(response)) > 10 and not changed, (attack, response.content[:300])


# A body each route accepts (or refuses only for a reason no field's type causes); the sweep
# gives each field in turn every wrong kind of value. A new write route fails the sweep until
# it is taught here.
VALID_BODIES: dict[str, dict[str, Any]] = {
    "/api/datasets/": {"name": "d", "description": "", "dry_run": True},
    "/api/datasets/<pk>/split/": {"fraction": 0.5, "seed": 1},
    "/api/datasets/from-logs/": {
        "name": "from-logs",
        "description": "",
        "combine": "and",
        "deployment": "",
        "use_response_as_reference": True,
        "filters": [],
    },  # fmt: skip
    "/api/evaluations/": {
        "models": ["model:@model.pk@", "checkpoint:@checkpoint.pk@"],
        "dataset": "@dataset.pk@",
        "reward_version": "@version.pk@",
        "rows": 1,
        "job": None,
        "temperature": 0.5,
        "max_tokens": 8,
        "max_prompt_length": 64,
        "seed": 1,
        "name": "e",
    },  # fmt: skip
    "/api/invocation-logs/<pk>/feedback/": {"feedback": "up"},
    "/api/invocation-logs/import/": {"file": ""},
    "/api/jobs/": {
        "name": "j",
        "base_model": "@model@",
        "train_dataset": "@dataset@",
        "validation_dataset": None,
        "validation_split": 0.1,
        "reward": "@reward@",
        "pin_version": 1,
        "hyperparameters": {"batchSize": 8},
    },  # fmt: skip
    "/api/jobs/<pk>/use-checkpoint/": {"step": 1},
    "/api/keys/": {"name": "k", "scope": "inference"},
    "/api/models/": {"name": "m2", "description": "", "source": "org/model"},
    "/api/rewards/": {
        "name": "r2",
        "description": "",
        "kind": "builtin",
        "pass_threshold": 1.0,
        "config": {"grader": "string_check", "operation": "eq"},
        "code": "",
        "api_key": "",
    },  # fmt: skip
    "/api/rewards/<pk>/versions/": {
        "config": {},
        "code": "def grade(sample, item):\n    return 0.5\n",
        "pass_threshold": 0.5,
        "description": "d",
        "api_key": "",
    },  # fmt: skip
    "/api/rewards/<pk>/run/": {
        "version": 1,
        "rows": 1,
        "start": 0,
        "temperature": 1.0,
        "wait": 0,
        "samples": [{"output_text": "4", "row": {"messages": [], "reference_answer": "4"}}],
    },  # fmt: skip
    "/api/rewards/validate/": {
        "kind": "code",
        "config": {},
        "code": "def grade(s, i):\n  return 1",
    },
}
# What the valid body gets (the control: the sweep's 400s come from the wrong field).
VALID_ANSWERS = {
    "/api/datasets/": 400,  # a JSON body cannot carry the file: "Choose a JSONL file"
    "/api/datasets/from-logs/": 201,
    "/api/invocation-logs/import/": 400,  # as /api/datasets/: JSON cannot carry the file
    "/api/jobs/": 400,  # the pre-flight checks find the sweep's one-row dataset too small
    "/api/rewards/validate/": 200,
    "/api/invocation-logs/<pk>/feedback/": 200,
    "/api/rewards/<pk>/run/": 202,  # queued: the sweep runs no worker
    "/api/jobs/<pk>/use-checkpoint/": 400,  # the sweep's checkpoint holds no weights to register
}
HUGE = "@huge@"  # replaced by 1e400 in the text: json.dumps cannot write it
WRONG_VALUES: dict[str, Any] = {
    "a list": [1],
    "an object": {"a": 1},
    "text": "x",
    "null": None,
    "true": True,
    "-1": -1,
    "2**63": 2**63,  # fits a double, not a database integer
    "1e300": 1e300,
    "1e400": HUGE,
    "10**400": 10**400,
    "a megabyte of text": "x" * 1_000_000,
    "a list 150 deep": json.loads("[" * 150 + "]" * 150),
}


def fields_to_sweep() -> list[tuple[str, str]]:
    return [(route, field) for route, body in VALID_BODIES.items() for field in body]


def test_every_write_route_has_a_valid_body_to_sweep() -> None:
    untaught = {route for _, route in write_routes()} - set(VALID_BODIES) - IGNORES_BODY
    assert not untaught, f"add a valid body for {untaught} to VALID_BODIES"


@pytest.mark.parametrize("template", list(VALID_BODIES))
def test_each_valid_body_gets_its_answer(
    alice_client: Client, objects: dict[str, Any], template: str
) -> None:
    body = valid_body(template, objects)
    response = alice_client.post(filled(template, objects), body, content_type="application/json")
    expected = VALID_ANSWERS.get(template, 201)
    assert response.status_code == expected, response.content[:500]


@pytest.mark.parametrize(("template", "field"), fields_to_sweep())
def test_a_field_of_the_wrong_kind_is_refused_by_name_or_accepted_never_a_500(
    alice_client: Client, objects: dict[str, Any], template: str, field: str
) -> None:
    path = filled(template, objects)
    for kind, value in WRONG_VALUES.items():
        body = {**valid_body(template, objects), field: value}
        text = json.dumps(body).replace(json.dumps(HUGE), "1e400")
        before = counts()
        response = alice_client.post(path, text, content_type="application/json")
        changed = counts() != before
        answer = f"{response.status_code} {message_of(response)[:120]}"
        record(*REPORT, f"POST {template}: {field} = {kind}", answer, changed)
        assert response.status_code < 500, (kind, response.content[:300])
        assert message_of(response), (kind, response.content[:300])  # JSON, not an error page
        assert response.status_code != 400 or not changed, (kind, response.content[:300])


LISTS = ["/api/rewards/", "/api/models/", "/api/datasets/", "/api/reward-tests/", "/api/keys/"]


@pytest.mark.parametrize("path", LISTS)
def test_a_limit_past_any_integer_the_database_holds_is_read_as_the_largest_page(
    alice_client: Client, objects: dict[str, Any], path: str
) -> None:
    huge = alice_client.get(path, {"limit": "99999999999999999999999"})
    assert huge.status_code == 200, huge.content[:300]
    normal = alice_client.get(path, {"limit": "5"})  # the control: the same list, a small page
    assert normal.status_code == 200 and huge.json()["count"] == normal.json()["count"] > 0
