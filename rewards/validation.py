"""What is wrong with a reward before it is saved or run: specific messages per field.

Nothing here executes user code: custom code is only parsed (see `rewards.code`).
"""

from __future__ import annotations

from typing import Any

from rewards.code import CodeError, detect_interface
from rewards.graders.configurable import SIMILARITY, evaluate_formula
from rewards.graders.registry import GRADERS
from rewards.graders.safe_regex import pattern_problem
from rewards.graders.safe_schema import schema_problems
from rewards.judge.scoring import validate_judge_config

Problems = dict[str, list[str]]
SIMILARITY_METRICS = tuple(SIMILARITY)
STRING_OPERATIONS = ("eq", "ne", "contains", "regex")
MAX_CODE_CHARS = 200_000


def validate_reward(kind: str, config: dict[str, Any], code: str) -> Problems:
    if not isinstance(config, dict):
        return {"config": ["Must be a JSON object."]}
    if kind == "code":
        return _code_problems(code)
    if kind == "builtin":
        problems = _grader_problems(config, "")
        return {"config": problems} if problems else {}
    if kind == "judge":
        problems = validate_judge_config(config)
        return {"config": problems} if problems else {}
    return {"kind": [f"Unknown reward kind {kind!r}."]}


def _code_problems(code: str) -> Problems:
    if not code.strip():
        return {"code": ["The code is empty."]}
    if len(code) > MAX_CODE_CHARS:
        return {"code": [f"The code is {len(code):,} characters; the limit is {MAX_CODE_CHARS:,}."]}
    try:
        detect_interface(code)
    except CodeError as error:
        return {"code": [str(error)]}
    return {}


def _at(where: str, problem: str) -> str:
    """A nested grader's problem says which grader it is about."""
    return f"{where}: {problem}" if where else problem[0].upper() + problem[1:]


def _grader_problems(config: dict[str, Any], where: str) -> list[str]:
    name = config.get("grader")
    if name not in GRADERS:
        known = ", ".join(sorted(GRADERS))
        return [_at(where, f"unknown grader {name!r} (known: {known}).")]
    if name == "text_similarity" and config.get("metric", "fuzzy") not in SIMILARITY_METRICS:
        return [_at(where, f"metric must be one of {', '.join(SIMILARITY_METRICS)}.")]
    if name == "string_check":
        return _string_problems(config, where)
    if name == "json_schema" and "schema" in config:  # else each row's own, checked per row
        return [_at(where, problem) for problem in schema_problems(config["schema"])]
    if name == "number_match":
        return _number_problems(config, where)
    if name == "multi":
        return _multi_problems(config, where)
    return []


def _string_problems(config: dict[str, Any], where: str) -> list[str]:
    if config.get("operation", "eq") not in STRING_OPERATIONS:
        return [_at(where, f"operation must be one of {', '.join(STRING_OPERATIONS)}.")]
    if config.get("operation") == "regex" and "pattern" in config:
        problem = pattern_problem(config["pattern"])
        return [_at(where, problem)] if problem else []
    return []


def _number_problems(config: dict[str, Any], where: str) -> list[str]:
    problems = []
    for key in ("tolerance", "relative_tolerance"):
        value = config.get(key, 0)
        if not isinstance(value, int | float) or value < 0:
            problems.append(_at(where, f"{key} must be a number ≥ 0."))
    return problems


def _multi_problems(config: dict[str, Any], where: str) -> list[str]:
    graders = config.get("graders")
    if not isinstance(graders, dict) or not graders:
        return [_at(where, "a multi-grader needs 'graders': {name: grader config}.")]
    problems: list[str] = []
    for name, spec in graders.items():
        if not name.isidentifier():
            problems.append(_at(where, f"grader name {name!r} must be a plain identifier."))
        elif not isinstance(spec, dict):
            problems.append(_at(where, f"grader {name!r} must be an object."))
        elif spec.get("grader") == "multi":
            problems.append(_at(where, f"grader {name!r} cannot itself be a multi-grader."))
        else:
            problems += _grader_problems(spec, f"graders.{name}")
    formula = config.get("formula", " + ".join(graders))
    try:
        # Distinct sample values, so that a formula like a / (b - c) does not divide by zero here.
        samples = {name: 0.37 + 0.11 * i for i, name in enumerate(graders)}
        evaluate_formula(str(formula), samples)
    except (SyntaxError, ValueError, ZeroDivisionError, TypeError) as error:
        problems.append(_at(where, f"formula {formula!r}: {error}"))
    return problems
