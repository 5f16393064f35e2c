"""Tools on /v1/chat/completions with the official `openai` client against a real Daphne: tools
rendered through the model's chat template, calls read back into `tool_calls`, a required or
named tool_choice enforced by a grammar (so even a tiny random model calls validly), and a 400
for a model whose template has no tool format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
from django.contrib.auth.models import User
from transformers import AutoTokenizer

from jobs.registry.services import register_model
from playground.deployments import deploy
from playground.models import Deployment
from tests.support.stack import serving_v1
from tests.support.tool_models import save_llama3_tool_model, save_tool_model
from tests.test_openai_endpoint import client_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
TIME_PARAMETERS = {
    "type": "object",
    "properties": {"zone": {"enum": ["UTC", "CET"]}},
    "required": ["zone"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The forecast for a city", "parameters": WEATHER_PARAMETERS}},
    {"type": "function", "function": {"name": "get_time", "parameters": TIME_PARAMETERS}},
]  # fmt: skip
PARAMETERS = {"get_weather": WEATHER_PARAMETERS, "get_time": TIME_PARAMETERS}
ASK = [{"role": "user", "content": "What is the weather in Oslo this week?"}]


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_v1(tmp_path_factory.mktemp("daphne"), RFT_RATE_LIMIT_PER_MINUTE="1000") as url:
        yield url


@pytest.fixture(scope="module")
def tool_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tool_model(tmp_path_factory.mktemp("tools") / "qwen-tools")


@pytest.fixture(scope="module")
def llama3_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_llama3_tool_model(tmp_path_factory.mktemp("tools") / "llama3-tools")


@pytest.fixture
def alice_openai(
    server: str, alice: User, tool_model: Path, llama3_model: Path, starter_artifacts: Path
) -> openai.OpenAI:
    starter = str(starter_artifacts / "models" / "starter")
    models = [(str(tool_model), "tools-chat"), (str(llama3_model), "llama3-chat")]
    for path, name in [*models, (starter, "starter-chat")]:
        deployment = deploy(alice, register_model(alice, path, name), name, background=False)
        assert deployment.status == Deployment.Status.ACTIVE, deployment.status_reason
    return client_for(server, alice)


def assert_valid(call: Any, name: str | None = None) -> None:
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == name if name else call.function.name in PARAMETERS
    jsonschema.validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])


def test_a_required_tool_call_round_trips_on_a_qwen_style_model(
    alice_openai: openai.OpenAI, tool_model: Path
) -> None:
    options: dict[str, Any] = dict(
        model="tools-chat", messages=ASK, tools=TOOLS, tool_choice="required",
        parallel_tool_calls=False, temperature=1, max_tokens=400,
    )  # fmt: skip
    for seed in range(5):  # a random model, held to a valid call by the grammar
        reply = alice_openai.chat.completions.create(**options, seed=seed)
        assert reply.choices[0].finish_reason == "tool_calls"
        (call,) = reply.choices[0].message.tool_calls
        assert_valid(call)

    # The call and its result go back through the template; the model then answers in text.
    back = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
    ]
    answer = alice_openai.chat.completions.create(
        model="tools-chat", messages=back, tools=TOOLS, temperature=0, max_tokens=8
    )
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].finish_reason in ("stop", "length")
    tokenizer = AutoTokenizer.from_pretrained(tool_model)
    rendered = tokenizer.apply_chat_template(
        [
            ASK[0],
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": call.id, "type": "function", "function": {
                    "name": call.function.name, "arguments": json.loads(call.function.arguments)}},
            ]},
            {"role": "tool", "content": "Sunny, 21 C", "tool_call_id": call.id},
        ],
        tools=TOOLS, add_generation_prompt=True, tokenize=False,
    )  # fmt: skip
    assert f'<tool_call>\n{{"name": "{call.function.name}", "arguments": {{' in rendered
    assert "<tool_response>\nSunny, 21 C\n</tool_response>" in rendered and "get_time" in rendered
    prompt_ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert answer.usage.prompt_tokens == len(prompt_ids)


def test_a_required_tool_call_round_trips_on_a_llama3_style_model(
    alice_openai: openai.OpenAI, llama3_model: Path
) -> None:
    options: dict[str, Any] = dict(
        model="llama3-chat", messages=ASK, tools=TOOLS, tool_choice="required",
        temperature=1, max_tokens=400,
    )  # fmt: skip
    for seed in range(3):  # Llama 3's format holds one call: a JSON object with "parameters"
        reply = alice_openai.chat.completions.create(**options, seed=seed)
        assert reply.choices[0].finish_reason == "tool_calls", reply.choices[0].message.content
        (call,) = reply.choices[0].message.tool_calls
        assert_valid(call)
    back = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
    ]
    answer = alice_openai.chat.completions.create(
        model="llama3-chat", messages=back, tools=TOOLS, tool_choice="none", max_tokens=8
    )
    assert answer.choices[0].message.tool_calls is None
    rendered = AutoTokenizer.from_pretrained(llama3_model).apply_chat_template(
        [ASK[0], {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
            "name": call.function.name, "arguments": json.loads(call.function.arguments)}}]},
         {"role": "tool", "content": "Sunny, 21 C"}],
        tools=TOOLS, add_generation_prompt=True, tokenize=False,
    )  # fmt: skip
    assert f'{{"name": "{call.function.name}", "parameters": {{' in rendered
    assert "ipython<|end_header_id|>\n\nSunny, 21 C" in rendered


def test_a_named_tool_choice_calls_that_tool_streamed_too(alice_openai: openai.OpenAI) -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    options: dict[str, Any] = dict(
        model="tools-chat", messages=ASK, tools=TOOLS, tool_choice=named, temperature=1,
        max_tokens=1000, seed=3,
    )  # fmt: skip
    reply = alice_openai.chat.completions.create(**options)
    assert reply.choices[0].finish_reason == "tool_calls" and reply.choices[0].message.tool_calls
    for call in reply.choices[0].message.tool_calls:
        assert_valid(call, "get_time")
    # Streamed, the answer comes whole at its finish: tool_calls deltas as OpenAI sends them.
    calls: dict[int, dict[str, str]] = {}
    reasons = []
    for chunk in alice_openai.chat.completions.create(**options, stream=True):
        for part in chunk.choices:
            reasons.append(part.finish_reason)
            for delta in part.delta.tool_calls or []:
                calls[delta.index] = {"name": delta.function.name, "args": delta.function.arguments}
                assert delta.id.startswith("call_") and delta.type == "function"
    assert reasons[-1] == "tool_calls"
    same_seed = [{"name": c.function.name, "args": c.function.arguments} for c in reply.choices[0].message.tool_calls]  # fmt: skip
    assert [calls[i] for i in sorted(calls)] == same_seed


def test_a_template_without_tools_is_a_400_naming_tools(alice_openai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        alice_openai.chat.completions.create(model="starter-chat", messages=ASK, tools=TOOLS)
    assert raised.value.param == "tools" and "no tool format" in raised.value.message
    # Control: the same request to the Qwen-style model is answered (auto: text or a call).
    reply = alice_openai.chat.completions.create(
        model="tools-chat", messages=ASK, tools=TOOLS, max_tokens=8
    )
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")
    # tool_choice "none" renders no tools, so the starter takes it.
    plain = alice_openai.chat.completions.create(
        model="starter-chat", messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=8
    )
    assert plain.choices[0].message.tool_calls is None


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "required", "tools": None}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "integr"}}}]}, "tools"),
        ({"functions": [{"name": "f"}]}, "functions"),
    ],
)  # fmt: skip
def test_bad_tool_parameters_are_400s_naming_them(
    alice_openai: openai.OpenAI, options: dict[str, Any], param: str
) -> None:
    body = {"tools": TOOLS, **options}
    if body["tools"] is None:
        del body["tools"]
    with pytest.raises(openai.BadRequestError) as raised:
        alice_openai.chat.completions.create(
            model="tools-chat", messages=ASK, max_tokens=4, extra_body=body
        )
    assert raised.value.param == param
    ok = alice_openai.chat.completions.create(  # control: the same model, tools as they should be
        model="tools-chat", messages=ASK, max_tokens=4, tools=TOOLS, tool_choice="auto"
    )
    assert ok.choices[0].finish_reason in ("stop", "length", "tool_calls")
