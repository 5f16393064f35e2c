"""The registry of built-in graders, by the name a reward version's config uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rewards.graders import configurable as extra
from rewards.graders.configurable import evaluate_formula
from rewards.graders.simple import Grade, Row, final_answer_match, json_fields, support_policy

Grader = Callable[..., Grade]


def multi(output: str, row: Row, **options: Any) -> Grade:
    """Run named graders and combine their scores with `formula` (here, beside the registry it
    looks them up in)."""
    scores: dict[str, float] = {}
    grade = Grade(0.0)
    for name, spec in options.get("graders", {}).items():
        spec = dict(spec)
        grader = GRADERS[spec.pop("grader")]
        scores[name] = grader(output, row, **spec).score
        grade.component(name, scores[name])
    grade.score = evaluate_formula(options.get("formula", " + ".join(scores) or "0"), scores)
    return grade


GRADERS: dict[str, Grader] = {
    "final_answer_match": final_answer_match,
    "json_fields": json_fields,
    "support_policy": support_policy,
    "string_check": extra.string_check,
    "number_match": extra.number_match,
    "json_schema": extra.json_schema,
    "text_similarity": extra.text_similarity,
    "multi": multi,
}


def run_grader(config: dict[str, Any], output: str, row: Row) -> Grade:
    options = {key: value for key, value in config.items() if key != "grader"}
    return GRADERS[config["grader"]](output, row, **options)
