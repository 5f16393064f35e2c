"""Reward templates are listed over the API and each one works as a starting point."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from rewards.library import STARTER_TEMPLATES, TEMPLATES
from rewards.scoring import score_batch
from rewards.services import create_from_template
from rewards.types import RewardResult, Sample
from tests.support.judge_server import JudgeServer, serve

BEDROCK_SEVEN = {
    "math-ground-truth",
    "format-constraints",
    "lambda-boilerplate",
    "judge-instruction-following",
    "judge-summarization",
    "judge-reasoning",
    "judge-rag-faithfulness",
}


def chat(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]


def score(alice: User, slug: str, rows_and_answers: list[tuple[dict, str]], **over: Any) -> list:
    version = create_from_template(alice, slug, overrides=over)
    samples = [Sample(str(i), answer, row) for i, (row, answer) in enumerate(rows_and_answers)]
    results: list[RewardResult] = score_batch(version, samples)
    assert all(r.error is None for r in results), [r.error for r in results]
    return [r.score for r in results]


@pytest.fixture
def judge_server() -> Iterator[JudgeServer]:
    with serve() as server:
        yield server


def test_the_api_lists_at_least_ten_templates_with_name_kind_and_description(
    alice_client: Client,
) -> None:
    listed = alice_client.get("/api/reward-templates/").json()
    assert len(listed) >= 10
    assert {t["slug"] for t in listed} >= BEDROCK_SEVEN
    assert {t["kind"] for t in listed} == {"code", "judge", "builtin", "openai_grader"}
    for template in listed:
        assert template["name"] and len(template["description"]) > 40


def test_each_starter_demo_task_has_its_template() -> None:
    assert set(STARTER_TEMPLATES) == {"arithmetic", "extraction", "support-tone"}


def test_one_template_shows_its_code_and_an_unknown_one_is_a_404(alice_client: Client) -> None:
    shown = alice_client.get("/api/reward-templates/math-ground-truth/").json()
    assert "def lambda_handler(event, context)" in shown["code"]
    assert alice_client.get("/api/reward-templates/no-such/").status_code == 404


def test_templates_need_a_signed_in_user(client: Client) -> None:
    assert client.get("/api/reward-templates/").status_code in {401, 403}


def test_math_ground_truth_rewards_the_right_number_after_the_marker(alice: User) -> None:
    row = {"messages": chat("2 + 3?"), "reference_answer": {"final_answer": "5"}}
    assert score(
        alice, "math-ground-truth", [(row, "2 + 3 = 5\n#### 5"), (row, "#### 6"), (row, "5")]
    ) == [
        1.0,
        0.1,
        0.0,
    ]


def test_format_constraints_counts_the_share_of_rules_met(alice: User) -> None:
    row = {
        "messages": chat("Reply."),
        "max_words": 6,
        "must_include": ["ticket"],
        "must_not": ["sorry"],
    }
    good, bad = "Your ticket is closed.", "Sorry, we are very very busy today with other things."
    assert score(alice, "format-constraints", [(row, good), (row, bad)]) == [1.0, 0.0]


def test_the_lambda_boilerplate_runs_as_it_is(alice: User) -> None:
    row = {"messages": chat("Capital of France?"), "reference_answer": "Paris"}
    assert score(alice, "lambda-boilerplate", [(row, "It is Paris."), (row, "London")]) == [
        1.0,
        0.0,
    ]


def test_code_generation_runs_the_rows_unit_tests_in_the_sandbox(alice: User) -> None:
    row = {
        "messages": chat("Write add(a, b)."),
        "tests": ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"],
    }
    right = "```python\ndef add(a, b):\n    return a + b\n```"
    half = "def add(a, b):\n    return 5"
    looping = "def add(a, b):\n    while True:\n        pass"
    scores = score(alice, "code-unit-tests", [(row, right), (row, half), (row, looping)])
    assert scores == [1.0, 0.5, 0.0]


def test_the_sympy_template_accepts_equal_maths_in_any_spelling(alice: User) -> None:
    half = {"messages": chat("Half of one?"), "reference_answer": "1/2"}
    factored = {"messages": chat("Expand 2(x+2)."), "reference_answer": {"final_answer": "2x + 4"}}
    answers = [
        (half, "One half. #### 0.5"),
        (half, "#### 0.25"),
        (factored, "#### 2*(x + 2)"),
        (factored, "#### 2x + 2"),
        (half, "#### ((("),
    ]
    assert score(alice, "math-sympy", answers) == [1.0, 0.0, 1.0, 0.0, 0.0]


def test_json_extraction_checks_the_rows_schema_and_values(alice: User) -> None:
    row = {
        "messages": chat("Extract."),
        "reference_answer": {"name": "Ana", "age": 30},
        "schema": {"required": ["name", "age"], "properties": {"age": {"type": "integer"}}},
    }
    answers = [(row, '{"name": "Ana", "age": 30}'), (row, "Ana, 30")]
    assert score(alice, "json-extraction-schema", answers) == [1.0, 0.0]


def test_number_match_allows_the_configured_tolerance(alice: User) -> None:
    row = {"messages": chat("Pi?"), "reference_answer": "3.14159"}
    assert score(alice, "number-match", [(row, "#### 3.14"), (row, "#### 3.2")]) == [1.0, 0.0]


def test_semantic_similarity_prefers_a_paraphrase_to_an_unrelated_answer(alice: User) -> None:
    row = {"messages": chat("Summarise."), "reference_answer": "The cat sat on the mat."}
    close, far = score(
        alice,
        "semantic-similarity",
        [(row, "A cat was sitting on a mat."), (row, "Quarterly revenue rose by five percent.")],
    )
    assert close > 0.8 > 0.3 > far


@pytest.mark.parametrize(
    "slug", [t.slug for t in TEMPLATES if t.kind == "judge"], ids=lambda slug: slug
)
def test_each_judge_template_renders_its_placeholders_and_scores(
    alice: User, judge_server: JudgeServer, slug: str
) -> None:
    row = {
        "messages": chat("What does the refund policy say?"),
        "reference_answer": "Refunds within 30 days.",
        "context": "Refunds are accepted within 30 days of purchase.",
        "policy": "Cite the ticket number.",
    }
    judge_server.queue("Score: 8\nMostly right.")
    over = {"base_url": judge_server.url, "model": "judge", "backoff_seconds": 0.01}
    assert score(alice, slug, [(row, "Refunds: 30 days.")], **over) == [0.8]
    sent = judge_server.prompts()[0]
    assert "Refunds: 30 days." in sent and "{{" not in sent
    if slug == "judge-rag-faithfulness":
        assert "within 30 days of purchase" in sent
    if slug == "support-tone-policy":
        assert "Cite the ticket number." in sent
