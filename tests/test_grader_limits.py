"""Graders stay bounded whatever a user configures: a regex cannot stall a process (RE2), and a
JSON Schema cannot make the server fetch a URL (no remote $ref), from a config or a dataset row."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from jsonschema.validators import validator_for

from playground.sessions import score_answer
from rewards.graders.registry import run_grader
from rewards.graders.safe_schema import NO_FETCH, SchemaProblem
from rewards.models import RewardFunction, RewardTest
from rewards.tasks import run_reward_test

# Catastrophic backtracking on Python's `re`: `{1,26}` took 1.7 s, `{1,40}` would take hours.
REDOS = r"^(?:[\s\S]|[\s\S]){1,40}\x00"
LONG_TEXT = "a" * 100_000
LOCAL_SCHEMA = {
    "$defs": {"positive": {"type": "integer", "minimum": 1}},
    "type": "object",
    "properties": {"count": {"$ref": "#/$defs/positive"}},
    "required": ["count"],
}


def post(client: Client, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, body, content_type="application/json")


def save_builtin(client: Client, name: str, config: dict[str, Any]) -> Any:
    return post(client, "/api/rewards/", {"name": name, "kind": "builtin", "config": config})


def bench_results(client: Client, reward_id: int, samples: list[dict[str, Any]]) -> list[dict]:
    """The reward test endpoint, with its Celery task run here (what a worker does)."""
    response = post(client, f"/api/rewards/{reward_id}/run/", {"samples": samples})
    assert response.status_code == 202, response.json()
    run_reward_test(response.json()["id"])
    test = RewardTest.objects.get(pk=response.json()["id"])
    assert test.status == RewardTest.Status.DONE, test.error
    return test.results


def timed(action: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


# --- Regex denial of service ---------------------------------------------------------------


def test_the_redos_pattern_finishes_at_once_in_the_grader() -> None:
    config = {"grader": "string_check", "operation": "regex", "pattern": REDOS}
    grade, seconds = timed(lambda: run_grader(config, LONG_TEXT, {}))
    assert seconds < 1.0 and grade.score == 0.0
    ending = run_grader(config, "a" * 30 + "\x00", {})  # RE2 still matches what it should
    assert ending.score == 1.0


@pytest.mark.parametrize(("output", "score"), [("Paris 2024", 1.0), ("Paris", 0.0)])
def test_a_normal_regex_scores_as_before(output: str, score: float) -> None:
    config = {"grader": "string_check", "operation": "regex", "pattern": r"\b\d{4}$"}
    assert run_grader(config, output, {}).score == score


def test_a_saved_redos_reward_scores_at_once_in_the_playground_and_the_test_bench(
    alice: User, alice_client: Client
) -> None:
    config = {"grader": "string_check", "operation": "regex", "pattern": REDOS}
    response = save_builtin(alice_client, "redos", config)
    assert response.status_code == 201, response.json()
    reward = RewardFunction.objects.get(pk=response.json()["id"])

    # The playground scores in the web process.
    result, seconds = timed(lambda: score_answer(reward.latest_version(), LONG_TEXT, {}))
    assert seconds < 1.0 and result.score == 0.0 and result.error is None

    assert score_answer(reward.latest_version(), "b\x00", {}).score == 1.0  # it still matches

    # The test bench scores on a worker. (A NUL cannot be sent in JSON: PostgreSQL cannot store
    # it, so the strict parser refuses it; the match is shown by the playground above.)
    samples = [{"row": {}, "output_text": LONG_TEXT}, {"row": {}, "output_text": "b" + "a" * 30}]
    results, seconds = timed(lambda: bench_results(alice_client, reward.pk, samples))
    assert seconds < 1.0
    assert [(r["score"], r["error"]) for r in results] == [(0.0, None), (0.0, None)]
    refused = post(alice_client, f"/api/rewards/{reward.pk}/run/", {"samples": [
        {"row": {}, "output_text": "b\x00"}
    ]})  # fmt: skip
    assert refused.status_code == 400 and "NUL character" in refused.content.decode()


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        (r"(\w+) \1", "backreferences"),
        (r"foo(?=bar)", "lookaround"),
        ("a" * 1001, "the limit is 1,000"),
        (r"(?:\w+\s+){1,400}", "too complex"),
    ],
)
def test_a_pattern_re2_will_not_run_is_refused_at_save_with_the_reason(
    alice_client: Client, pattern: str, words: str
) -> None:
    config = {"grader": "string_check", "operation": "regex", "pattern": pattern}
    response = save_builtin(alice_client, "bad-regex", config)
    assert response.status_code == 400
    assert words in " ".join(response.json()["config"])
    assert not RewardFunction.objects.filter(name="bad-regex").exists()
    # Control: the same reward with a pattern RE2 accepts is saved.
    config["pattern"] = r"(\w+) \w+"
    assert save_builtin(alice_client, "good-regex", config).status_code == 201


def test_a_refused_pattern_from_a_row_is_a_row_error_not_a_crash(alice: User) -> None:
    # With no `pattern`, the regex is the row's reference: it can only be checked per row.
    config = {"grader": "string_check", "operation": "regex", "case_sensitive": True}
    from rewards.services import create_reward

    version = create_reward(alice, "row-regex", "builtin", config=config)
    bad = score_answer(version, "abab", {"reference_answer": r"(ab)\1"})
    assert bad.score == 0.0 and "backreferences" in (bad.error or "")
    good = score_answer(version, "abab", {"reference_answer": r"(ab){2}"})
    assert good.score == 1.0 and good.error is None


# --- SSRF through JSON Schema $ref ---------------------------------------------------------


class Listener(HTTPServer):
    """Counts every connection it accepts, before any request is read."""

    connections = 0

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1
        return True


class SchemaHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b'{"type": "object"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener(("127.0.0.1", 0), SchemaHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def remote(server: Listener) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/schema.json"


def test_the_listener_sees_a_plain_request(listener: Listener) -> None:
    # Control for every test below: a fetch, had one happened, would have been counted.
    with urllib.request.urlopen(remote(listener), timeout=5) as response:  # noqa: S310
        assert response.status == 200
    assert listener.connections == 1


def test_a_remote_ref_in_the_config_is_refused_at_save(
    alice_client: Client, listener: Listener
) -> None:
    config = {"grader": "json_schema", "schema": {"$ref": remote(listener)}}
    response = save_builtin(alice_client, "remote-ref", config)
    assert response.status_code == 400
    message = " ".join(response.json()["config"])
    assert f"Remote $ref is not allowed: {remote(listener)}" in message
    assert listener.connections == 0
    # Control: refs inside the schema itself are fine.
    local = {"grader": "json_schema", "schema": LOCAL_SCHEMA}
    assert save_builtin(alice_client, "local-ref", local).status_code == 201


def test_a_remote_ref_in_a_row_is_a_row_error_with_no_fetch(
    alice_client: Client, listener: Listener
) -> None:
    response = save_builtin(alice_client, "row-schema", {"grader": "json_schema"})
    assert response.status_code == 201, response.json()
    reward = RewardFunction.objects.get(pk=response.json()["id"])
    remote_row = {"schema": {"$ref": remote(listener)}}
    relative_row = {"schema": {"$id": remote(listener), "$ref": "other.json"}}
    samples = [
        {"row": remote_row, "output_text": '{"count": 3}'},
        {"row": relative_row, "output_text": '{"count": 3}'},
        {"row": {"schema": LOCAL_SCHEMA}, "output_text": '{"count": 3}'},
        {"row": {"schema": LOCAL_SCHEMA}, "output_text": '{"count": 0}'},
    ]
    results = bench_results(alice_client, reward.pk, samples)
    played = score_answer(reward.latest_version(), '{"count": 3}', remote_row)
    assert played.score == 0.0 and f"remote $ref is not allowed: {remote(listener)}" in (
        played.error or ""
    )
    assert results[0]["score"] == 0.0 and "remote $ref is not allowed" in results[0]["error"]
    assert results[1]["score"] == 0.0 and "remote $ref is not allowed" in results[1]["error"]
    assert [(r["score"], r["error"]) for r in results[2:]] == [(1.0, None), (0.3, None)]
    assert listener.connections == 0


def test_the_registry_refuses_a_fetch_even_past_the_schema_check(listener: Listener) -> None:
    # A ref the pre-check might not recognise still reaches `retrieve`, which refuses.
    schema = {"$id": remote(listener), "allOf": [{"$ref": "elsewhere.json"}]}
    checker = validator_for(schema)(schema, registry=NO_FETCH)
    with pytest.raises(Exception) as raised:  # noqa: PT011 - jsonschema wraps it
        checker.is_valid({})
    cause: BaseException | None = raised.value
    while cause is not None and not isinstance(cause, SchemaProblem):
        cause = cause.__cause__
    assert cause is not None and "remote $ref is not allowed" in str(cause)
    assert listener.connections == 0


def test_a_schema_pattern_runs_on_re2(alice_client: Client) -> None:
    slow = {"type": "object", "properties": {"s": {"pattern": r"^(?:a|a)*$\x00"}}}
    grade, seconds = timed(
        lambda: run_grader(
            {"grader": "json_schema", "schema": slow}, f'{{"s": "{"a" * 5000}"}}', {}
        )
    )
    assert seconds < 1.0 and grade.score == 0.3
    named = {"patternProperties": {"^x_": {"type": "integer"}}, "additionalProperties": False}
    config = {"grader": "json_schema", "schema": named}
    assert run_grader(config, '{"x_a": 1}', {}).score == 1.0
    assert run_grader(config, '{"y": 1}', {}).score == 0.3
    # A lookahead in a schema is refused at save, like one in string_check.
    bad = {"grader": "json_schema", "schema": {"properties": {"s": {"pattern": "a(?=b)"}}}}
    response = save_builtin(alice_client, "lookahead", bad)
    assert response.status_code == 400 and "lookaround" in " ".join(response.json()["config"])


# --- Fixed patterns on a model's answer ----------------------------------------------------


@pytest.mark.parametrize(
    ("config", "output", "score"),
    [
        ({"grader": "json_fields"}, "```" + " " * 100_000 + "x", 0.0),
        ({"grader": "final_answer_match"}, "####" + " " * 100_000, 0.0),
        ({"grader": "number_match"}, "####" + " " * 100_000, 0.0),
        ({"grader": "json_fields"}, '```json\n{"a": 1}\n```', 1.0),
        ({"grader": "final_answer_match"}, "#### $ 1", 1.0),
    ],
)
def test_our_own_patterns_are_linear_on_a_hostile_answer(
    config: dict[str, Any], output: str, score: float
) -> None:
    # Before: "```" + 2,000 spaces took 5 s in json_fields; "####" + spaces took minutes.
    reference = {"a": 1} if config["grader"] == "json_fields" else "1"
    grade, seconds = timed(lambda: run_grader(config, output, {"reference_answer": reference}))
    assert seconds < 1.0 and grade.score == score


# --- Work that grows without a fetch or a regex ----------------------------------------------


def doubling_schema(levels: int) -> dict[str, Any]:
    """Each level an anyOf over two refs to the next, ending in a type no object has: every
    branch fails, so all are tried, and the work doubles per level (30 levels: days)."""
    defs = {
        f"a{i}": {"anyOf": [{"$ref": f"#/$defs/a{i + 1}"}, {"$ref": f"#/$defs/a{i + 1}"}]}
        for i in range(levels)
    }
    defs[f"a{levels}"] = {"type": "string"}
    return {"$defs": defs, "$ref": "#/$defs/a0"}


ANSWER = '{"n": 7}'


def test_a_schema_whose_work_doubles_per_level_stops_at_its_budget(alice_client: Client) -> None:
    """The red team's schema from a dataset row: a row error, in the playground (the web process)
    and on a worker, instead of hours of one process's time."""
    response = save_builtin(alice_client, "doubling", {"grader": "json_schema"})
    reward = RewardFunction.objects.get(pk=response.json()["id"])
    bomb, small = {"schema": doubling_schema(30)}, {"schema": doubling_schema(3)}
    played, seconds = timed(lambda: score_answer(reward.latest_version(), ANSWER, bomb))
    assert played.score == 0.0 and "more than 10,000 checks" in (played.error or "")
    assert seconds < 5  # a day's work, stopped: the budget is spent in about 0.1 s
    samples = [{"row": row, "output_text": ANSWER} for row in (bomb, small)]
    results = bench_results(alice_client, reward.pk, samples)
    assert "more than 10,000 checks" in results[0]["error"]
    assert (results[1]["score"], results[1]["error"]) == (0.3, None)  # small: judged, no error


def test_a_schema_that_refers_to_itself_without_end_is_a_clear_problem() -> None:
    """A RecursionError ended the whole test before; now it is that row's error."""
    grader = {"grader": "json_schema"}
    with pytest.raises(SchemaProblem, match="refers to itself without end"):
        run_grader(grader, '{"x": 1}', {"schema": {"$ref": "#"}})
    tree = {"type": "object", "properties": {"child": {"$ref": "#"}}}  # recursion that ends
    assert run_grader(grader, '{"child": {"child": {}}}', {"schema": tree}).score == 1.0


def test_a_pattern_that_would_compile_to_a_huge_program_is_refused_before_it_is_built(
    alice_client: Client,
) -> None:
    """Building it took a second of the web process (holding the GIL) on every attempt; it is
    now refused by a first compile with too little memory to build it ("far more")."""
    huge = r"(?i)[\pL\pN\pM\pS]{999}x"
    config = {"grader": "string_check", "operation": "regex", "pattern": huge}
    response = post(alice_client, "/api/rewards/validate/", {"kind": "builtin", "config": config})
    assert "too complex (far more RE2 instructions" in response.content.decode()
    config["pattern"] = r"(?:\w+\s+){1,250}end"  # near the limit: built and used
    assert save_builtin(alice_client, "near-limit", config).status_code == 201
