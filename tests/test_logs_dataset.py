"""Invocation logs become training data: Bedrock-style metadata filters choose the requests, each
one turns into a row (prompt, optional response as reference, feedback, metadata), and nobody ever
sees or builds from another user's logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from jobs.datasets.importer import DatasetError
from jobs.models import Dataset
from playground.logs import LogFilter, LogFilterError, dataset_from_logs, filter_logs
from playground.models import InvocationLog


@pytest.fixture
def data_dir(settings: Any, tmp_path: Path) -> Path:
    """A data dir of the test's own, so "no file remains" means this test's files."""
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


def log(
    owner: User,
    question: str = "2+2?",
    answer: str = "4",
    *,
    metadata: dict[str, Any] | None = None,
    feedback: str = "",
    deployment: str = "support-bot",
    messages: list[dict[str, Any]] | None = None,
) -> InvocationLog:
    request = {
        "model": deployment,
        "messages": messages or [{"role": "user", "content": question}],
        "temperature": 0.7,
    }
    return InvocationLog.objects.create(
        owner=owner,
        deployment=deployment,
        request=request,
        response_text=answer,
        request_metadata=metadata or {},
        feedback=feedback,
        prompt_tokens=5,
        completion_tokens=1,
        latency_ms=12.5,
    )


def ids(logs: Any) -> set[int]:
    return {entry.pk for entry in logs}


def rows_of(dataset: Dataset) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(dataset.path).read_text().splitlines()]


def stored_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "datasets").rglob("*") if p.is_file()]


def equals(key: str, value: str) -> LogFilter:
    return LogFilter(key, "equals", value)


def not_equals(key: str, value: str) -> LogFilter:
    return LogFilter(key, "not_equals", value)


@pytest.fixture
def project_logs(alice: User) -> dict[str, InvocationLog]:
    return {
        "billing-gold": log(alice, metadata={"project": "billing", "tier": "gold"}),
        "billing-free": log(alice, metadata={"project": "billing", "tier": "free"}),
        "search-gold": log(alice, metadata={"project": "search", "tier": "gold"}),
        "untagged": log(alice),
    }


def test_equals_and_not_equals_joined_by_one_and_or_one_or(
    alice: User, project_logs: dict[str, InvocationLog]
) -> None:
    def chosen(filters: list[LogFilter], combine: str = "and") -> set[str]:
        found = ids(filter_logs(alice, filters, combine))  # type: ignore[arg-type]
        return {name for name, entry in project_logs.items() if entry.pk in found}

    assert chosen([equals("project", "billing")]) == {"billing-gold", "billing-free"}
    assert chosen([equals("project", "billing"), equals("tier", "gold")]) == {"billing-gold"}
    assert chosen([equals("project", "search"), equals("tier", "free")], "or") == {
        "search-gold",
        "billing-free",
    }
    # Not equals also matches logs that do not have the key at all.
    assert chosen([not_equals("project", "billing")]) == {"search-gold", "untagged"}
    assert chosen([not_equals("project", "billing"), equals("tier", "gold")]) == {"search-gold"}
    assert chosen([not_equals("project", "billing"), equals("tier", "gold")], "or") == {
        "billing-gold",
        "search-gold",
        "untagged",
    }
    assert chosen([]) == set(project_logs)


def test_the_deployment_narrows_the_logs(alice: User) -> None:
    support = log(alice, deployment="support-bot", metadata={"project": "x"})
    log(alice, deployment="math-tutor", metadata={"project": "x"})
    assert ids(filter_logs(alice, [equals("project", "x")], deployment="support-bot")) == {
        support.pk
    }


def test_keys_that_are_not_plain_metadata_keys_are_refused(alice: User) -> None:
    for key in ["", "a b", "x" * 65, "project'--", "a/b", "ключ", "123"]:
        with pytest.raises(LogFilterError, match="is not allowed"):
            filter_logs(alice, [equals(key, "v")])
    with pytest.raises(LogFilterError, match="operator 'contains' is unknown"):
        filter_logs(alice, [LogFilter("project", "contains", "b")])  # type: ignore[arg-type]
    with pytest.raises(LogFilterError, match="'and' or 'or'"):
        filter_logs(alice, [equals("project", "b")], "xor")  # type: ignore[arg-type]
    with pytest.raises(LogFilterError, match="at most 16"):
        filter_logs(alice, [equals("project", str(n)) for n in range(17)])


def test_keys_that_look_like_lookups_or_paths_are_only_ever_metadata_keys(alice: User) -> None:
    named_contains = log(alice, metadata={"contains": "x", "a__b": "y", "v1.2-beta": "z"})
    log(alice, metadata={"a": "x"})
    for key, value in [("contains", "x"), ("a__b", "y"), ("v1.2-beta", "z")]:
        assert ids(filter_logs(alice, [equals(key, value)])) == {named_contains.pk}
    assert ids(filter_logs(alice, [equals("isnull", "True")])) == set()


def test_seventeen_metadata_keys_or_non_text_values_are_refused(alice: User) -> None:
    with pytest.raises(ValueError, match="17 keys; at most 16"):
        log(alice, metadata={f"key{n}": "v" for n in range(17)})
    with pytest.raises(ValueError, match="must be text"):
        log(alice, metadata={"attempt": 3})
    with pytest.raises(ValueError, match="must be text"):
        log(alice, metadata={"nested": {"a": "b"}})
    unsaved = InvocationLog(owner=alice, deployment="d", request={}, request_metadata=["a"])
    with pytest.raises(ValueError, match="must be an object"):
        unsaved.clean()
    assert not InvocationLog.objects.exists()
    assert log(alice, metadata={f"key{n}": "v" for n in range(16)}).pk


def test_the_dataset_has_one_row_per_log_with_prompt_reference_feedback_and_metadata(
    alice: User, data_dir: Path
) -> None:
    rated = log(alice, "Capital of France?", "Paris", metadata={"project": "geo"}, feedback="up")
    plain = log(alice, "2+2?", "4", metadata={"project": "geo", "difficulty": "easy"})
    log(alice, "Ignored", metadata={"project": "other"})
    dataset, report = dataset_from_logs(
        alice, "geo-from-logs", [equals("project", "geo")], use_response_as_reference=True
    )
    assert dataset.source == Dataset.Source.LOGS and dataset.row_count == 2
    assert report.ok and dataset.owner == alice
    assert rows_of(dataset) == [
        {
            "messages": [{"role": "user", "content": "Capital of France?"}],
            "reference_answer": "Paris",
            "feedback": "up",
            "log_id": rated.pk,
            "deployment": "support-bot",
            "project": "geo",
        },
        {
            "messages": [{"role": "user", "content": "2+2?"}],
            "reference_answer": "4",
            "log_id": plain.pk,
            "deployment": "support-bot",
            "project": "geo",
            "difficulty": "easy",
        },
    ]
    assert "project = 'geo'" in dataset.description


def test_without_the_response_as_reference_rows_hold_only_the_prompt(
    alice: User, data_dir: Path
) -> None:
    log(alice, metadata={"project": "geo"})
    dataset, _ = dataset_from_logs(alice, "prompts-only", [equals("project", "geo")])
    (row,) = rows_of(dataset)
    assert "reference_answer" not in row and "feedback" not in row
    assert row["messages"] == [{"role": "user", "content": "2+2?"}]


def test_metadata_never_overwrites_the_prompt_or_the_reference(alice: User, data_dir: Path) -> None:
    log(alice, "Q?", "A", metadata={"messages": "x", "reference_answer": "y", "log_id": "z"})
    dataset, _ = dataset_from_logs(alice, "tagged", [], use_response_as_reference=True)
    (row,) = rows_of(dataset)
    assert row["messages"] == [{"role": "user", "content": "Q?"}]
    assert row["reference_answer"] == "A" and isinstance(row["log_id"], int)


def test_a_chat_ending_with_the_assistant_is_cut_after_the_last_user_turn(
    alice: User, data_dir: Path
) -> None:
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "The answer is"},
    ]
    log(alice, answer="4", messages=conversation)
    dataset, _ = dataset_from_logs(alice, "multi-turn", [], use_response_as_reference=True)
    (row,) = rows_of(dataset)
    assert row["messages"] == conversation[:4]
    assert row["reference_answer"] == "4"


def test_a_log_that_cannot_be_a_row_is_named_and_nothing_is_stored(
    alice: User, data_dir: Path
) -> None:
    log(alice)
    broken = log(alice, messages=[{"role": "assistant", "content": "Only me"}])
    with pytest.raises(DatasetError) as raised:
        dataset_from_logs(alice, "broken", [])
    assert raised.value.report is not None
    ((line, problem),) = raised.value.report.problems
    assert line == 2 and problem.startswith(f"log {broken.pk}: the last turn is from 'assistant'")
    assert not Dataset.objects.exists() and stored_files(data_dir) == []


def test_no_matching_logs_is_a_clear_error_and_stores_nothing(alice: User, data_dir: Path) -> None:
    log(alice, metadata={"project": "geo"})
    with pytest.raises(DatasetError, match="No invocation logs match these filters."):
        dataset_from_logs(alice, "empty", [equals("project", "nope")])
    assert not Dataset.objects.exists()
    assert not (data_dir / "datasets").exists() or stored_files(data_dir) == []


def test_bob_logs_never_reach_alice_filters_datasets_or_api(
    alice: User, bob: User, alice_client: Client, data_dir: Path
) -> None:
    mine = log(alice, "Mine?", metadata={"project": "shared-name"})
    bobs = log(bob, "Bob's secret?", metadata={"project": "shared-name"})
    assert ids(filter_logs(alice, [equals("project", "shared-name")])) == {mine.pk}
    assert ids(filter_logs(alice, [not_equals("project", "other")], "or")) == {mine.pk}
    dataset, _ = dataset_from_logs(alice, "mine", [equals("project", "shared-name")])
    assert [row["log_id"] for row in rows_of(dataset)] == [mine.pk]

    listed = alice_client.get("/api/invocation-logs/").json()
    assert [entry["id"] for entry in listed["results"]] == [mine.pk]
    assert alice_client.get(f"/api/invocation-logs/{bobs.pk}/").status_code == 404
    with pytest.raises(DatasetError, match="No invocation logs match"):
        dataset_from_logs(alice, "bobs", [equals("project", "shared-name")], deployment="x")


def test_the_api_lists_logs_filtered_by_metadata_and_feedback_a_page_at_a_time(
    alice: User, alice_client: Client
) -> None:
    liked = log(alice, metadata={"project": "geo"}, feedback="up")
    log(alice, metadata={"project": "geo"}, feedback="down")
    log(alice, metadata={"project": "math"}, feedback="up")

    def listed(query: str) -> set[int]:
        body = alice_client.get(f"/api/invocation-logs/?{query}").json()
        return {entry["id"] for entry in body["results"]}

    assert listed("metadata.project=geo&feedback=up") == {liked.pk}
    assert len(listed("metadata.project=geo")) == 2
    page = alice_client.get("/api/invocation-logs/?limit=1").json()
    assert page["count"] == 3 and len(page["results"]) == 1 and page["next"]
    assert page["results"][0]["request_metadata"] == {"project": "math"}  # newest first
    bad_key = alice_client.get("/api/invocation-logs/?metadata.a%20b=x")
    assert bad_key.status_code == 400 and "is not allowed" in bad_key.json()["detail"][0]
    assert alice_client.get("/api/invocation-logs/?feedback=meh").status_code == 400


def test_feedback_is_set_through_the_api_and_only_by_the_owner(
    alice: User, alice_client: Client, bob_client: Client
) -> None:
    entry = log(alice)

    def rate(client: Client, feedback: str) -> int:
        url = f"/api/invocation-logs/{entry.pk}/feedback/"
        answer = client.post(url, {"feedback": feedback}, content_type="application/json")
        entry.refresh_from_db()
        return answer.status_code

    assert rate(alice_client, "up") == 200 and entry.feedback == "up"
    assert rate(bob_client, "down") == 404 and entry.feedback == "up"
    assert rate(alice_client, "meh") == 400 and entry.feedback == "up"
    assert rate(alice_client, "") == 200 and entry.feedback == ""


def test_the_api_builds_a_dataset_from_logs_or_says_why_not(
    alice: User, bob: User, alice_client: Client, bob_client: Client, data_dir: Path
) -> None:
    log(alice, "Capital of France?", "Paris", metadata={"project": "geo"})
    log(alice, "2+2?", "4", metadata={"project": "math"})
    geo = [{"key": "project", "operator": "equals", "value": "geo"}]

    def build(client: Client, name: str = "geo", filters: Any = geo, **body: Any) -> Any:
        body = {"name": name, "filters": filters, **body}
        return client.post("/api/datasets/from-logs/", body, content_type="application/json")

    made = build(alice_client, use_response_as_reference=True)
    assert made.status_code == 201
    body = made.json()
    assert body["dataset"]["name"] == "geo" and body["dataset"]["row_count"] == 1
    assert body["dataset"]["source"] == "logs" and body["report"]["valid"]
    assert rows_of(Dataset.objects.get(pk=body["dataset"]["id"]))[0]["reference_answer"] == "Paris"

    refusals = {
        "already have a dataset named 'geo'": build(alice_client),
        "Filter 1: Metadata key 'a b' is not allowed": build(
            alice_client, "x", [{"key": "a b", "operator": "equals", "value": "v"}]
        ),
        "operator 'like' is unknown": build(
            alice_client, "x", [{"key": "p", "operator": "like", "value": "v"}]
        ),
        "filters.0.value: This field is required.": build(
            alice_client, "x", [{"key": "p", "operator": "equals"}]
        ),
        "No invocation logs match these filters.": build(alice_client, "x", deployment="tutor"),
        "No invocation logs match": build(bob_client),  # alice's logs are not bob's
    }
    for detail, answer in refusals.items():
        assert answer.status_code == 400, detail
        assert detail in answer.json()["detail"], detail
    assert list(Dataset.objects.values_list("owner__username", "name")) == [("alice", "geo")]
