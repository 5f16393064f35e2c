"""Model as judge (RLAIF): a judge model reads written instructions and scores each answer.

The instructions are a template; each sampled answer fills it in and goes to the judge (any
OpenAI-compatible chat endpoint, or a registered local model; see `rewards.judge.clients`). The
judge's reply is free text, so `parse_score` reads the score out of the usual ways models write
one. Whatever goes wrong for one row (a template gap, an unreadable reply, an endpoint that keeps
failing) becomes that row's error, never a crash of the batch: training goes on and the error is
shown next to the row.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import ParseResult, urlparse

from jobs.datasets.formats import prompt_messages
from rewards.models import RewardVersion
from rewards.types import JudgeCallError, JudgeReply, RewardConfigError, RewardResult, Sample

JUDGE_DEFAULTS: dict[str, Any] = {
    "score_min": 0,
    "score_max": 10,
    "judge_type": "endpoint",
    "concurrency": 4,
    "max_retries": 3,
    "timeout_seconds": 30,
    "max_tokens": 256,
    "temperature": 0.0,
    "backoff_seconds": 0.5,  # the first retry waits this long, then twice as long each time
}

PLACEHOLDERS = {
    "{{prompt}}": "the prompt turns, one 'role: content' line each",
    "{{response}}": "the sampled answer being judged",
    "{{reference_answer}}": "the row's reference_answer (JSON when it is not text)",
    "{{metadata.KEY}}": "the row's KEY field, any key but messages (JSON when it is not text)",
}

_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_KNOWN_NAME = re.compile(r"prompt|response|reference_answer|metadata\.[^\s{}]+")
_RANGES = {"concurrency": (1, 32), "max_retries": (0, 10), "timeout_seconds": (1, 600)}
_QUOTE_CHARS = 120
_OUTPUT_CHARS = 500


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _placeholder_value(name: str, sample: Sample) -> str:
    row = sample.row
    if name == "response":
        return sample.output_text
    if name == "prompt":
        turns = prompt_messages(row)
        return "\n".join(f"{m.get('role', '')}: {_as_text(m.get('content', ''))}" for m in turns)
    key = name.removeprefix("metadata.")
    if name != "reference_answer" and key == name:
        raise ValueError(f"unknown placeholder {{{{{name}}}}}")
    if key == "messages" or key not in row:
        raise ValueError(f"placeholder {{{{{name}}}}}: this row has no {key!r} field")
    return _as_text(row[key])


def render_instructions(template: str, sample: Sample) -> str:
    """The instructions with every placeholder filled in for this sample.

    One pass, so an answer that itself contains "{{prompt}}" is left as the model wrote it.
    """
    return _PLACEHOLDER.sub(lambda match: _placeholder_value(match.group(1), sample), template)


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _template_problems(instructions: Any) -> list[str]:
    if not isinstance(instructions, str) or not instructions.strip():
        return ["Write the judge instructions."]
    names = _PLACEHOLDER.findall(instructions)
    problems = [
        f"Unknown placeholder {{{{{name}}}}} (use {', '.join(PLACEHOLDERS)})."
        for name in dict.fromkeys(names)
        if not _KNOWN_NAME.fullmatch(name)
    ]
    if "response" not in names:
        problems.append("The instructions must show the judge the answer: add {{response}}.")
    return problems


def _range_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    low, high = _number(config.get("score_min")), _number(config.get("score_max"))
    if low is None or high is None:
        problems.append("score_min and score_max must be numbers.")
    elif low >= high:
        problems.append(f"score_min ({low:g}) must be below score_max ({high:g}).")
    for key, (least, most) in _RANGES.items():
        value = config.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
            problems.append(f"{key} must be a whole number from {least} to {most}.")
    backoff = _number(config.get("backoff_seconds"))
    if backoff is None or not 0 <= backoff <= 60:
        problems.append("backoff_seconds must be a number from 0 to 60.")
    return problems


def parse_base_url(text: str) -> ParseResult:
    """A judge's base URL, parsed; ValueError for what urlparse refuses ("http://[::1") and for
    what it lets through but a client then fails on: a port that is not a number, or anything
    after an IPv6 literal's "]" but a port ("http://[::1]x/v1")."""
    url = urlparse(text)
    url.port  # noqa: B018 - raises ValueError for a port that is not a number
    if "]" in url.netloc and not re.fullmatch(r"(:\d+)?", url.netloc.rsplit("]", 1)[1]):
        raise ValueError("only a :port may follow an IPv6 address's ']'")
    return url


def host_allowed(host: str) -> bool:
    """Judges reach only allow-listed hosts (RFT_JUDGE_ALLOWED_HOSTS; "*" allows any name), so
    a reward cannot make the trainer call into the private network.

    This is the name check, made when a reward is saved and when a judge starts. It does not
    resolve the name: the guarantee is the check of every connection (every resolved address)
    made when the judge calls, see `rftconsole.security.outbound`.
    """
    from rftconsole.security.outbound import judge_allow_list  # imports httpx2: pages need not

    return judge_allow_list().name_allowed(host)


def _judge_problems(config: dict[str, Any]) -> list[str]:
    judge_type = config.get("judge_type")
    if judge_type == "local":
        return [] if config.get("local_model") else ["Choose the registered model that judges."]
    if judge_type != "endpoint":
        return [f"judge_type must be 'endpoint' or 'local', not {judge_type!r}."]
    problems = []
    try:
        url = parse_base_url(str(config.get("base_url") or ""))
    except ValueError as error:  # "http://[::1": urlparse refuses it
        return [f"base_url is not a valid URL ({error})."]
    if url.scheme not in ("http", "https") or not url.netloc:
        problems.append("base_url must be an http:// or https:// URL, e.g. http://host:8000/v1.")
    elif not host_allowed(url.hostname or ""):
        problems.append(
            f"The judge may not call {url.hostname}: ask an administrator to add it to "
            "RFT_JUDGE_ALLOWED_HOSTS."
        )
    if not config.get("model"):
        problems.append("Name the model the endpoint should use as the judge.")
    return problems


def validate_judge_config(config: dict[str, Any]) -> list[str]:
    """Every problem in a judge configuration, in words for the form; empty when it can run."""
    merged = {**JUDGE_DEFAULTS, **config}
    return (
        _template_problems(merged.get("instructions"))
        + _range_problems(merged)
        + _judge_problems(merged)
    )


_FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL | re.IGNORECASE)
_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)
_NUM = r"[-+]?\d+(?:\.\d+)?"
_EXPLICIT = re.compile(rf"\bscore[\"'*\s]*(?:[:=]|\bis\b|\bof\b)[\s*]*({_NUM})", re.IGNORECASE)
_FRACTION = re.compile(rf"({_NUM})\s*(?:/|\bout of\b)\s*({_NUM})", re.IGNORECASE)
_BOLD = re.compile(rf"\*\*\s*({_NUM})\s*\*\*")
_BARE = re.compile(rf"(?<![\w.]){_NUM}(?!\w|\.\d)")


def _quote(reply: str) -> str:
    flat = " ".join(reply.split())
    return repr(flat[:_QUOTE_CHARS] + ("…" if len(flat) > _QUOTE_CHARS else ""))


def _json_score(reply: str) -> float | None:
    for candidate in [reply.strip(), *_FENCED.findall(reply), *_OBJECT.findall(reply)]:
        try:
            parsed = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            scores = [v for k, v in parsed.items() if str(k).lower() == "score"]
            value = scores[0] if scores else None
            if isinstance(value, str):
                value = float(value) if re.fullmatch(_NUM, value.strip()) else None
            if _number(value) is not None:
                return float(value)
    return None


def _stated_score(reply: str, high: float) -> float | None:
    """The score the judge stated as such: JSON, "Score: 7", "7/10" or a bold "**7**"."""
    found = _json_score(reply)
    if found is not None:
        return found
    explicit = _EXPLICIT.findall(reply)
    if explicit:
        return float(explicit[-1])
    fractions = [float(top) for top, bottom in _FRACTION.findall(reply) if float(bottom) == high]
    if fractions:
        return fractions[-1]
    bold = _BOLD.findall(reply)
    return float(bold[-1]) if bold else None


def parse_score(reply: str, low: float, high: float) -> float:
    """The judge's raw score, read from the ways models write one; `ValueError` when none fits.

    >>> parse_score('{"score": 8, "reason": "correct"}', 0, 10)
    8.0
    >>> parse_score('Here you go:\\n```json\\n{"score": 6.5}\\n```', 0, 10)
    6.5
    >>> parse_score("The answer is right but terse.\\nScore: 7", 0, 10)
    7.0
    >>> parse_score("score = 7.5", 0, 10)
    7.5
    >>> parse_score("I give it 7/10.", 0, 10)
    7.0
    >>> parse_score("I'd give it 4 out of 5", 1, 5)
    4.0
    >>> parse_score("Verdict: **8**", 0, 10)
    8.0
    >>> parse_score(" 3 ", 1, 5)
    3.0
    >>> parse_score("Step 2 is fine, step 14 is wrong, so 4", 0, 10)
    4.0
    >>> parse_score("I think it is good", 0, 10)
    Traceback (most recent call last):
    ...
    ValueError: no score in the judge's reply: 'I think it is good'
    >>> parse_score("Score: 12", 0, 10)
    Traceback (most recent call last):
    ...
    ValueError: the judge's score 12 is outside 0–10: 'Score: 12'
    """
    stated = _stated_score(reply, high)
    if stated is not None:
        if not low <= stated <= high:
            raise ValueError(
                f"the judge's score {stated:g} is outside {low:g}–{high:g}: {_quote(reply)}"
            )
        return stated
    numbers = [float(n) for n in _BARE.findall(_FRACTION.sub(" ", reply))]  # "3/5" is no score
    in_range = [n for n in numbers if low <= n <= high]
    if in_range:
        return in_range[-1]
    if numbers:
        raise ValueError(
            f"the judge's score {numbers[-1]:g} is outside {low:g}–{high:g}: {_quote(reply)}"
        )
    raise ValueError(f"no score in the judge's reply: {_quote(reply)}")


def _metric(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "value": value, "type": "Metric"}  # logged, not charted as a reward


def _to_result(
    sample: Sample, reply: JudgeReply | JudgeCallError, low: float, high: float
) -> RewardResult:
    """One row's result from the judge's reply, or from the reason there is none."""
    if isinstance(reply, JudgeCallError):
        return RewardResult(
            sample.id, 0.0, [_metric("judge_attempts", reply.attempts)], error=str(reply)
        )
    components = [
        _metric("judge_latency_ms", round(reply.latency_ms, 1)),
        _metric("judge_attempts", reply.attempts),
    ]
    for name, tokens in (("prompt", reply.prompt_tokens), ("completion", reply.completion_tokens)):
        if tokens is not None:
            components.append(_metric(f"judge_{name}_tokens", tokens))
    output = reply.text[:_OUTPUT_CHARS]
    try:
        raw = parse_score(reply.text, low, high)
    except ValueError as error:
        return RewardResult(sample.id, 0.0, components, error=str(error), output=output)
    components.insert(0, _metric("judge_score", raw))
    return RewardResult(sample.id, (raw - low) / (high - low), components, output=output)


def score_with_judge(version: RewardVersion, samples: list[Sample]) -> list[RewardResult]:
    """Score each sample with the version's judge; per-row problems become per-row errors.

    Raises `RewardConfigError` only when no row could be judged: an invalid configuration, an
    unknown local model, a stored API key that no longer decrypts.
    """
    from rewards.judge.clients import make_judge  # imports openai: only when a judge runs

    config = {**JUDGE_DEFAULTS, **version.config}
    problems = validate_judge_config(config)
    if problems:
        raise RewardConfigError("The judge is not set up correctly: " + " ".join(problems))
    judge = make_judge(config, version.reward.owner)
    results: list[RewardResult | None] = [None] * len(samples)
    rendered: dict[int, str] = {}
    for i, sample in enumerate(samples):
        try:
            rendered[i] = render_instructions(config["instructions"], sample)
        except ValueError as error:
            message = f"cannot fill in the judge instructions: {error}"
            results[i] = RewardResult(sample.id, 0.0, error=message)
    replies = judge.judge_all(list(rendered.values())) if rendered else []
    low, high = float(config["score_min"]), float(config["score_max"])
    for i, reply in zip(rendered, replies, strict=True):
        results[i] = _to_result(samples[i], reply, low, high)
    return [result for result in results if result is not None]
