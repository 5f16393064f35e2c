"""Run one OpenAI grader on one sample and item, answering OpenAI's `graders/run` shape.

string_check and text_similarity are our built-in graders (in-process); python goes through the
sandbox (rewards.scoring, never this process); score_model and label_model go to a judge
(model_graders); multi runs its parts and combines them with `calculate_output`. Whatever goes
wrong in a grader becomes one of OpenAI's error flags with reward 0, never an exception.
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from rewards.graders.configurable import evaluate_formula
from rewards.graders.registry import run_grader
from rewards.openai_graders.model_graders import run_model_grader
from rewards.openai_graders.outcome import Outcome
from rewards.openai_graders.templates import Context, TemplateError, render
from rewards.openai_graders.validation import METRICS, formula_text
from rewards.scoring import run_code_reporting
from rewards.types import Sample

# OpenAI's string_check operations, as our string_check grader runs them: like is "contains"
# (case-sensitive), ilike is "contains" ignoring case; eq and ne are case-sensitive.
OPERATIONS = {"eq": "eq", "ne": "ne", "like": "contains", "ilike": "contains"}


def run_openai_grader(
    grader: dict[str, Any], model_sample: str, item: dict[str, Any], owner: AbstractBaseUser
) -> dict[str, Any]:
    """OpenAI's GraderRunResponse for a validated grader (see validation.validate_grader)."""
    started = time.monotonic()
    outcome = grade(grader, Context(model_sample, item), owner)
    return {
        "reward": outcome.reward,
        "metadata": {
            "name": grader["name"],
            "type": grader["type"],
            "errors": outcome.errors_body(),
            "execution_time": round(time.monotonic() - started, 6),
            "scores": dict(outcome.sub_rewards),
            "token_usage": outcome.token_usage(),
            "sampled_model_name": outcome.sampled_model_name,
        },
        "sub_rewards": outcome.sub_rewards,
        "model_grader_token_usage_per_model": outcome.usage,
    }


def grade(grader: dict[str, Any], context: Context, owner: AbstractBaseUser) -> Outcome:
    kind = grader["type"]
    if kind == "multi":
        return _multi(grader, context, owner)
    if kind in ("score_model", "label_model"):
        return run_model_grader(grader, context, owner)
    if kind == "python":
        return _python(grader, context)
    return _builtin(grader, context)


def builtin_config(grader: dict[str, Any], reference: str) -> dict[str, Any]:
    """Our built-in grader's config for a string_check or text_similarity grader."""
    if grader["type"] == "string_check":
        operation = grader["operation"]
        return {
            "grader": "string_check",
            "operation": OPERATIONS[operation],
            "case_sensitive": operation != "ilike",
            "reference": reference,
        }
    metric = METRICS[grader["evaluation_metric"]]
    return {"grader": "text_similarity", "metric": metric, "reference": reference}


def _builtin(grader: dict[str, Any], context: Context) -> Outcome:
    outcome = Outcome()
    try:
        text, reference = render(grader["input"], context), render(grader["reference"], context)
    except TemplateError as error:
        return outcome.fail(error.kind, str(error))
    try:
        outcome.reward = float(
            run_grader(builtin_config(grader, reference), text, context.item).score
        )
    except (ValueError, TypeError, OSError) as error:  # e.g. the embedding model is missing
        return outcome.fail("other_error", f"{type(error).__name__}: {error}")
    return outcome


def _python(grader: dict[str, Any], context: Context) -> Outcome:
    """In the sandbox: a failure of the code is a runtime error; one of the sandbox (it could not
    start, the worker died or ran out of time) is a server error."""
    outcome = Outcome()
    try:
        results, failure = run_code_reporting(
            grader["source"], [Sample("sample", context.output_text, context.item)]
        )
    except (AttributeError, TypeError) as error:  # the item's messages are not chat turns
        return outcome.fail("other_error", f"the item cannot be sent to the grader: {error}")
    if failure is not None:
        timed_out = "timed out" in str(failure)
        if timed_out:
            outcome.fail("unresponsive_reward_error", str(failure))
        outcome.errors["python_grader_server_error_type"] = (
            "timeout" if timed_out else type(failure).__name__
        )
        return outcome.fail("python_grader_server_error", str(failure))
    result = results[0]
    if result.error is not None:
        return outcome.fail("python_grader_runtime_error", result.error)
    outcome.reward = float(result.score)
    return outcome


def _multi(grader: dict[str, Any], context: Context, owner: AbstractBaseUser) -> Outcome:
    outcome = Outcome()
    for name, inner in grader["graders"].items():
        outcome.absorb(name, grade(inner, context, owner))
    formula = grader["calculate_output"]
    try:
        reward = evaluate_formula(formula_text(formula), outcome.sub_rewards)
    except (SyntaxError, ValueError, ZeroDivisionError, TypeError, OverflowError) as error:
        return outcome.fail("formula_parse_error", f"{formula!r}: {error}")
    if not math.isfinite(reward):
        return outcome.fail("formula_parse_error", f"{formula!r} gave {reward}")
    outcome.reward = reward
    return outcome
