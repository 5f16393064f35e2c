"""`/v1/completions` with the official `openai` client against a real console: plain and
streamed text, `echo`, `logprobs` equal to the model's own forward pass, `max_tokens: 0` scoring
of token-id prompts (what lm-eval sends), refused parameters, and the invocation log."""

from __future__ import annotations

import math
import time

import openai
import pytest
from django.contrib.auth.models import User
from django.test import Client

from playground.models import InvocationLog
from playground.v1.completions import prefix_lengths
from tests.support import v1_reference
from tests.support.v1_reference import MODEL, Reference

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

# The shared /v1 fixtures, found by pytest under these names.
alice_openai = v1_reference.alice_openai
deployment = v1_reference.deployment
reference = v1_reference.reference
server = v1_reference.server
starter = v1_reference.starter

PROMPT = "Tom has 3 apples and gets 5 more. How many apples now? Answer after ####."
CLOSE = 1e-4


def test_a_completion_continues_the_prompt_plain_streamed_and_logged(
    alice_openai: openai.OpenAI, reference: Reference, alice: User, alice_client: Client
) -> None:
    prompt_ids = reference.ids(PROMPT)
    greedy = reference.greedy(prompt_ids, 8)
    raw = alice_openai.completions.with_raw_response.create(
        model=MODEL, prompt=PROMPT, max_tokens=8, temperature=0,
        extra_body={"metadata": {"project": "eval"}},
    )  # fmt: skip
    reply = raw.parse()
    choice = reply.choices[0]
    assert reply.object == "text_completion" and reply.model == MODEL
    assert choice.text == reference.text(greedy) and choice.logprobs is None
    assert choice.finish_reason == ("length" if len(greedy) == 8 else "stop")
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        len(prompt_ids),
        len(greedy),
    )

    chunks = list(
        alice_openai.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=8, temperature=0, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == choice.text
    assert chunks[-2].choices[0].finish_reason == choice.finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage == reply.usage
    default = alice_openai.completions.create(model=MODEL, prompt=PROMPT, temperature=0)
    assert 0 < default.usage.completion_tokens <= 16  # OpenAI's default max_tokens

    log = InvocationLog.objects.get(pk=int(raw.headers["x-invocation-log-id"]))
    assert (log.owner, log.deployment, log.operation) == (alice, MODEL, "completions")
    assert log.request["prompt"] == PROMPT and log.request_metadata == {"project": "eval"}
    assert log.response_text == choice.text and log.latency_ms > 0
    assert (log.prompt_tokens, log.completion_tokens) == (len(prompt_ids), len(greedy))
    page = alice_client.get(f"/deployments/logs/{log.pk}/").content.decode()
    assert PROMPT in page and "/v1/completions" in page and "max_tokens=8" in page
    listing = alice_client.get("/deployments/logs/").content.decode()
    assert PROMPT in listing


def test_echo_and_logprobs_are_the_models_own_forward_pass(
    alice_openai: openai.OpenAI, reference: Reference
) -> None:
    prompt_ids = reference.ids(PROMPT)
    answer_ids = reference.greedy(prompt_ids, 4)
    ids = prompt_ids + answer_ids
    table = reference.log_softmax(ids)
    reply = alice_openai.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=4, temperature=0, echo=True, logprobs=2
    )
    choice = reply.choices[0]
    logprobs = choice.logprobs
    assert choice.text == PROMPT + reference.text(answer_ids)
    assert len(logprobs.tokens) == len(ids) and logprobs.tokens[0] == reference.tokenizer.decode(
        ids[:1]
    )
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
    expected = reference.logprobs(ids)
    assert all(
        math.isclose(a, b, abs_tol=CLOSE)
        for a, b in zip(logprobs.token_logprobs[1:], expected, strict=True)
    )
    for position in range(1, len(ids)):
        top = logprobs.top_logprobs[position]
        chosen = logprobs.tokens[position]
        assert 1 <= len(top) <= 3 and top[chosen] == logprobs.token_logprobs[position]
        assert math.isclose(max(top.values()), float(table[position - 1].max()), abs_tol=CLOSE)
    offsets = logprobs.text_offset
    assert offsets[0] == 0 and offsets == sorted(offsets)
    assert offsets[len(prompt_ids)] == len(PROMPT)  # the answer starts where the prompt ends

    plain = alice_openai.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=4, temperature=0, logprobs=0
    ).choices[0]
    assert plain.text == reference.text(answer_ids) and len(plain.logprobs.tokens) == len(
        answer_ids
    )
    assert all(
        math.isclose(a, b, abs_tol=CLOSE)
        for a, b in zip(plain.logprobs.token_logprobs, expected[-len(answer_ids) :], strict=True)
    )
    assert all(len(top) == 1 for top in plain.logprobs.top_logprobs)  # just the chosen token
    assert plain.logprobs.text_offset[0] == 0


def test_max_tokens_0_scores_token_id_prompts_as_lm_eval_sends_them(
    alice_openai: openai.OpenAI, reference: Reference
) -> None:
    prompts = [reference.ids("2 + 3 = 5"), reference.ids("Ana has 4 pens and gets 4 more. #### 8")]
    reply = alice_openai.completions.create(
        model=MODEL, prompt=prompts, max_tokens=0, echo=True, logprobs=1, temperature=0
    )
    assert [c.index for c in reply.choices] == [0, 1]
    assert (
        reply.usage.prompt_tokens == sum(map(len, prompts)) and reply.usage.completion_tokens == 0
    )
    for choice, ids in zip(reply.choices, prompts, strict=True):
        assert choice.finish_reason == "length" and choice.text == reference.tokenizer.decode(ids)
        scored = choice.logprobs.token_logprobs
        assert len(scored) == len(ids) and scored[0] is None
        # The sum a harness takes for a log-likelihood is the forward pass's sum.
        assert math.isclose(sum(scored[1:]), sum(reference.logprobs(ids)), abs_tol=CLOSE * len(ids))

    two_each = alice_openai.completions.create(
        model=MODEL, prompt=["2 + 3 =", PROMPT], n=2, max_tokens=3, temperature=0
    )
    texts = [c.text for c in sorted(two_each.choices, key=lambda c: c.index)]
    first = reference.text(reference.greedy(reference.ids("2 + 3 ="), 3))
    assert texts[:2] == [first, first] and texts[2] == texts[3] != first


def test_echo_offsets_of_a_long_prompt_are_each_prefixs_length_in_linear_time(
    alice_openai: openai.OpenAI, reference: Reference
) -> None:
    # Every token id the tokenizer has, special and partial-character ones too, over most of the
    # context: the text_offset of token i is the length of the text of the tokens before it.
    tokenizer = reference.tokenizer
    ids = [(7 * i) % len(tokenizer) for i in range(500)]
    reply = alice_openai.completions.create(
        model=MODEL, prompt=ids, max_tokens=0, echo=True, logprobs=0
    )
    offsets = reply.choices[0].logprobs.text_offset
    assert offsets == [len(tokenizer.decode(ids[:i])) for i in range(len(ids))]
    # A 32k-token prompt's offsets (a long-context model, echo and logprobs) took minutes of the
    # web process's CPU when every prefix was decoded whole; now about a second, still exact.
    long = [(7 * i) % len(tokenizer) for i in range(32_768)]
    started = time.monotonic()
    lengths = prefix_lengths(tokenizer, long)
    assert time.monotonic() - started < 20
    for i in (0, 1, 127, 128, 129, 4_000, 32_767):
        assert lengths[i] == len(tokenizer.decode(long[:i]))


REFUSED = [
    ("suffix", {"suffix": "THE END"}),
    ("best_of", {"best_of": 2}),
    ("presence_penalty", {"presence_penalty": 2.5}),
    ("logit_bias", {"logit_bias": {"100000": 10}}),
    ("logprobs", {"logprobs": 6}),
    ("logprobs", {"logprobs": 1, "stream": True}),
    ("guided_json", {"extra_body": {"guided_json": {"type": "object"}}}),
    ("prompt", {"prompt": []}),
    ("prompt", {"prompt": [[1, 2, 100_000]]}),
    ("prompt", {"prompt": [{"text": "hi"}]}),
    ("max_tokens", {"max_tokens": -1}),
    ("prompt", {"prompt": ["2 + 2 ="] * 65}),
    ("n", {"prompt": ["2 + 2 ="] * 8, "n": 9}),
]


@pytest.mark.parametrize(
    ("param", "options"), REFUSED, ids=[f"{p}-{i}" for i, (p, _) in enumerate(REFUSED)]
)
def test_unsupported_or_bad_parameters_are_refused_by_name(
    alice_openai: openai.OpenAI, param: str, options: dict
) -> None:
    request = {"model": MODEL, "prompt": PROMPT, "max_tokens": 2, **options}
    with pytest.raises(openai.BadRequestError) as refused:
        result = alice_openai.completions.create(**request)
        list(result) if options.get("stream") else None
    assert refused.value.param == param and refused.value.type == "invalid_request_error"


def test_the_values_that_change_nothing_are_accepted(alice_openai: openai.OpenAI) -> None:
    """The control for the refusals: the same parameters, asking for nothing unsupported."""
    neutral = {"suffix": None, "best_of": 1}
    reply = alice_openai.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=2, logprobs=5, user="eval-1", seed=3, stop=["\n"],
        extra_body=neutral,
    )  # fmt: skip
    assert len(reply.choices[0].logprobs.tokens) <= reply.usage.completion_tokens <= 2
    with pytest.raises(openai.BadRequestError) as too_long:
        alice_openai.completions.create(model=MODEL, prompt=PROMPT, max_tokens=100_000)
    assert too_long.value.code == "context_length_exceeded" and too_long.value.param == "prompt"


def test_penalties_and_logit_bias_apply_as_on_chat(
    alice_openai: openai.OpenAI, reference: Reference
) -> None:
    greedy = reference.greedy(reference.ids(PROMPT), 12)
    plain = dict(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0)
    assert alice_openai.completions.create(**plain).choices[0].text == reference.text(greedy)
    seven = str(reference.tokenizer.convert_tokens_to_ids("7"))
    forced = alice_openai.completions.create(**{**plain, "max_tokens": 4}, logit_bias={seven: 100})
    assert forced.choices[0].text == "7777"  # +100 makes one token the whole answer
    first = reference.text(greedy[:1])
    banned = alice_openai.completions.create(**plain, logprobs=1, logit_bias={str(greedy[0]): -100})
    assert first not in banned.choices[0].logprobs.tokens  # -100 bans greedy's first token
    penalised = alice_openai.completions.create(**plain, frequency_penalty=2, presence_penalty=2)
    assert penalised.choices[0].text != reference.text(greedy)  # the repeats are penalised
    same = alice_openai.completions.create(**plain, frequency_penalty=0, logit_bias={seven: 0})
    assert same.choices[0].text == reference.text(greedy)  # control: zero changes nothing
