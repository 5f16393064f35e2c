"""Every parameter of OpenAI's chat completions request is honoured or refused, never silently
ignored (the official `openai` client against a real console): a refusal is a 400 naming the
parameter, an unknown key is refused as OpenAI refuses it, and presence/frequency penalties and
logit_bias change what the model generates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
from transformers import AutoTokenizer

from playground.v1.parameter_table import PARAMETERS, Refused
from tests.support import v1_reference

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

# The shared /v1 fixtures (a module's own console, alice's starter deployment, her client).
alice_openai = v1_reference.alice_openai
deployment = v1_reference.deployment
server = v1_reference.server
starter = v1_reference.starter

JSON_TASK = [{"role": "user", "content": "Hello"}]  # the starter answers with a JSON object
GREEDY = {"model": "starter-chat", "messages": JSON_TASK, "temperature": 0, "max_tokens": 24}

# What a client might send for each parameter this server refuses.
REFUSED = {
    "store": True,
    "modalities": ["text", "audio"],
    "audio": {"voice": "alloy", "format": "wav"},
    "service_tier": "flex",
    "verbosity": "low",
    "reasoning_effort": "low",
    "prediction": {"type": "content", "content": "{}"},
    "web_search_options": {},
    "moderation": {"model": "omni-moderation-latest"},
}
# Their values that change nothing, and hints that cannot change an answer: accepted.
NO_OPS = {
    "store": False,
    "modalities": ["text"],
    "audio": None,
    "service_tier": "auto",
    "verbosity": "medium",
    "n": 1,
    "user": "alice-42",
    "safety_identifier": "5f2b",
    "prompt_cache_key": "support-bot",
    "prompt_cache_retention": "24h",
    "stream_options": None,
}


def refusal(client: openai.OpenAI, **body: Any) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(**{**GREEDY, "max_tokens": 2}, extra_body=body)
    assert raised.value.type == "invalid_request_error"
    return raised.value


def answer(client: openai.OpenAI, **body: Any) -> Any:
    return client.chat.completions.create(**{**GREEDY, **body})


def test_every_refused_parameter_is_a_400_that_names_it_and_its_no_op_values_pass(
    alice_openai: openai.OpenAI,
) -> None:
    refused = {name for name, support in PARAMETERS.items() if isinstance(support, Refused)}
    assert refused == set(REFUSED), "every refused parameter of the table is tried here"
    for name, value in REFUSED.items():
        error = refusal(alice_openai, **{name: value})
        assert error.param == name, name
        assert error.code in ("unsupported_parameter", "unsupported_value"), name
        message = error.body["message"]  # why, and what to do instead
        assert f"'{name}'" in message and "leave" in message.lower(), message
    # Control: the same request with every no-op value succeeds.
    reply = alice_openai.chat.completions.create(**{**GREEDY, "max_tokens": 2}, extra_body=NO_OPS)
    assert reply.choices[0].finish_reason == "length"


def test_an_unknown_argument_is_refused_as_openai_refuses_it(
    alice_openai: openai.OpenAI,
) -> None:
    error = refusal(alice_openai, top_k=5)
    assert error.body["message"] == "Unrecognized request argument supplied: top_k"
    assert error.param == "top_k"
    with pytest.raises(openai.BadRequestError) as field:
        alice_openai.chat.completions.create(
            **{**GREEDY, "messages": [{"role": "user", "content": "Hello", "weight": 2}]}
        )
    assert field.value.param == "messages[0].weight"
    obfuscated = refusal(alice_openai, stream=True, stream_options={"include_obfuscation": True})
    assert obfuscated.param == "stream_options.include_obfuscation"
    # Control: a reply's own message sent back as history (with its null fields) is accepted.
    reply = answer(alice_openai, max_tokens=4)
    history = [*JSON_TASK, reply.choices[0].message.model_dump(), {"role": "user", "content": "?"}]
    assert answer(alice_openai, messages=history, max_tokens=2).choices


def test_presence_and_frequency_penalties_change_the_greedy_answer(
    alice_openai: openai.OpenAI,
) -> None:
    plain = answer(alice_openai).choices[0].message.content
    assert answer(alice_openai, presence_penalty=0).choices[0].message.content == plain  # control
    # The JSON answer repeats quotes and punctuation: penalising what was generated changes it.
    assert answer(alice_openai, presence_penalty=2).choices[0].message.content != plain
    assert answer(alice_openai, frequency_penalty=2).choices[0].message.content != plain
    error = refusal(alice_openai, presence_penalty=2.5)
    assert error.param == "presence_penalty"


def token_id(starter_artifacts: Path, text: str) -> int:
    tokenizer = AutoTokenizer.from_pretrained(starter_artifacts / "models" / "starter")
    (found,) = [i for i in range(len(tokenizer)) if tokenizer.decode([i]) == text]
    return found


def test_logit_bias_bans_and_forces_tokens(
    alice_openai: openai.OpenAI, starter_artifacts: Path
) -> None:
    plain = answer(alice_openai, logprobs=True).choices[0]
    first = plain.logprobs.content[0].token  # the token greedy picks first
    banned = answer(
        alice_openai, logprobs=True, logit_bias={token_id(starter_artifacts, first): -100}
    )
    assert first not in [entry.token for entry in banned.choices[0].logprobs.content]
    seven = token_id(starter_artifacts, "7")
    forced = answer(alice_openai, max_tokens=4, logit_bias={seven: 100})
    assert forced.choices[0].message.content == "7777"
    unbiased = answer(alice_openai, logit_bias={seven: 0})  # control: a zero bias changes nothing
    assert unbiased.choices[0].message.content == plain.message.content


def test_a_bad_logit_bias_is_a_400_naming_it(alice_openai: openai.OpenAI) -> None:
    for logit_bias in ({"seven": 5}, {"-3": 5}, {"7": 101}, {"7": "high"}, {"7": True}, ["7"]):
        assert refusal(alice_openai, logit_bias=logit_bias).param == "logit_bias", logit_bias
    outside = refusal(alice_openai, logit_bias={"99999": 1})
    assert outside.param == "logit_bias" and "vocabulary" in outside.body["message"]
    assert answer(alice_openai, max_tokens=2, logit_bias={"7": -1.5}).choices  # control
