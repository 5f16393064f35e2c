"""score_model and label_model: the grader's messages, templates filled in, go to a judge (an
allow-listed OpenAI-compatible endpoint, or a model of the caller's registry; see
rewards.judge.clients) and its reply is read as OpenAI's structured answer `{"result": ...}`.

OpenAI forces that JSON with structured outputs; not every endpoint has them, so the format is
asked for in a system message and the reply is also read the ways our judge reads scores.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from jobs.models import ModelEntry
from rewards.judge.scoring import JUDGE_DEFAULTS, parse_score
from rewards.openai_graders.outcome import Outcome
from rewards.openai_graders.templates import Context, TemplateError, render
from rewards.openai_graders.validation import default_endpoint, message_text
from rewards.types import JudgeCallError, JudgeReply, RewardConfigError
from rftconsole.ownership import owned
from rftconsole.security.crypto import encrypt_text

MAX_TOKENS = 512
SECRET_KEY_FIELD = "api_key_encrypted"  # noqa: S105 - a field name, as rewards.services stores it
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def judge_config(grader: dict[str, Any], owner: AbstractBaseUser) -> dict[str, Any]:
    """Our judge's settings for this grader (validated: an endpoint, or an owned model, or the
    administrator's RFT_GRADER_BASE_URL for a model the registry does not have). Its key is
    `api_key` (a grader given to /run) or `api_key_encrypted` (a grader stored as a reward)."""
    params = grader.get("sampling_params") or {}
    config: dict[str, Any] = {
        **JUDGE_DEFAULTS,  # its concurrency too: a reward's batch asks about many rows at once
        "max_retries": 2,
        "temperature": float(params.get("temperature") or 0.0),
        "max_tokens": int(params.get("max_completions_tokens") or MAX_TOKENS),
        **{key: params[key] for key in ("top_p", "seed") if params.get(key) is not None},
    }
    if "base_url" not in grader:
        default = default_endpoint()
        if not default or owned(ModelEntry, owner).filter(name=grader["model"]).exists():
            return {**config, "judge_type": "local", "local_model": grader["model"]}
        key = settings.RFT_GRADER_API_KEY
        config.update(judge_type="endpoint", base_url=default, model=grader["model"])
        return {**config, **({SECRET_KEY_FIELD: encrypt_text(key)} if key else {})}
    config.update(judge_type="endpoint", base_url=grader["base_url"], model=grader["model"])
    key = grader.get("api_key") or ""
    # A grader given to /run brings its key in plain text; one stored as a reward, encrypted.
    encrypted = encrypt_text(key) if key else grader.get(SECRET_KEY_FIELD)
    return {**config, **({SECRET_KEY_FIELD: encrypted} if encrypted else {})}


def _format_rule(grader: dict[str, Any]) -> str:
    if grader["type"] == "score_model":
        low, high = grader["range"]
        return f'Reply with only a JSON object {{"result": <a number from {low} to {high}>}}.'
    labels = ", ".join(json.dumps(label) for label in grader["labels"])
    return f'Reply with only a JSON object {{"result": <one label of {labels}>}}.'


def messages(grader: dict[str, Any], context: Context) -> list[dict[str, str]]:
    """The conversation for the judge: templates filled in, the answer format asked for.
    `developer` becomes `system`, which every chat template and endpoint knows."""
    turns = [
        {
            "role": "system" if m["role"] == "developer" else m["role"],
            "content": render(message_text(m["content"]), context),
        }
        for m in grader["input"]
    ]
    rule = _format_rule(grader)
    if turns[0]["role"] == "system":
        turns[0]["content"] += "\n\n" + rule
    else:
        turns.insert(0, {"role": "system", "content": rule})
    return turns


def _result(reply: str) -> Any:
    for candidate in (reply.strip(), *_OBJECT.findall(reply)):
        try:
            parsed = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "result" in parsed:
            return parsed["result"]
    return None


def read_score(reply: str, low: float, high: float) -> float:
    """`{"result": 0.8}`, else any way our judge reads a score; ValueError when none fits."""
    found = _result(reply)
    if isinstance(found, int | float) and not isinstance(found, bool):
        if not low <= found <= high:
            raise ValueError(f"the score {found:g} is outside {low:g}–{high:g}")
        return float(found)
    return parse_score(reply, low, high)


def read_label(reply: str, labels: list[str]) -> str:
    """`{"result": "label"}`, else a reply that is just a label, else the one label it names."""
    found = _result(reply)
    candidates = [found] if isinstance(found, str) else [reply.strip().strip("\"'.` ")]
    for candidate in candidates:
        for label in labels:
            if candidate.lower() == label.lower():
                return label
    named = [label for label in labels if re.search(rf"\b{re.escape(label)}\b", reply, re.I)]
    if len(named) == 1:
        return named[0]
    raise ValueError(f"no single label of {labels} in the reply: {reply[:200]!r}")


def run_model_grader(grader: dict[str, Any], context: Context, owner: AbstractBaseUser) -> Outcome:
    return run_model_grader_all(grader, [context], owner)[0]


def run_model_grader_all(
    grader: dict[str, Any], contexts: list[Context], owner: AbstractBaseUser
) -> list[Outcome]:
    """One outcome per context; every conversation goes to one judge, which asks with its
    concurrency (an endpoint) or generates them in batches (a registry model)."""
    from rewards.judge.clients import make_judge  # imports openai: only when a model grades

    outcomes = [Outcome(sampled_model_name=grader["model"]) for _ in contexts]
    conversations: dict[int, list[dict[str, str]]] = {}
    for index, context in enumerate(contexts):
        try:
            conversations[index] = messages(grader, context)
        except TemplateError as error:
            outcomes[index].fail(error.kind, str(error))
    if not conversations:
        return outcomes
    try:
        judge = make_judge(judge_config(grader, owner), owner)
        replies = judge.judge_all(list(conversations.values()))
    except RewardConfigError as error:  # e.g. the model cannot be loaded
        for index in conversations:
            outcomes[index].fail("model_grader_server_error", str(error))
        return outcomes
    for index, reply in zip(conversations, replies, strict=True):
        if isinstance(reply, JudgeCallError):
            outcomes[index].fail("model_grader_server_error", str(reply))
        else:
            _verdict(grader, reply, outcomes[index])
    return outcomes


def _verdict(grader: dict[str, Any], reply: JudgeReply, outcome: Outcome) -> Outcome:
    outcome.add_usage(grader["model"], reply.prompt_tokens or 0, reply.completion_tokens or 0)
    try:
        if grader["type"] == "score_model":
            outcome.reward = read_score(reply.text, *map(float, grader["range"]))
        else:
            outcome.reward = float(
                read_label(reply.text, grader["labels"]) in grader["passing_labels"]
            )
    except ValueError as error:
        return outcome.fail("model_grader_parse_error", str(error))
    return outcome
