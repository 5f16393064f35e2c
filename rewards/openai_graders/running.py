"""Run an OpenAI grader on one sample and item, answering OpenAI's `graders/run` shape, or on a
batch of them (`grade_all`, for a grader stored as a reward: rewards.openai_graders.batch).

string_check and text_similarity are our built-in graders (in-process); python goes through the
sandbox (rewards.code_batches, never this process); score_model and label_model go to a judge
(model_graders); multi runs its parts and combines them with `calculate_output`. On a batch each
part runs once for all samples: a python part is one sandbox call, a model part one judge.
Whatever goes wrong in a grader becomes one of OpenAI's error flags with reward 0, never an
exception.
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from rewards.code_batches import run_code_reporting
from rewards.graders.configurable import evaluate_formula
from rewards.graders.registry import run_grader
from rewards.openai_graders.model_graders import run_model_grader_all
from rewards.openai_graders.outcome import Outcome
from rewards.openai_graders.templates import Context, TemplateError, render
from rewards.openai_graders.validation import METRICS, formula_text
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
    return grade_all(grader, [context], owner)[0]


def grade_all(
    grader: dict[str, Any], contexts: list[Context], owner: AbstractBaseUser
) -> list[Outcome]:
    """One outcome per context, in order."""
    kind = grader["type"]
    if kind == "multi":
        return _multi(grader, contexts, owner)
    if kind in ("score_model", "label_model"):
        return run_model_grader_all(grader, contexts, owner)
    if kind == "python":
        return _python(grader, contexts)
    return [_builtin(grader, context) for context in contexts]


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


def _python(grader: dict[str, Any], contexts: list[Context]) -> list[Outcome]:
    """In the sandbox, all contexts in one call: a failure of the code is a runtime error; one of
    the sandbox (it could not start, the worker died or ran out of time) is a server error."""
    samples = [Sample(str(i), c.output_text, c.item) for i, c in enumerate(contexts)]
    try:
        results, failure = run_code_reporting(grader["source"], samples)
    except (AttributeError, TypeError) as error:  # an item's messages are not chat turns
        problem = f"the item cannot be sent to the grader: {error}"
        return [Outcome().fail("other_error", problem) for _ in contexts]
    if failure is not None:
        return [_server_error(failure) for _ in contexts]
    outcomes = []
    for result in results:
        outcome = Outcome()
        if result.error is not None:
            outcome.fail("python_grader_runtime_error", result.error)
        else:
            outcome.reward = float(result.score)
        outcomes.append(outcome)
    return outcomes


def _server_error(failure: Exception) -> Outcome:
    outcome = Outcome()
    timed_out = "timed out" in str(failure)
    if timed_out:
        outcome.fail("unresponsive_reward_error", str(failure))
    outcome.errors["python_grader_server_error_type"] = (
        "timeout" if timed_out else type(failure).__name__
    )
    return outcome.fail("python_grader_server_error", str(failure))


def _multi(
    grader: dict[str, Any], contexts: list[Context], owner: AbstractBaseUser
) -> list[Outcome]:
    """Each part on the whole batch, then each sample's parts combined."""
    parts = {name: grade_all(inner, contexts, owner) for name, inner in grader["graders"].items()}
    return [
        combine(grader, {name: outcomes[i] for name, outcomes in parts.items()})
        for i in range(len(contexts))
    ]


def combine(grader: dict[str, Any], parts: dict[str, Outcome]) -> Outcome:
    """A multi grader's outcome for one sample from its parts' outcomes and `calculate_output`."""
    outcome = Outcome()
    for name, inner in parts.items():
        outcome.absorb(name, inner)
    formula = grader["calculate_output"]
    try:
        reward = evaluate_formula(formula_text(formula), outcome.sub_rewards)
    except (SyntaxError, ValueError, ZeroDivisionError, TypeError, OverflowError) as error:
        return outcome.fail("formula_parse_error", f"{formula!r}: {error}")
    if not math.isfinite(reward):
        return outcome.fail("formula_parse_error", f"{formula!r} gave {reward}")
    outcome.reward = reward
    return outcome
