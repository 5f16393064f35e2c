"""Model as judge: instructions filled in per row, a judge model's reply read as a score.

The endpoint tests talk HTTP to a real OpenAI-compatible server started in the test (see
tests/support/judge_server.py); the local tests run a tiny model from the registry.
"""

from __future__ import annotations

import doctest
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.test import override_settings

import rewards.judge.scoring
from jobs.models import ModelEntry
from jobs.registry.loading import SamplingSettings, generate_answers, load_for_inference
from jobs.registry.services import register_model
from rewards.judge.scoring import parse_score, render_instructions, validate_judge_config
from rewards.models import RewardVersion
from rewards.scoring import score_batch
from rewards.services import create_reward
from rewards.types import RewardConfigError, Sample
from rftconsole.security.crypto import decrypt_text, encrypt_text
from tests.support.judge_server import JudgeServer, serve
from tests.support.tiny_models import save_tiny_model

INSTRUCTIONS = (
    "Rate the reply.\nQuestion:\n{{ prompt }}\nReply: {{response}}\n"
    "Expected: {{reference_answer}}\nTicket: {{metadata.ticket_id}}\nReply with: Score: <number>"
)
ROW = {
    "messages": [
        {"role": "system", "content": "You are a geography tutor"},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "reference_answer": {"final_answer": "Paris"},
    "ticket_id": "T-42",
}


@pytest.fixture
def judge_server() -> Iterator[JudgeServer]:
    with serve() as server:
        yield server


def judge_reward(owner: User, url: str, api_key: str | None = None, **config: Any) -> RewardVersion:
    settings = {
        "instructions": INSTRUCTIONS,
        "score_min": 0,
        "score_max": 10,
        "judge_type": "endpoint",
        "base_url": url,
        "model": "judge-model",
        "backoff_seconds": 0.01,
        **config,
    }
    return create_reward(
        owner, "judge", "judge", "", config=settings, pass_threshold=0.7, api_key=api_key
    )


def samples(*answers: str, row: dict[str, Any] = ROW) -> list[Sample]:
    return [Sample(str(i), answer, row) for i, answer in enumerate(answers)]


def metrics(result: Any) -> dict[str, float]:
    assert all(c["type"] == "Metric" for c in result.components)
    return {c["name"]: c["value"] for c in result.components}


def test_placeholders_are_filled_in_from_the_row() -> None:
    row = {**ROW, "tags": ["geo", "easy"]}
    template = (
        "{{prompt}}|{{ response }}|{{reference_answer}}|{{metadata.ticket_id}}|{{metadata.tags}}"
    )
    rendered = render_instructions(template, Sample("0", "Paris {{prompt}}", row))
    assert rendered == (
        "system: You are a geography tutor\nuser: What is the capital of France?"
        '|Paris {{prompt}}|{"final_answer": "Paris"}|T-42|["geo", "easy"]'
    )


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("{{response}} {{answer}}", "{{answer}}"),
        ("{{response}} {{metadata.customer}}", "'customer'"),
        ("{{response}} {{metadata.messages}}", "'messages'"),
    ],
)
def test_an_unknown_placeholder_or_missing_field_is_named(template: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        render_instructions(template, Sample("0", "Paris", ROW))


def test_a_row_missing_a_placeholder_field_is_that_rows_error(
    alice: User, judge_server: JudgeServer
) -> None:
    version = judge_reward(alice, judge_server.url)
    row_without_ticket = {k: v for k, v in ROW.items() if k != "ticket_id"}
    batch = samples("Paris") + [Sample("1", "Paris", row_without_ticket)]
    good, bad = score_batch(version, batch)
    assert good.error is None and good.score == pytest.approx(0.7)
    assert "{{metadata.ticket_id}}" in bad.error and "'ticket_id'" in bad.error
    assert len(judge_server.requests) == 1  # the broken row never reached the judge


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ('{"score": 8, "reason": "right"}', 8.0),
        ('Sure.\n```json\n{"score": 6.5}\n```', 6.5),
        ("Correct but terse.\nScore: 7", 7.0),
        ("**Score:** 9 - the 2 facts are right", 9.0),
        ("score = 7.5", 7.5),
        ("I give it 7/10.", 7.0),
        ("Verdict: **8**", 8.0),
        ("4", 4.0),
        ("Steps 2 and 14 are off, so 3", 3.0),
    ],
)
def test_it_reads_the_score_in_the_forms_judges_write(reply: str, score: float) -> None:
    assert parse_score(reply, 0, 10) == score


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("I think it is good", "no score in the judge's reply: 'I think it is good'"),
        ("Score: 11", "score 11 is outside 0–10: 'Score: 11'"),
        ('{"score": -2}', "score -2 is outside 0–10"),
        ("x" * 300, "'" + "x" * 120 + "…'"),
    ],
)
def test_a_reply_without_a_usable_score_is_an_error_quoting_it(reply: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_score(reply, 0, 10)
    assert message in str(raised.value)


def test_the_parse_examples_in_the_docstrings_hold() -> None:
    result = doctest.testmod(rewards.judge.scoring)
    assert result.attempted >= 10 and result.failed == 0


def test_it_scores_answers_with_a_judge_endpoint(alice: User, judge_server: JudgeServer) -> None:
    judge_server.answer = lambda body: (
        "Correct.\nScore: 8" if "Reply: Paris" in body["messages"][0]["content"] else '{"score": 3}'
    )
    version = judge_reward(alice, judge_server.url, api_key="sk-test", max_tokens=64)
    right, wrong = score_batch(version, samples("Paris", "Lyon"))
    assert (right.score, wrong.score) == (pytest.approx(0.8), pytest.approx(0.3))
    assert right.error is None and right.output == "Correct.\nScore: 8"
    found = metrics(right)
    assert found["judge_score"] == 8 and found["judge_attempts"] == 1
    assert found["judge_latency_ms"] > 0
    assert found["judge_completion_tokens"] == 3 and found["judge_prompt_tokens"] > 20
    request = judge_server.requests[0]
    assert request["headers"]["authorization"] == "Bearer sk-test"
    assert request["body"]["model"] == "judge-model" and request["body"]["max_tokens"] == 64
    assert request["body"]["temperature"] == 0.0
    prompt = judge_server.prompts()[0]
    assert "user: What is the capital of France?\nReply: " in prompt
    assert 'Expected: {"final_answer": "Paris"}\nTicket: T-42' in prompt
    assert "{{" not in prompt


def test_a_reward_without_a_key_sends_a_placeholder_key(
    alice: User, judge_server: JudgeServer
) -> None:
    score_batch(judge_reward(alice, judge_server.url), samples("Paris"))
    assert judge_server.requests[0]["headers"]["authorization"] == "Bearer not-needed"


def test_garbage_from_the_judge_is_an_error_for_that_row_only(
    alice: User, judge_server: JudgeServer
) -> None:
    judge_server.answer = lambda body: (
        "I think it is good" if "Reply: Lyon" in body["messages"][0]["content"] else "Score: 10"
    )
    first, garbage, last = score_batch(
        judge_reward(alice, judge_server.url), samples("Paris", "Lyon", "Paris!")
    )
    assert first.score == last.score == 1.0 and first.error is None and last.error is None
    assert garbage.score == 0.0 and garbage.output == "I think it is good"
    assert garbage.error == "no score in the judge's reply: 'I think it is good'"


@pytest.mark.parametrize("status", [500, 503, 429])
def test_overload_and_server_errors_are_retried(
    alice: User, judge_server: JudgeServer, status: int
) -> None:
    judge_server.queue(status, status, "Score: 9")
    (result,) = score_batch(judge_reward(alice, judge_server.url), samples("Paris"))
    assert result.error is None and result.score == pytest.approx(0.9)
    assert metrics(result)["judge_attempts"] == 3 and len(judge_server.requests) == 3


def test_a_refused_api_key_fails_at_once(alice: User, judge_server: JudgeServer) -> None:
    judge_server.queue(401)
    version = judge_reward(alice, judge_server.url, api_key="sk-wrong", max_retries=3)
    (result,) = score_batch(version, samples("Paris"))
    assert result.error == "the judge endpoint refused the API key (401)"
    assert metrics(result)["judge_attempts"] == 1 and len(judge_server.requests) == 1


def test_other_client_errors_are_not_retried(alice: User, judge_server: JudgeServer) -> None:
    judge_server.queue(404)
    (result,) = score_batch(judge_reward(alice, judge_server.url), samples("Paris"))
    assert "answered HTTP 404: " in result.error and "test server answers 404" in result.error
    assert len(judge_server.requests) == 1


def test_a_judge_that_is_down_fails_after_its_retries(alice: User) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    (result,) = score_batch(judge_reward(alice, url, max_retries=1), samples("Paris"))
    assert result.error == f"the judge endpoint failed 2 time(s): cannot connect to {url}"
    assert metrics(result)["judge_attempts"] == 2


def test_a_judge_that_does_not_answer_in_time_times_out(
    alice: User, judge_server: JudgeServer
) -> None:
    judge_server.delay_seconds = 1.5
    version = judge_reward(alice, judge_server.url, timeout_seconds=1, max_retries=0)
    (result,) = score_batch(version, samples("Paris"))
    assert result.error == "the judge endpoint failed 1 time(s): no reply within 1 s"


def test_at_most_concurrency_requests_are_in_flight(alice: User, judge_server: JudgeServer) -> None:
    judge_server.delay_seconds = 0.2
    version = judge_reward(alice, judge_server.url, concurrency=2)
    results = score_batch(version, samples(*["Paris"] * 6))
    assert [r.score for r in results] == [pytest.approx(0.7)] * 6
    assert judge_server.max_in_flight == 2 and len(judge_server.requests) == 6


def test_the_api_key_is_stored_encrypted_with_the_installations_key(
    alice: User, judge_server: JudgeServer
) -> None:
    version = judge_reward(alice, judge_server.url, api_key="sk-test")
    stored = version.config["api_key_encrypted"]
    assert "sk-test" not in stored and decrypt_text(stored) == "sk-test"
    with override_settings(SECRET_KEY="a-different-secret-key"):
        with pytest.raises(ValueError, match="stored secret cannot be decrypted: was SECRET_KEY"):
            decrypt_text(stored)
        with pytest.raises(RewardConfigError, match="cannot be decrypted"):
            score_batch(version, samples("Paris"))
    assert judge_server.requests == []


def test_a_dedicated_encryption_key_survives_a_new_secret_key() -> None:
    with override_settings(RFT_ENCRYPTION_KEY=Fernet.generate_key().decode()):
        token = encrypt_text("sk-test")
        with override_settings(SECRET_KEY="a-different-secret-key"):
            assert decrypt_text(token) == "sk-test"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        decrypt_text(token)  # made with RFT_ENCRYPTION_KEY, not with SECRET_KEY


VALID = {
    "instructions": "Rate {{response}}",
    "judge_type": "endpoint",
    "base_url": "http://127.0.0.1:8000/v1",
    "model": "m",
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"instructions": ""}, "Write the judge instructions."),
        ({"instructions": "Rate {{prompt}}"}, "add {{response}}"),
        ({"instructions": "{{response}} {{answer}}"}, "Unknown placeholder {{answer}}"),
        ({"score_min": 10, "score_max": 0}, "score_min (10) must be below score_max (0)."),
        ({"score_max": "ten"}, "score_min and score_max must be numbers."),
        ({"judge_type": "oracle"}, "judge_type must be 'endpoint' or 'local'"),
        ({"base_url": ""}, "base_url must be an http:// or https:// URL"),
        ({"base_url": "ftp://host/v1"}, "base_url must be an http:// or https:// URL"),
        ({"model": ""}, "Name the model"),
        ({"judge_type": "local"}, "Choose the registered model that judges."),
        ({"concurrency": 0}, "concurrency must be a whole number from 1 to 32."),
        ({"concurrency": 33}, "concurrency must be a whole number from 1 to 32."),
        ({"max_retries": 11}, "max_retries must be a whole number from 0 to 10."),
        ({"max_retries": -1}, "max_retries must be a whole number from 0 to 10."),
        ({"timeout_seconds": 0}, "timeout_seconds must be a whole number from 1 to 600."),
        ({"timeout_seconds": 601}, "timeout_seconds must be a whole number from 1 to 600."),
    ],
)
def test_validation_names_each_problem(change: dict[str, Any], problem: str) -> None:
    assert validate_judge_config(VALID) == []
    assert validate_judge_config({"local_model": "m", **VALID, "judge_type": "local"}) == []
    problems = validate_judge_config({**VALID, **change})
    assert len(problems) == 1 and problem in problems[0]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)  # the same random weights, so the same replies, on every run
    return save_tiny_model(tmp_path_factory.mktemp("judge") / "tiny")


def local_reward(owner: User, model_name: str) -> RewardVersion:
    config = {"instructions": INSTRUCTIONS, "judge_type": "local", "local_model": model_name}
    return create_reward(
        owner, f"judged by {model_name}", "judge", config={**config, "max_tokens": 8}
    )


def assert_scored_or_quoted(results: list[Any]) -> None:
    """A random tiny model writes anything: a usable score, or an error quoting its reply."""
    for result in results:
        if result.error is None:
            assert 0.0 <= result.score <= 1.0 and "judge_score" in metrics(result)
        else:
            assert result.score == 0.0 and result.error.startswith(("no score", "the judge's"))
            assert repr(" ".join(result.output.split())[:120])[:-1] in result.error


def test_a_registered_local_model_can_judge(alice: User, bob: User, tiny_model: Path) -> None:
    register_model(alice, str(tiny_model), "starter")
    bobs_starter = register_model(bob, str(tiny_model), "starter")
    ModelEntry.objects.filter(pk=bobs_starter.pk).update(path="/bob/only")  # fails if loaded
    bobs = register_model(bob, str(tiny_model), "bobs-judge")
    results = score_batch(local_reward(alice, "starter"), samples("Paris", "Lyon"))
    assert_scored_or_quoted(results)
    found = metrics(results[0])
    assert found["judge_attempts"] == 1 and found["judge_prompt_tokens"] > 20
    assert 0 < found["judge_completion_tokens"] <= 8
    with pytest.raises(RewardConfigError, match="'bobs-judge' is not one of your models"):
        score_batch(local_reward(alice, bobs.name), samples("Paris"))


def test_a_real_model_behind_an_openai_endpoint_can_judge(
    alice: User, judge_server: JudgeServer, tiny_model: Path
) -> None:
    model, tokenizer = load_for_inference(register_model(alice, str(tiny_model), "tiny"))
    said: list[str] = []

    def generate(body: dict[str, Any]) -> str:
        sampling = SamplingSettings(temperature=0.0, max_new_tokens=body["max_tokens"])
        said.append(generate_answers(model, tokenizer, [body["messages"]], sampling)[0])
        return said[-1]

    judge_server.answer = generate
    version = judge_reward(alice, judge_server.url, max_tokens=8, concurrency=1)
    results = score_batch(version, samples("Paris", "Lyon", "Marseille"))
    assert [r.output for r in results] == said and len(said) == 3
    assert_scored_or_quoted(results)
    for result, reply in zip(results, said, strict=True):
        try:
            parse_score(reply, 0, 10)
        except ValueError as error:
            assert result.error == str(error)
        else:
            assert result.error is None


def test_a_judge_may_only_call_allow_listed_hosts(alice: User, settings: Any) -> None:
    from rewards.services import RewardError

    url = "http://10.0.0.5:8000/v1"
    config = {"instructions": INSTRUCTIONS, "judge_type": "endpoint", "base_url": url, "model": "m"}
    assert any("may not call 10.0.0.5" in p for p in validate_judge_config(config))
    with pytest.raises(RewardError, match="RFT_JUDGE_ALLOWED_HOSTS"):
        judge_reward(alice, url)
    settings.RFT_JUDGE_ALLOWED_HOSTS = ["*"]
    version = judge_reward(alice, url)
    settings.RFT_JUDGE_ALLOWED_HOSTS = ["127.0.0.1"]  # narrowed after the reward was saved
    with pytest.raises(RewardConfigError, match="may not call 10.0.0.5"):
        score_batch(version, samples("an answer"))


def test_a_judge_base_url_python_cannot_parse_is_a_config_error_not_a_crash() -> None:
    config = {"judge_type": "endpoint", "model": "m", "instructions": "{{response}}"}
    for url in ("http://[::1", "http://[::1]x/v1"):
        problems = validate_judge_config({**config, "base_url": url})
        assert any("not a valid URL" in problem for problem in problems), problems
    assert not any(  # control: a good URL has no such problem
        "valid URL" in p
        for p in validate_judge_config({**config, "base_url": "http://127.0.0.1:8/v1"})
    )
