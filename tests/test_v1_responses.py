"""`/v1/responses` with the official `openai` client against a real console: text and message
input, `instructions`, `store: false`, the streaming events (raw and through `responses.stream`),
`max_output_tokens`, refused parameters and the invocation log."""

from __future__ import annotations

import html

import openai
import pytest
from django.contrib.auth.models import User
from django.test import Client

from playground.models import InvocationLog
from tests.support import v1_reference
from tests.support.v1_reference import MODEL

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

# The shared /v1 fixtures, found by pytest under these names.
alice_openai = v1_reference.alice_openai
deployment = v1_reference.deployment
server = v1_reference.server
starter = v1_reference.starter

TUTOR = "You are a math tutor."
QUESTION = "Tom has 3 apples and gets 5 more. How many apples now? Answer after ####."
EVENTS_BEFORE = [
    "response.created", "response.in_progress", "response.output_item.added",
    "response.content_part.added",
]  # fmt: skip
EVENTS_AFTER = [
    "response.output_text.done", "response.content_part.done", "response.output_item.done",
    "response.completed",
]  # fmt: skip


def chat_answer(client: openai.OpenAI, max_tokens: int = 64) -> openai.types.chat.ChatCompletion:
    messages = [{"role": "system", "content": TUTOR}, {"role": "user", "content": QUESTION}]
    return client.chat.completions.create(
        model=MODEL, messages=messages, temperature=0, max_tokens=max_tokens
    )


def test_a_response_answers_as_chat_does_and_is_logged(
    alice_openai: openai.OpenAI, alice: User, alice_client: Client
) -> None:
    chat = chat_answer(alice_openai)
    raw = alice_openai.responses.with_raw_response.create(
        model=MODEL, instructions=TUTOR, input=QUESTION, temperature=0, max_output_tokens=64,
        store=False, metadata={"project": "demo"},
    )  # fmt: skip
    response = raw.parse()
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.error is None
    assert response.output_text == chat.choices[0].message.content
    message = response.output[0]
    assert (message.type, message.role, message.content[0].type) == (
        "message",
        "assistant",
        "output_text",
    )
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens) == (
        chat.usage.prompt_tokens,
        chat.usage.completion_tokens,
    )
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert response.metadata == {"project": "demo"} and response.instructions == TUTOR

    items = alice_openai.responses.create(
        model=MODEL, temperature=0, max_output_tokens=64,
        input=[
            {"role": "developer", "content": TUTOR},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": QUESTION}]},
        ],
    )  # fmt: skip
    assert items.output_text == response.output_text

    log = InvocationLog.objects.get(pk=int(raw.headers["x-invocation-log-id"]))
    assert (log.owner, log.deployment, log.operation) == (alice, MODEL, "responses")
    assert log.request["input"] == QUESTION and log.request["instructions"] == TUTOR
    assert log.response_text == response.output_text and log.request_metadata == {"project": "demo"}
    assert (log.prompt_tokens, log.completion_tokens) == (usage.input_tokens, usage.output_tokens)
    page = html.unescape(alice_client.get(f"/deployments/logs/{log.pk}/").content.decode())
    assert TUTOR in page and QUESTION in page and "/v1/responses" in page
    listing = html.unescape(alice_client.get("/deployments/logs/").content.decode())
    assert QUESTION[:100] in listing


def test_a_stream_sends_the_responses_events_in_order(alice_openai: openai.OpenAI) -> None:
    options = dict(
        model=MODEL, instructions=TUTOR, input=QUESTION, temperature=0, max_output_tokens=64
    )
    plain = alice_openai.responses.create(**options)
    events = list(alice_openai.responses.create(**options, stream=True))
    kinds = [event.type for event in events]
    assert kinds[:4] == EVENTS_BEFORE and kinds[-4:] == EVENTS_AFTER
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert "".join(event.delta for event in events[4:-4]) == plain.output_text
    assert events[-1].response.output_text == plain.output_text
    assert (
        events[-1].response.usage == plain.usage and events[0].response.id == events[-1].response.id
    )

    with alice_openai.responses.stream(**options) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert deltas == final.output_text == plain.output_text


def test_max_output_tokens_makes_an_incomplete_response(alice_openai: openai.OpenAI) -> None:
    options = dict(
        model=MODEL, instructions=TUTOR, input=QUESTION, temperature=0, max_output_tokens=3
    )
    cut = alice_openai.responses.create(**options)
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"
    assert cut.usage.output_tokens == 3
    streamed = list(alice_openai.responses.create(**options, stream=True))
    assert streamed[-1].type == "response.incomplete"
    assert streamed[-1].response.output_text == cut.output_text


FUNCTION = {"type": "function", "name": "add", "parameters": {"type": "object", "properties": {}}}
REFUSED = [
    ("tools", {"tools": [FUNCTION]}),
    ("previous_response_id", {"previous_response_id": "resp_123"}),
    ("reasoning", {"reasoning": {"effort": "low"}}),
    ("text", {"text": {"format": {"type": "xml"}}}),  # json_schema and json_object are served
    ("top_logprobs", {"top_logprobs": 2}),
    ("seed", {"extra_body": {"seed": 1}}),  # not a Responses API parameter
    (
        "input",
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
    ),
    ("input", {"input": [{"type": "function_call_output", "call_id": "c", "output": "1"}]}),
    ("temperature", {"temperature": 3}),
]


@pytest.mark.parametrize(("param", "options"), REFUSED, ids=[p for p, _ in REFUSED])
def test_unsupported_parameters_are_refused_by_name(
    alice_openai: openai.OpenAI, param: str, options: dict
) -> None:
    request = {"model": MODEL, "input": QUESTION, "max_output_tokens": 2, **options}
    with pytest.raises(openai.BadRequestError) as refused:
        alice_openai.responses.create(**request)
    assert refused.value.param == param and refused.value.type == "invalid_request_error"


def test_the_values_that_ask_for_nothing_unsupported_are_accepted(
    alice_openai: openai.OpenAI,
) -> None:
    """The control for the refusals; and nothing is stored to retrieve."""
    response = alice_openai.responses.create(
        model=MODEL, input=QUESTION, max_output_tokens=2, tools=[], store=True, truncation="disabled",
        text={"format": {"type": "text"}}, tool_choice="auto", parallel_tool_calls=True, user="u1",
    )  # fmt: skip
    assert response.status == "incomplete" and response.store is False
    with pytest.raises(openai.NotFoundError) as missing:
        alice_openai.responses.retrieve(response.id)
    assert "does not store responses" in missing.value.message
