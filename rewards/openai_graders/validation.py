"""Check an OpenAI grader before it runs: every problem names its field (`grader.operation`),
and a valid grader comes back normalised (defaults filled in, an API key never echoed).

Nothing here runs user code: a python grader's source is only parsed (rewards.code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from jobs.models import ModelEntry
from rewards.code import CodeError, detect_interface
from rewards.graders.configurable import evaluate_formula
from rewards.judge.scoring import host_allowed, parse_base_url
from rewards.openai_graders.templates import template_problems
from rewards.validation import MAX_CODE_CHARS
from rftconsole.ownership import owned

STRING_OPERATIONS = ("eq", "ne", "like", "ilike")
# OpenAI's metric name -> ours (rewards.graders.configurable.SIMILARITY); meteor has none.
METRICS = {
    "fuzzy_match": "fuzzy", "bleu": "bleu", "gleu": "gleu", "cosine": "cosine",
    **{f"rouge_{n}": f"rouge_{n}" for n in range(1, 6)}, "rouge_l": "rouge_l",
}  # fmt: skip
UNSUPPORTED_METRICS = {
    "meteor": "needs WordNet synonyms and stemming; no maintained offline implementation is "
    "installed here. Use rouge_l, gleu or cosine instead."
}
ROLES = ("user", "assistant", "system", "developer")
TEXT_PARTS = ("input_text", "output_text")
MODEL_EXTRAS = ("base_url", "api_key")  # ours: where an endpoint judge lives
FIELDS = {
    "string_check": {"type", "name", "input", "reference", "operation"},
    "text_similarity": {
        "type",
        "name",
        "input",
        "reference",
        "evaluation_metric",
        "pass_threshold",
    },
    "python": {"type", "name", "source", "image_tag"},
    "score_model": {"type", "name", "input", "model", "range", "sampling_params", *MODEL_EXTRAS},
    "label_model": {"type", "name", "input", "model", "labels", "passing_labels", *MODEL_EXTRAS},
    "multi": {"type", "name", "graders", "calculate_output"},
}
SAMPLING = {"temperature": (0, 2), "top_p": (0, 1), "max_completions_tokens": (1, 4096)}


class GraderProblem(ValueError):
    """What is wrong, and the field it is about (OpenAI's `param`)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


def formula_text(formula: str) -> str:
    """OpenAI's `^` is a power; in Python it is xor, which no grader formula means."""
    return formula.replace("^", "**")


@dataclass(frozen=True)
class Checking:
    """Whose registry model graders may use; `strict` also refuses template variables and
    formulas that cannot work (validate). Running leaves those to OpenAI's error flags
    (invalid_variable_error, formula_parse_error), as OpenAI's run endpoint reports them."""

    owner: AbstractBaseUser
    strict: bool = True


def validate_grader(
    grader: Any, how: Checking, where: str = "grader", nested: bool = False
) -> dict[str, Any]:
    """The grader, normalised; `GraderProblem` naming the first field that is wrong."""
    if not isinstance(grader, dict):
        raise GraderProblem(where, "must be a JSON object with a 'type'.")
    kind = grader.get("type")
    if kind not in FIELDS or (nested and kind == "multi"):
        known = ", ".join(t for t in FIELDS if not (nested and t == "multi"))
        raise GraderProblem(f"{where}.type", f"{kind!r} is not a grader type here (use {known}).")
    unknown = sorted(set(grader) - FIELDS[kind])
    if unknown:
        raise GraderProblem(f"{where}.{unknown[0]}", f"not a field of a {kind} grader.")
    _text(grader, "name", where)
    return CHECKS[kind](dict(grader), how, where)


def _text(grader: dict[str, Any], key: str, where: str, templated: bool = False) -> str:
    value = grader.get(key)
    if not isinstance(value, str) or (key == "name" and not value.strip()):
        raise GraderProblem(
            f"{where}.{key}", "must be a string" + (" (not empty)." if key == "name" else ".")
        )
    if templated:
        for problem in template_problems(value):
            raise GraderProblem(f"{where}.{key}", problem + ".")
    return value


def _string_check(grader: dict[str, Any], how: Checking, where: str) -> dict[str, Any]:
    _text(grader, "input", where, templated=how.strict)
    _text(grader, "reference", where, templated=how.strict)
    if grader.get("operation") not in STRING_OPERATIONS:
        raise GraderProblem(
            f"{where}.operation",
            f"must be one of {', '.join(STRING_OPERATIONS)}, not {grader.get('operation')!r}.",
        )
    return grader


def _text_similarity(grader: dict[str, Any], how: Checking, where: str) -> dict[str, Any]:
    _text(grader, "input", where, templated=how.strict)
    _text(grader, "reference", where, templated=how.strict)
    metric = grader.get("evaluation_metric")
    if metric in UNSUPPORTED_METRICS:
        raise GraderProblem(
            f"{where}.evaluation_metric",
            f"{metric} is not supported: {UNSUPPORTED_METRICS[metric]}",
        )
    if metric not in METRICS:
        raise GraderProblem(
            f"{where}.evaluation_metric", f"must be one of {', '.join(METRICS)}, not {metric!r}."
        )
    if "pass_threshold" in grader and _number(grader["pass_threshold"]) is None:
        raise GraderProblem(f"{where}.pass_threshold", "must be a number.")
    return grader


def _python(grader: dict[str, Any], how: Checking, where: str) -> dict[str, Any]:
    source = _text(grader, "source", where)
    if len(source) > MAX_CODE_CHARS:
        raise GraderProblem(
            f"{where}.source", f"is {len(source):,} characters; at most {MAX_CODE_CHARS:,}."
        )
    try:
        interface = detect_interface(source)
    except CodeError as error:
        raise GraderProblem(f"{where}.source", str(error)) from None
    if interface != "grade":
        raise GraderProblem(f"{where}.source", "define grade(sample, item) returning a number.")
    return grader


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _messages(grader: dict[str, Any], where: str, strict: bool) -> None:
    messages = grader.get("input")
    if not isinstance(messages, list) or not messages:
        raise GraderProblem(f"{where}.input", "must be a non-empty list of messages.")
    for index, message in enumerate(messages):
        at = f"{where}.input[{index}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise GraderProblem(f"{at}.role", f"must be one of {', '.join(ROLES)}.")
        if message.get("type", "message") != "message":
            raise GraderProblem(f"{at}.type", "must be 'message'.")
        for part in _parts(message.get("content"), f"{at}.content"):
            for problem in template_problems(part) if strict else []:
                raise GraderProblem(f"{at}.content", problem + ".")


def _parts(content: Any, where: str) -> list[str]:
    """The text of a message's content: a string, a text part, or a list of them."""
    items = content if isinstance(content, list) else [content]
    texts = []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
        elif (
            isinstance(item, dict)
            and item.get("type") in TEXT_PARTS
            and isinstance(item.get("text"), str)
        ):
            texts.append(item["text"])
        elif isinstance(item, dict) and item.get("type") in ("input_image", "input_audio"):
            raise GraderProblem(
                where, f"{item['type']} is not supported: model graders here read text only."
            )
        else:
            raise GraderProblem(where, "must be text, or parts of type input_text / output_text.")
    return texts


def message_text(content: Any) -> str:
    """A validated message's content as one text."""
    return "\n".join(_parts(content, "content"))


def _judge(grader: dict[str, Any], how: Checking, where: str) -> None:
    """Where the model lives: an OpenAI-compatible endpoint (`base_url`, allow-listed) or, by
    name, a model of the caller's own registry — never another user's."""
    model = _text(grader, "model", where)
    if "base_url" in grader:
        try:
            url = parse_base_url(str(grader["base_url"]))
        except ValueError as error:  # "http://[::1": urlparse refuses it
            raise GraderProblem(f"{where}.base_url", f"is not a valid URL ({error}).") from None
        if url.scheme not in ("http", "https") or not url.netloc:
            raise GraderProblem(f"{where}.base_url", "must be an http:// or https:// URL.")
        if not host_allowed(url.hostname or ""):
            raise GraderProblem(
                f"{where}.base_url",
                f"the grader may not call {url.hostname}: ask an administrator to add it to "
                "RFT_JUDGE_ALLOWED_HOSTS.",
            )
        if not isinstance(grader.get("api_key", ""), str):
            raise GraderProblem(f"{where}.api_key", "must be a string.")
    elif not owned(ModelEntry, how.owner).filter(name=model).exists() and not default_endpoint():
        raise GraderProblem(
            f"{where}.model",
            f"{model!r} is not one of your registered models; to grade with an OpenAI-compatible "
            "endpoint, add its base_url (and api_key) to the grader (or an administrator can set "
            "RFT_GRADER_BASE_URL for models named like OpenAI's).",
        )


def default_endpoint() -> str:
    """RFT_GRADER_BASE_URL: where a model grader naming no registry model goes ("" when off)."""
    return settings.RFT_GRADER_BASE_URL


def _sampling(grader: dict[str, Any], where: str) -> None:
    params = grader.get("sampling_params") or {}
    if not isinstance(params, dict):
        raise GraderProblem(f"{where}.sampling_params", "must be an object.")
    for key, (low, high) in SAMPLING.items():
        if key in params and params[key] is not None:
            value = _number(params[key])
            if value is None or not low <= value <= high:
                raise GraderProblem(
                    f"{where}.sampling_params.{key}", f"must be a number from {low} to {high}."
                )
    for key in ("seed", "max_completions_tokens"):
        value = params.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise GraderProblem(f"{where}.sampling_params.{key}", "must be a whole number.")


def _score_model(grader: dict[str, Any], how: Checking, where: str) -> dict[str, Any]:
    _messages(grader, where, how.strict)
    _judge(grader, how, where)
    _sampling(grader, where)
    bounds = grader.setdefault("range", [0, 1])
    numbers = [_number(v) for v in bounds] if isinstance(bounds, list) else []
    if len(numbers) != 2 or None in numbers or numbers[0] >= numbers[1]:  # type: ignore[operator]
        raise GraderProblem(f"{where}.range", "must be two numbers [low, high] with low < high.")
    return grader


def _label_model(grader: dict[str, Any], how: Checking, where: str) -> dict[str, Any]:
    _messages(grader, where, how.strict)
    _judge(grader, how, where)
    labels = grader.get("labels")
    if (
        not isinstance(labels, list)
        or not labels
        or not all(isinstance(x, str) and x for x in labels)
    ):
        raise GraderProblem(f"{where}.labels", "must be a non-empty list of label strings.")
    passing = grader.get("passing_labels")
    if not isinstance(passing, list) or not passing:
        raise GraderProblem(f"{where}.passing_labels", "must be a non-empty list of labels.")
    strays = [label for label in passing if label not in labels]
    if strays:
        raise GraderProblem(f"{where}.passing_labels", f"{strays[0]!r} is not one of the labels.")
    return grader


def without_secrets(grader: dict[str, Any]) -> dict[str, Any]:
    """The normalised grader to show back: an API key is a secret, never echoed."""
    shown = {key: value for key, value in grader.items() if key != "api_key"}
    if isinstance(shown.get("graders"), dict):
        shown["graders"] = {name: without_secrets(g) for name, g in shown["graders"].items()}
    return shown


# Each part runs in turn within one request (a python part is a sandbox call, a model part a
# judge call), so their number is what bounds the request's work.
MAX_MULTI_GRADERS = 16


def _multi(grader: dict[str, Any], how: Checking, where: str) -> dict[str, Any]:
    graders = grader.get("graders")
    if not isinstance(graders, dict) or not graders:
        raise GraderProblem(f"{where}.graders", "must be an object of named graders.")
    if len(graders) > MAX_MULTI_GRADERS:
        raise GraderProblem(
            f"{where}.graders", f"has {len(graders)} graders; at most {MAX_MULTI_GRADERS}."
        )
    normalised = {}
    for name, inner in graders.items():
        if not name.isidentifier():
            raise GraderProblem(
                f"{where}.graders.{name}",
                "a grader's key must be a plain identifier, for the formula.",
            )
        normalised[name] = validate_grader(inner, how, f"{where}.graders.{name}", nested=True)
    formula = _text(grader, "calculate_output", where)
    if not how.strict:
        return {**grader, "graders": normalised}
    try:  # distinct values, so that a formula like a / (b - c) does not divide by zero here
        evaluate_formula(formula_text(formula), {n: 0.37 + 0.11 * i for i, n in enumerate(graders)})
    except (SyntaxError, ValueError, ZeroDivisionError, TypeError, OverflowError) as error:
        raise GraderProblem(f"{where}.calculate_output", f"{formula!r}: {error}") from None
    return {**grader, "graders": normalised}


CHECKS = {
    "string_check": _string_check,
    "text_similarity": _text_similarity,
    "python": _python,
    "score_model": _score_model,
    "label_model": _label_model,
    "multi": _multi,
}
