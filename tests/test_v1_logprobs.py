"""`logprobs` / `top_logprobs` on chat completions (the official `openai` client against a real
console): OpenAI's shape, streamed and not, and the numbers are the model's own — the log-softmax
of its raw next-token logits, as a forward pass in this process computes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.support import v1_reference

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

# The shared /v1 fixtures (a module's own console, alice's starter deployment, her client).
alice_openai = v1_reference.alice_openai
deployment = v1_reference.deployment
server = v1_reference.server
starter = v1_reference.starter

JSON_TASK = [{"role": "user", "content": "Hello"}]  # the starter answers with a JSON object
GREEDY = {"model": "starter-chat", "messages": JSON_TASK, "temperature": 0, "max_tokens": 12}


def forward_pass_logprobs(
    starter_artifacts: Path, max_tokens: int, top: int
) -> list[tuple[str, float, list[tuple[str, float]]]]:
    """The starter's greedy answer to JSON_TASK through transformers alone, and for each answer
    token: its text, its log-probability and the `top` most likely tokens, all read off one
    forward pass over prompt + answer."""
    path = starter_artifacts / "models" / "starter"
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    prompt = tokenizer.apply_chat_template(JSON_TASK, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        output = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
            max_new_tokens=max_tokens, temperature=None, top_p=None, top_k=None,
            pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
        answer = [i for i in output[0, ids.shape[1] :].tolist() if i != tokenizer.eos_token_id]
        logits = model(torch.tensor([ids[0].tolist() + answer])).logits[0]
    rows = torch.log_softmax(logits.float(), dim=-1)[ids.shape[1] - 1 : -1]
    expected = []
    for token, row in zip(answer, rows, strict=True):
        best = torch.topk(row, top)
        alternatives = [
            (tokenizer.decode([i]), value)
            for i, value in zip(best.indices.tolist(), best.values.tolist(), strict=True)
        ]
        expected.append((tokenizer.decode([token]), row[token].item(), alternatives))
    return expected


def assert_matches(content: list[Any], expected: list[tuple[str, float, list]]) -> None:
    assert [entry.token for entry in content] == [token for token, _, _ in expected]
    for entry, (token, logprob, alternatives) in zip(content, expected, strict=True):
        assert entry.logprob == pytest.approx(logprob, abs=1e-4)
        assert entry.bytes == list(token.encode())
        assert [a.token for a in entry.top_logprobs] == [t for t, _ in alternatives]
        assert [a.logprob for a in entry.top_logprobs] == pytest.approx(
            [value for _, value in alternatives], abs=1e-4
        )


def test_logprobs_are_the_models_own_streamed_and_not(
    alice_openai: openai.OpenAI, starter_artifacts: Path
) -> None:
    expected = forward_pass_logprobs(starter_artifacts, GREEDY["max_tokens"], top=3)
    reply = alice_openai.chat.completions.create(**GREEDY, logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content
    assert_matches(content, expected)
    assert "".join(entry.token for entry in content) == reply.choices[0].message.content
    chunks = list(
        alice_openai.chat.completions.create(**GREEDY, logprobs=True, top_logprobs=3, stream=True)
    )
    streamed = [
        entry for c in chunks if c.choices and c.choices[0].logprobs
        for entry in c.choices[0].logprobs.content
    ]  # fmt: skip
    assert_matches(streamed, expected)
    for c in chunks:  # each chunk carries the logprobs of the tokens in its delta
        if c.choices and c.choices[0].delta.content:
            tokens = "".join(entry.token for entry in c.choices[0].logprobs.content)
            assert tokens == c.choices[0].delta.content
    plain = alice_openai.chat.completions.create(**GREEDY)  # control: not asked, not sent
    assert plain.choices[0].logprobs is None


def test_top_logprobs_are_sorted_and_as_many_as_asked(alice_openai: openai.OpenAI) -> None:
    sampled = {**GREEDY, "temperature": 1.0, "seed": 5}
    reply = alice_openai.chat.completions.create(**sampled, logprobs=True, top_logprobs=5)
    content = reply.choices[0].logprobs.content
    # Every generated token but the one that ends the turn (not part of the content).
    ended = reply.choices[0].finish_reason == "stop"
    assert len(content) == reply.usage.completion_tokens - ended > 0
    for entry in content:
        values = [alternative.logprob for alternative in entry.top_logprobs]
        assert len(values) == 5 and values == sorted(values, reverse=True)
        assert entry.logprob <= values[0] + 1e-6  # a sampled token may be below the best
    bare = alice_openai.chat.completions.create(**sampled, logprobs=True)
    assert all(entry.top_logprobs == [] for entry in bare.choices[0].logprobs.content)


def test_logprobs_end_where_a_stop_sequence_cuts_the_text(alice_openai: openai.OpenAI) -> None:
    long = {**GREEDY, "max_tokens": 100}
    full = alice_openai.chat.completions.create(**long).choices[0]
    assert '"age"' in full.message.content
    cut = alice_openai.chat.completions.create(**long, stop=['"age"'], logprobs=True).choices[0]
    assert cut.message.content == full.message.content.split('"age"')[0]
    # Tokens that start inside the stop sequence are dropped with it; one that straddles the
    # cut is kept: the tokens' text covers the content, and each token starts within it.
    tokens = [entry.token for entry in cut.logprobs.content]
    assert "".join(tokens).startswith(cut.message.content)
    assert len("".join(tokens[:-1])) < len(cut.message.content)


def test_top_logprobs_need_logprobs_and_at_most_20(alice_openai: openai.OpenAI) -> None:
    for body in ({"top_logprobs": 2}, {"logprobs": True, "top_logprobs": 21}):
        with pytest.raises(openai.BadRequestError) as raised:
            alice_openai.chat.completions.create(**GREEDY, extra_body=body)
        assert raised.value.param == "top_logprobs", body
    with pytest.raises(openai.BadRequestError) as raised:
        alice_openai.chat.completions.create(**GREEDY, extra_body={"logprobs": "yes"})
    assert raised.value.param == "logprobs"
    ok = alice_openai.chat.completions.create(**GREEDY, logprobs=True, top_logprobs=20)  # control
    assert len(ok.choices[0].logprobs.content[0].top_logprobs) == 20
