"""The official `openai` client against a real Daphne serving the console: models, chat (plain
and streamed), sampling options, OpenAI-shaped errors, the rate limit and invocation logs."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import torch
from django.contrib.auth.models import User
from transformers import AutoModelForCausalLM, AutoTokenizer

from jobs.models import ModelEntry
from jobs.registry.services import register_model
from playground.deployments import deploy
from playground.models import Deployment, InvocationLog
from rftconsole.services import create_api_key
from tests.support.stack import serving_v1
from tests.support.tiny_models import save_tiny_model

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

RATE_LIMIT = 25  # per key and minute on the test server; every test uses a fresh key
ARITHMETIC = [
    {"role": "system", "content": "You are a math tutor."},
    {"role": "user", "content": "Tom has 3 apples and gets 5 more. How many apples now? Answer after ####."},
]  # fmt: skip
SHORT = [{"role": "user", "content": "Tom has 3 apples and buys 5 more. How many?"}]
JSON_TASK = [{"role": "user", "content": "Hello"}]  # the starter answers with a JSON object


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_v1(
        tmp_path_factory.mktemp("daphne"), RFT_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT)
    ) as url:
        yield url


@pytest.fixture
def starter(alice: User, starter_artifacts: Path) -> ModelEntry:
    return register_model(alice, str(starter_artifacts / "models" / "starter"), "starter")


@pytest.fixture
def deployment(alice: User, starter: ModelEntry) -> Deployment:
    deployment = deploy(alice, starter, "starter-chat", background=False)
    assert deployment.status == Deployment.Status.ACTIVE, deployment.status_reason
    return deployment


def raw_request(
    url: str, body: dict | None = None, key: str = ""
) -> tuple[int, dict[str, str], str]:
    """Status, headers and text of one request, redirects not followed (no client library)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")  # noqa: S310
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def client_for(server: str, user: User) -> openai.OpenAI:
    _, raw_key = create_api_key(user, "test")
    return openai.OpenAI(base_url=server, api_key=raw_key, max_retries=0, timeout=60)


@pytest.fixture
def alice_openai(server: str, alice: User) -> openai.OpenAI:
    return client_for(server, alice)


def test_models_lists_only_the_callers_active_deployments(
    alice: User, bob: User, starter: ModelEntry, deployment: Deployment,
    alice_openai: openai.OpenAI, server: str, starter_artifacts: Path,
) -> None:  # fmt: skip
    Deployment.objects.create(owner=alice, name="broken", model=starter, status="failed")
    bobs_model = register_model(bob, str(starter_artifacts / "models" / "starter"), "starter")
    deploy(bob, bobs_model, "bobs-chat", background=False)
    listed = alice_openai.models.list()
    assert [m.id for m in listed.data] == ["starter-chat"]
    assert listed.data[0].owned_by == "alice" and listed.data[0].object == "model"
    assert alice_openai.models.retrieve("starter-chat").id == "starter-chat"
    with pytest.raises(openai.NotFoundError) as raised:
        alice_openai.chat.completions.create(model="bobs-chat", messages=ARITHMETIC)
    assert raised.value.code == "model_not_found"
    bob_openai = client_for(server, bob)
    assert bob_openai.chat.completions.create(model="bobs-chat", messages=ARITHMETIC).choices


def greedy_answer(starter_artifacts: Path, messages: list[dict[str, str]]) -> str:
    """The starter's greedy answer through transformers alone (the exact text depends on the
    machine the starter was built on, so tests compare with this rather than a fixed string)."""
    path = starter_artifacts / "models" / "starter"
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    output = model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=512,
        temperature=None, top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    answer = tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)
    assert answer.strip(), "the starter answers a demo-task prompt with some text"
    return answer


def test_chat_answers_with_consistent_usage_and_a_finish_reason(
    deployment: Deployment, alice_openai: openai.OpenAI, starter_artifacts: Path
) -> None:
    reply = alice_openai.chat.completions.create(
        model="starter-chat", messages=ARITHMETIC, temperature=0
    )
    assert reply.object == "chat.completion" and reply.model == "starter-chat"
    assert reply.choices[0].message.role == "assistant"
    # The same model's greedy answer in this process: the endpoint adds nothing and cuts nothing.
    assert reply.choices[0].message.content == greedy_answer(starter_artifacts, ARITHMETIC)
    assert reply.choices[0].finish_reason == "stop"
    usage = reply.usage
    assert usage.prompt_tokens > 10 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    short = alice_openai.chat.completions.create(
        model="starter-chat", messages=JSON_TASK, temperature=0, max_completion_tokens=3
    )
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3


def test_a_stream_equals_the_plain_answer_for_the_same_seed(
    deployment: Deployment, alice_openai: openai.OpenAI
) -> None:
    options = dict(model="starter-chat", messages=JSON_TASK, temperature=0.7, seed=7)
    plain = alice_openai.chat.completions.create(**options)
    chunks = list(
        alice_openai.chat.completions.create(
            **options, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == plain.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 4 and text == plain.choices[0].message.content


def test_the_raw_stream_is_server_sent_events_ending_with_done(
    deployment: Deployment, alice_openai: openai.OpenAI, server: str
) -> None:
    body = {"model": "starter-chat", "messages": ARITHMETIC, "stream": True, "temperature": 0}
    status, headers, text = raw_request(f"{server}/chat/completions", body, alice_openai.api_key)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(event.startswith("data: {") for event in events[:-2])


def test_n_stop_and_seed(deployment: Deployment, alice_openai: openai.OpenAI) -> None:
    options = dict(model="starter-chat", messages=JSON_TASK, temperature=1.0, seed=3)
    two = alice_openai.chat.completions.create(**options, n=2)
    assert [c.index for c in two.choices] == [0, 1]
    again = alice_openai.chat.completions.create(**options, n=2)
    assert [c.message.content for c in again.choices] == [c.message.content for c in two.choices]
    full = alice_openai.chat.completions.create(**{**options, "temperature": 0}).choices[0]
    assert '"age"' in full.message.content
    cut = alice_openai.chat.completions.create(
        **{**options, "temperature": 0}, stop=['"age"', "never"]
    ).choices[0]
    assert cut.message.content == full.message.content.split('"age"')[0]
    assert cut.finish_reason == "stop"


def test_errors_come_in_openais_shape(
    deployment: Deployment, alice_openai: openai.OpenAI, server: str
) -> None:
    forged = openai.OpenAI(base_url=server, api_key="rft_0000_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        forged.models.list()
    assert raised.value.status_code == 401 and raised.value.code == "invalid_api_key"
    assert set(raised.value.body) == {"message", "type", "param", "code"}
    with pytest.raises(openai.NotFoundError) as missing:
        alice_openai.chat.completions.create(model="nope", messages=ARITHMETIC)
    assert missing.value.code == "model_not_found" and missing.value.param == "model"
    with pytest.raises(openai.BadRequestError) as bad:
        alice_openai.chat.completions.create(
            model="starter-chat", messages=ARITHMETIC, temperature=3
        )
    assert bad.value.param == "temperature" and bad.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as too_long:
        alice_openai.chat.completions.create(
            model="starter-chat", messages=ARITHMETIC, max_tokens=100_000
        )
    assert too_long.value.code == "context_length_exceeded"
    status, _, text = raw_request(f"{server}/no-such-thing")
    assert status == 404 and json.loads(text)["error"]["message"].startswith("Invalid URL")
    status, _, text = raw_request(f"{server}/chat/completions", {})
    assert status == 401 and json.loads(text)["error"]["code"] == "invalid_api_key"


def test_the_rate_limit_answers_429_with_retry_after(
    deployment: Deployment, alice_openai: openai.OpenAI
) -> None:
    for _ in range(RATE_LIMIT):
        alice_openai.models.list()
    with pytest.raises(openai.RateLimitError) as raised:
        alice_openai.models.list()
    assert raised.value.code == "rate_limit_exceeded"
    assert int(raised.value.response.headers["retry-after"]) >= 1


def test_v1_runs_only_the_middleware_an_api_key_endpoint_needs(
    server: str, alice: User, deployment: Deployment
) -> None:
    """/v1/ has its own Django handler: security headers, but no session, CSRF, login or
    clickjacking middleware (each would add two thread hops to every request)."""
    _, raw_key = create_api_key(alice, "headers")
    status, headers, _ = raw_request(f"{server}/models", key=raw_key)
    assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Frame-Options" not in headers and "Cookie" not in headers.get("Vary", "")
    page_status, page_headers, _ = raw_request(server.removesuffix("/v1") + "/login/")
    assert page_status == 200 and page_headers["X-Frame-Options"] == "DENY"


def test_requests_are_logged_with_metadata_and_the_log_id_header(
    alice: User, deployment: Deployment, alice_openai: openai.OpenAI, starter: ModelEntry
) -> None:
    raw = alice_openai.chat.completions.with_raw_response.create(
        model="starter-chat", messages=ARITHMETIC, temperature=0, metadata={"project": "demo"}
    )
    reply = raw.parse()
    log = InvocationLog.objects.get(pk=int(raw.headers["x-invocation-log-id"]))
    assert (log.owner, log.deployment) == (alice, "starter-chat")
    assert log.request_metadata == {"project": "demo"} and log.request["messages"] == ARITHMETIC
    assert log.response_text == reply.choices[0].message.content
    assert (log.prompt_tokens, log.completion_tokens) == (
        reply.usage.prompt_tokens, reply.usage.completion_tokens,
    )  # fmt: skip
    assert log.latency_ms > 0
    with alice_openai.chat.completions.with_streaming_response.create(
        model="starter-chat", messages=ARITHMETIC, temperature=0, stream=True
    ) as streamed:
        streamed_id = int(streamed.headers["x-invocation-log-id"])
        text = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
    streamed_log = InvocationLog.objects.get(pk=streamed_id)
    assert streamed_log.response_text == text == reply.choices[0].message.content
    assert streamed_log.completion_tokens == reply.usage.completion_tokens

    quiet = deploy(alice, starter, "quiet", log_requests=False, background=False)
    raw = alice_openai.chat.completions.with_raw_response.create(
        model=quiet.name, messages=ARITHMETIC
    )
    assert "x-invocation-log-id" not in raw.headers
    assert InvocationLog.objects.filter(deployment="quiet").count() == 0
    with pytest.raises(openai.BadRequestError) as bad:
        alice_openai.chat.completions.create(
            model="starter-chat", messages=ARITHMETIC, metadata={f"k{i}": "v" for i in range(17)}
        )
    assert bad.value.param == "metadata"


def test_a_client_that_leaves_mid_stream_stops_its_generation(
    alice: User, server: str, tmp_path: Path
) -> None:
    """The pool runs one generation at a time: a request after an abandoned stream is served at
    once only if the abandoned generation stopped. What was generated is still logged."""
    tiny = register_model(alice, str(save_tiny_model(tmp_path / "tiny")), "tiny")
    deploy(alice, tiny, "tiny", background=False)
    client = client_for(server, alice)
    long = dict(model="tiny", messages=SHORT, max_tokens=200, temperature=1.0, seed=1)
    started = time.monotonic()
    full = client.chat.completions.create(**long)
    full_seconds = time.monotonic() - started
    assert full.usage.completion_tokens >= 50  # long enough to notice (same seed: same length)
    with client.chat.completions.with_streaming_response.create(**long, stream=True) as stream:
        log_id = int(stream.headers["x-invocation-log-id"])
        for chunk in stream.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                break
    started = time.monotonic()
    client.chat.completions.create(model="tiny", messages=SHORT, max_tokens=1)
    assert time.monotonic() - started < full_seconds / 2
    log = InvocationLog.objects.get(pk=log_id)
    assert 0 < log.completion_tokens < full.usage.completion_tokens and log.response_text
