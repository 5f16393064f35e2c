"""The registry of built-in graders, by the name a reward version's config uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rewards import graders_extra as extra
from rewards.graders import Grade, Row, final_answer_match, json_fields, support_policy

Grader = Callable[..., Grade]

GRADERS: dict[str, Grader] = {
    "final_answer_match": final_answer_match,
    "json_fields": json_fields,
    "support_policy": support_policy,
    "string_check": extra.string_check,
    "number_match": extra.number_match,
    "json_schema": extra.json_schema,
    "text_similarity": extra.text_similarity,
    "multi": extra.multi,
}


def run_grader(config: dict[str, Any], output: str, row: Row) -> Grade:
    options = {key: value for key, value in config.items() if key != "grader"}
    return GRADERS[config["grader"]](output, row, **options)
