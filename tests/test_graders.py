"""Built-in graders score the shapes Bedrock users actually store, and explain their score."""

from __future__ import annotations

import doctest

import pytest

import rewards.graders.simple
from rewards.graders.simple import final_answer_match, json_fields, support_policy


def test_the_grader_examples_in_the_docstrings_hold() -> None:
    result = doctest.testmod(rewards.graders.simple)
    assert result.attempted >= 8 and result.failed == 0


@pytest.mark.parametrize(
    ("output", "row", "score"),
    [
        (
            "so 48 + 24 = 72\n#### 72",
            {"reference_answer": "Natalia sold 48/2 = 24 ...\n#### 72"},
            1.0,
        ),
        ("#### 1,000", {"reference_answer": {"final_answer": "1000"}}, 1.0),
        ("#### $18", {"reference_answer": "...#### 18", "ground_truth": "18"}, 1.0),
        ("#### 7.0", {"reference_answer": 7}, 1.0),
        ("#### 8", {"reference_answer": {"final_answer": "7"}}, 0.0),
        ("7", {"reference_answer": {"final_answer": "7"}}, 0.0),
    ],
)
def test_final_answer_match_reads_every_reference_shape(
    output: str, row: dict, score: float
) -> None:
    assert final_answer_match(output, row).score == score


def test_json_fields_accepts_a_fenced_block_and_gives_partial_credit() -> None:
    row = {"reference_answer": {"name": "Ana", "age": 30, "city": "Oslo"}}
    assert json_fields('```json\n{"name": "Ana", "age": 30, "city": "Oslo"}\n```', row).score == 1.0
    wrong_city = json_fields('{"name": "Ana", "age": 30, "city": "Rome"}', row)
    assert wrong_city.score == pytest.approx(0.2 + 0.3 + 0.5 * 2 / 3)
    assert {c["name"]: c["value"] for c in wrong_city.components}["values"] == pytest.approx(2 / 3)
    assert json_fields("Name: Ana", row).score == 0.0
    assert json_fields("[1, 2]", row).score == 0.0


def test_support_policy_needs_politeness_and_the_ticket() -> None:
    row = {"reference_answer": {"ticket": "#4821"}}
    assert support_policy("Sorry! Ticket #4821 is with our team.", row).score == 1.0
    assert support_policy("Ticket #4821 noted.", row).score == 0.5
    assert support_policy("Thank you, we will check it.", row).score == 0.5
    assert support_policy("We will check it.", row).score == 0.0


def test_the_configurable_grader_examples_hold() -> None:
    import rewards.graders.configurable

    result = doctest.testmod(rewards.graders.configurable)
    assert result.attempted >= 5 and result.failed == 0


@pytest.mark.parametrize(
    ("config", "output", "row", "score"),
    [
        (
            {"grader": "string_check", "operation": "contains"},
            "It is Paris.",
            {"reference_answer": "paris"},
            1.0,
        ),
        ({"grader": "string_check", "operation": "ne"}, "Rome", {"reference_answer": "Paris"}, 1.0),
        ({"grader": "string_check", "operation": "regex", "pattern": r"^\d{4}$"}, "2024", {}, 1.0),
        (
            {"grader": "number_match", "tolerance": 0.5},
            "roughly 9.6 km",
            {"reference_answer": 10},
            1.0,
        ),
        (
            {"grader": "number_match"},
            "#### 1,000",
            {"reference_answer": {"final_answer": "999"}},
            0.0,
        ),
        (
            {"grader": "json_schema", "schema": {"type": "object", "required": ["a"]}},
            '{"a": 1}',
            {},
            1.0,
        ),
        (
            {"grader": "json_schema", "schema": {"type": "object", "required": ["a"]}},
            '{"b": 1}',
            {},
            0.3,
        ),
        (
            {"grader": "text_similarity", "metric": "rouge_l"},
            "the cat sat",
            {"reference_answer": "the cat sat"},
            1.0,
        ),
        (
            {
                "grader": "multi",
                "graders": {
                    "format": {"grader": "string_check", "operation": "regex", "pattern": "####"},
                    "correct": {"grader": "final_answer_match"},
                },
                "formula": "0.25 * format + 0.75 * correct",
            },
            "#### 8",
            {"reference_answer": "7"},
            0.25,
        ),
    ],
)
def test_configurable_graders_score_as_configured(
    config: dict, output: str, row: dict, score: float
) -> None:
    from rewards.graders.registry import run_grader

    assert run_grader(config, output, row).score == pytest.approx(score)


@pytest.mark.parametrize(
    "formula", ["__import__('os').system('id')", "format // 2", "open('x')", "unknown + 1"]
)
def test_a_formula_allows_only_arithmetic_on_named_scores(formula: str) -> None:
    from rewards.graders.configurable import evaluate_formula

    with pytest.raises(ValueError, match="not allowed in a formula"):
        evaluate_formula(formula, {"format": 1.0})


def test_a_misconfigured_grader_is_refused_and_an_old_one_errors_per_row(alice) -> None:  # type: ignore[no-untyped-def]
    from rewards.models import RewardFunction, RewardVersion
    from rewards.scoring import score_batch
    from rewards.services import RewardError, create_reward
    from rewards.types import Sample

    bad = {"grader": "string_check", "operation": "sounds_like"}
    with pytest.raises(RewardError, match="Operation must be one of eq, ne, contains, regex"):
        create_reward(alice, "bad", "builtin", config=bad)
    # A version stored before validation existed still scores without crashing the batch.
    reward = RewardFunction.objects.create(owner=alice, name="old", kind="builtin")
    version = RewardVersion.objects.create(reward=reward, number=1, config=bad)
    [result] = score_batch(version, [Sample("1", "x", {"reference_answer": "x"})])
    assert result.error == "ValueError: operation must be one of eq, ne, contains, regex"


# Sizes at which the unbounded versions took minutes of one core (a red-team probe measured
# 5 s for 2,000 spaces after "{{", 2 s for rouge_l on 4,000 words, >100 s for fuzzy on 20,000
# characters); bounded, each answers at once. The generous limit only keeps a regression from
# hanging the suite; the speed itself is not the point.
SLOW = 10.0


def _timed(work: object) -> float:
    import time

    started = time.perf_counter()
    work()  # type: ignore[operator]
    return time.perf_counter() - started


def test_a_template_with_an_unclosed_placeholder_is_read_in_linear_time() -> None:
    from rewards.openai_graders.templates import Context, TemplateError, render, template_problems

    context = Context("Paris", {"a": "x"})
    for text in ("{{" + " " * 20_000, "{{ " * 20_000):
        assert _timed(lambda text=text: template_problems(text)) < SLOW
        assert render(text, context) == text  # no placeholder: the text stays as it is
    # Control: placeholders still resolve, spaces and all, and attribute walks are refused.
    assert render("{{  item.a  }} / {{sample.output_text}}", context) == "x / Paris"
    with pytest.raises(TemplateError):
        render("{{item.__class__}}", context)


def test_the_quadratic_similarity_measures_read_a_bounded_prefix() -> None:
    from rewards.graders.configurable import SIMILARITY

    words = " ".join(["x"] * 40_000)
    letters = "".join(chr(0x4E00 + n % 101) for n in range(20_000))
    assert _timed(lambda: SIMILARITY["rouge_l"](words, words)) < SLOW
    assert _timed(lambda: SIMILARITY["fuzzy"](letters, letters[::-1])) < SLOW
    # Control: short texts score exactly as before.
    assert SIMILARITY["rouge_l"]("the cat sat", "the cat sat") == 1.0
    assert SIMILARITY["fuzzy"]("abcd", "abcd") == 1.0


@pytest.mark.parametrize("formula", ["-" * 900 + "s", "s" + "+s" * 600, "s" + "+s" * 200])
def test_a_formula_too_long_or_too_deep_is_refused_not_a_crash(formula: str) -> None:
    from rewards.graders.configurable import evaluate_formula

    with pytest.raises(ValueError, match="formula"):
        evaluate_formula(formula, {"s": 1.0})
    assert evaluate_formula("-s + 0.5 * s", {"s": 1.0}) == -0.5  # control
