"""OpenAI's graders against a real Daphne serving the console, driven by the official `openai`
client (`client.fine_tuning.alpha.graders.run` / `.validate`): for each grader type a good grader
gets the right reward in OpenAI's shape and a broken one the right error flag; validate accepts
the good ones and names the field of each broken one. Python graders run in the real sandbox;
model graders ask the fake judge endpoint (tests/support/judge_server.py) or a registry model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from django.contrib.auth.models import User

from jobs.registry.services import register_model
from rftconsole.models import ApiKeyScope
from rftconsole.services import create_api_key
from tests.support.judge_server import JudgeServer, serve
from tests.support.stack import serving_v1

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

SAMPLE = "{{sample.output_text}}"
ITEM = {"answer": "Paris", "facts": {"capital": "Paris"}, "reference": "the cat sat on the mat"}
GRADE_CODE = """
import os

def grade(sample, item):
    # in the sandbox: no /etc at all, and the code runs as nobody (65534)
    contained = not os.path.exists("/etc/passwd") and os.getuid() == 65534
    right = sample["output_json"]["city"] == item["answer"]
    return 1.0 if (contained and right) else 0.25
"""
REWARD_TIMEOUT = 5  # seconds a python grader may take on the test server
RAISING_CODE = "def grade(sample, item):\n    raise KeyError('no such field')\n"


def string_check(operation: str = "eq", reference: str = "{{item.answer}}") -> dict[str, Any]:
    return {
        "type": "string_check", "name": "city", "input": SAMPLE,
        "reference": reference, "operation": operation,
    }  # fmt: skip


def similarity(metric: str) -> dict[str, Any]:
    return {
        "type": "text_similarity", "name": "similar", "input": SAMPLE,
        "reference": "{{item.reference}}", "evaluation_metric": metric,
    }  # fmt: skip


def python(source: str = GRADE_CODE) -> dict[str, Any]:
    return {"type": "python", "name": "code", "source": source}


def score_model(judge: JudgeServer, **extra: Any) -> dict[str, Any]:
    return {
        "type": "score_model", "name": "judge", "model": "judge-model", "base_url": judge.url,
        "api_key": "sk-judge-secret", "range": [0, 1],
        "input": [
            {"role": "system", "content": "Grade the answer to: capital of France?"},
            {"role": "user", "content": "Answer: {{sample.output_text}}\nExpected: {{item.answer}}"},
        ],
        **extra,
    }  # fmt: skip


def label_model(judge: JudgeServer) -> dict[str, Any]:
    return {
        "type": "label_model", "name": "labeler", "model": "judge-model", "base_url": judge.url,
        "labels": ["correct", "incorrect"], "passing_labels": ["correct"],
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Is {{sample.output_text}} right?"}]}],
    }  # fmt: skip


def multi(formula: str = "0.5 * code + 0.5 * city") -> dict[str, Any]:
    return {
        "type": "multi", "name": "both", "calculate_output": formula,
        "graders": {"code": python(), "city": string_check("like")},
    }  # fmt: skip


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_v1(
        tmp_path_factory.mktemp("daphne"), RFT_REWARD_TIMEOUT=str(REWARD_TIMEOUT)
    ) as url:
        yield url


@pytest.fixture
def judge() -> Iterator[JudgeServer]:
    with serve() as server:
        yield server


def client_for(server: str, user: User, scope: str = ApiKeyScope.API) -> openai.OpenAI:
    _, raw_key = create_api_key(user, "graders", scope)
    return openai.OpenAI(base_url=server, api_key=raw_key, max_retries=0, timeout=120)


@pytest.fixture
def client(server: str, alice: User) -> openai.OpenAI:
    return client_for(server, alice)


def run(client: openai.OpenAI, grader: dict[str, Any], sample: str, item: Any = None) -> Any:
    return client.fine_tuning.alpha.graders.run(
        grader=grader,  # type: ignore[arg-type]
        model_sample=sample,
        item=ITEM if item is None else item,
    )


def raised(result: Any) -> set[str]:
    """The error flags a run raised."""
    errors = result.metadata.errors.model_dump(by_alias=True)
    return {name for name, value in errors.items() if value is True}


def refused(client: openai.OpenAI, grader: dict[str, Any]) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.alpha.graders.validate(grader=grader)  # type: ignore[arg-type]
    return caught.value


def test_string_check_follows_openais_operations(client: openai.OpenAI) -> None:
    cases = [
        ("eq", "Paris", 1.0), ("eq", "paris", 0.0), ("ne", "Lyon", 1.0), ("ne", "Paris", 0.0),
        ("like", "It is Paris.", 1.0), ("like", "It is PARIS.", 0.0), ("ilike", "It is PARIS.", 1.0),
        ("ilike", "It is Lyon.", 0.0),
    ]  # fmt: skip
    for operation, sample, reward in cases:
        result = run(client, string_check(operation), sample)
        assert (operation, sample, result.reward) == (operation, sample, reward)
    assert result.metadata.name == "city" and result.metadata.type == "string_check"
    assert raised(result) == set() and result.sub_rewards == {}
    assert result.metadata.token_usage is None and result.model_grader_token_usage_per_model == {}
    assert result.metadata.execution_time >= 0


def test_templates_read_json_paths_of_the_sample_and_the_item(client: openai.OpenAI) -> None:
    grader = string_check("eq", "{{item.facts.capital}}") | {"input": "{{sample.output_json.city}}"}
    assert run(client, grader, '{"city": "Paris"}').reward == 1.0
    result = run(client, grader, "Paris, not JSON")
    assert raised(result) == {"sample_parse_error"} and result.reward == 0.0


def test_a_variable_the_item_lacks_is_an_invalid_variable_error(client: openai.OpenAI) -> None:
    result = run(client, string_check("eq", "{{item.missing}}"), "Paris")
    assert raised(result) == {"invalid_variable_error"} and result.reward == 0.0
    details = result.metadata.errors.model_extra["invalid_variable_error_details"]
    assert "missing" in details
    unknown = run(client, string_check("eq", "{{answer}}"), "Paris")  # no namespace
    assert raised(unknown) == {"invalid_variable_error"}


def test_text_similarity_computes_each_offline_metric(client: openai.OpenAI) -> None:
    metrics = ["fuzzy_match", "bleu", "gleu", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l", "cosine"]  # fmt: skip
    for metric in metrics:
        same = run(client, similarity(metric), ITEM["reference"])
        other = run(client, similarity(metric), "dogs bark loudly at night")
        assert same.reward == pytest.approx(1.0, abs=1e-4), metric
        assert other.reward < 0.5, metric
        assert raised(same) == set()
    partial = run(client, similarity("rouge_1"), "the cat sat")
    assert partial.reward == pytest.approx(2 * 1.0 * 0.5 / 1.5, abs=1e-6)  # P=1, R=3/6


def test_meteor_is_refused_by_name(client: openai.OpenAI) -> None:
    error = refused(client, similarity("meteor"))
    assert error.param == "grader.evaluation_metric" and "meteor is not supported" in error.message
    with pytest.raises(openai.BadRequestError):
        run(client, similarity("meteor"), "the cat")


def test_a_python_grader_runs_in_the_sandbox(client: openai.OpenAI) -> None:
    result = run(client, python(), '{"city": "Paris"}')
    assert result.reward == 1.0 and raised(result) == set()
    assert run(client, python(), '{"city": "Lyon"}').reward == 0.25


def test_a_python_grader_that_raises_is_a_runtime_error(client: openai.OpenAI) -> None:
    result = run(client, python(RAISING_CODE), "Paris")
    assert raised(result) == {"python_grader_runtime_error"} and result.reward == 0.0
    assert "KeyError" in result.metadata.errors.python_grader_runtime_error_details


def test_a_python_grader_that_never_answers_is_unresponsive(client: openai.OpenAI) -> None:
    sleeper = python(
        "import time\n\ndef grade(sample, item):\n    time.sleep(60)\n    return 1.0\n"
    )
    result = run(client, sleeper, "Paris")
    assert raised(result) == {"unresponsive_reward_error", "python_grader_server_error"}
    assert result.metadata.errors.python_grader_server_error_type == "timeout"
    assert REWARD_TIMEOUT <= result.metadata.execution_time < 30
    assert run(client, python(), '{"city": "Paris"}').reward == 1.0  # a fresh worker took over


def test_a_score_model_asks_the_endpoint_and_reads_its_result(
    client: openai.OpenAI, judge: JudgeServer
) -> None:
    judge.queue('{"result": 0.8}')
    result = run(client, score_model(judge, sampling_params={"temperature": 0.2}), "Paris")
    assert result.reward == pytest.approx(0.8) and raised(result) == set()
    assert result.metadata.sampled_model_name == "judge-model"
    usage = result.model_grader_token_usage_per_model["judge-model"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert result.metadata.token_usage == usage["total_tokens"]
    sent = judge.requests[-1]
    assert sent["headers"]["authorization"] == "Bearer sk-judge-secret"
    assert sent["body"]["temperature"] == 0.2
    roles = [m["role"] for m in sent["body"]["messages"]]
    assert roles == ["system", "user"] and '"result"' in sent["body"]["messages"][0]["content"]
    assert sent["body"]["messages"][1]["content"] == "Answer: Paris\nExpected: Paris"


def test_a_model_grader_answering_garbage_is_a_parse_error(
    client: openai.OpenAI, judge: JudgeServer
) -> None:
    judge.queue("I am not sure what to say about this one.")
    result = run(client, score_model(judge), "Paris")
    assert raised(result) == {"model_grader_parse_error"} and result.reward == 0.0
    assert "no score" in result.metadata.errors.model_extra["model_grader_parse_error_details"]
    judge.queue('{"result": 7}')  # outside the range [0, 1]
    assert raised(run(client, score_model(judge), "Paris")) == {"model_grader_parse_error"}


def test_a_failing_endpoint_is_a_model_grader_server_error(
    client: openai.OpenAI, judge: JudgeServer
) -> None:
    judge.answer = lambda body: 500
    result = run(client, score_model(judge), "Paris")
    assert raised(result) == {"model_grader_server_error"}
    assert "HTTP 500" in result.metadata.errors.api_model_grader_server_error_details


def test_a_label_model_passes_only_the_passing_labels(
    client: openai.OpenAI, judge: JudgeServer
) -> None:
    judge.queue('{"result": "correct"}', "incorrect", "maybe?")
    assert run(client, label_model(judge), "Paris").reward == 1.0
    assert run(client, label_model(judge), "Lyon").reward == 0.0
    assert raised(run(client, label_model(judge), "Rome")) == {"model_grader_parse_error"}
    assert judge.prompts()[0].startswith("Is Paris right?")


def test_a_multi_grader_combines_python_and_string_check(client: openai.OpenAI) -> None:
    result = run(client, multi(), '{"city": "Paris"}')
    assert result.reward == 1.0 and result.sub_rewards == {"code": 1.0, "city": 1.0}
    assert result.metadata.type == "multi" and result.metadata.scores == result.sub_rewards
    half = run(client, multi("code * 0.5 + city ^ 2"), '{"city": "Lyon"}')
    assert half.reward == pytest.approx(0.125) and half.sub_rewards == {"code": 0.25, "city": 0.0}


def test_a_bad_formula_is_a_formula_parse_error(client: openai.OpenAI) -> None:
    result = run(client, multi("code +"), '{"city": "Paris"}')
    assert raised(result) == {"formula_parse_error"} and result.reward == 0.0
    unknown = run(client, multi("code + nothing"), '{"city": "Paris"}')
    assert raised(unknown) == {"formula_parse_error"}


def test_a_multi_grader_carries_its_parts_errors(client: openai.OpenAI) -> None:
    grader = multi("code + city") | {
        "graders": {"code": python(RAISING_CODE), "city": string_check()}
    }
    result = run(client, grader, "Paris")
    assert raised(result) == {"python_grader_runtime_error"}
    assert result.reward == 1.0 and result.sub_rewards == {"code": 0.0, "city": 1.0}


def test_validate_returns_each_good_grader_normalised(
    client: openai.OpenAI, judge: JudgeServer
) -> None:
    for grader in [string_check(), similarity("rouge_l"), python(), label_model(judge), multi()]:
        checked = client.fine_tuning.alpha.graders.validate(grader=grader)  # type: ignore[arg-type]
        assert checked.grader is not None and checked.grader.type == grader["type"]
    model = score_model(judge)
    del model["range"]
    shown = client.fine_tuning.alpha.graders.validate(grader=model).to_dict()  # type: ignore[arg-type]
    assert shown["grader"]["range"] == [0, 1]  # OpenAI's default
    assert "api_key" not in shown["grader"]  # a secret is never echoed


BROKEN = [
    (string_check("contains"), "grader.operation", "must be one of eq, ne, like, ilike"),
    (string_check("eq", "{{answer}}"), "grader.reference", "unknown template variable {{answer}}"),
    (similarity("jaccard"), "grader.evaluation_metric", "must be one of fuzzy_match"),
    (python("def grade(sample):\n    return 1\n"), "grader.source", "grade takes 1 arguments"),
    (python("def grade(sample, item)\n"), "grader.source", "line 1"),
    (multi("code +"), "grader.calculate_output", "'code +'"),
    (multi("code + nothing"), "grader.calculate_output", "nothing"),
    ({"type": "multi", "name": "m", "graders": {"x": multi()}, "calculate_output": "x"},
     "grader.graders.x.type", "'multi' is not a grader type here"),
    ({"type": "string_check", "name": "s", "input": SAMPLE, "reference": "x", "operation": "eq",
      "case_sensitive": True}, "grader.case_sensitive", "not a field"),
    ({"name": "no type"}, "grader.type", "None is not a grader type"),
    ({"type": "multi", "name": "m", "calculate_output": "a0",
      "graders": {f"a{n}": string_check() for n in range(17)}},
     "grader.graders", "has 17 graders; at most 16"),
]  # fmt: skip


@pytest.mark.parametrize(("grader", "param", "words"), BROKEN)
def test_validate_refuses_a_broken_grader_naming_the_field(
    client: openai.OpenAI, grader: dict[str, Any], param: str, words: str
) -> None:
    error = refused(client, grader)
    assert error.param == param and words in error.message, error.message
    assert error.status_code == 400 and error.type == "invalid_request_error"


def test_validate_refuses_broken_model_graders(client: openai.OpenAI, judge: JudgeServer) -> None:
    wrong_range = refused(client, score_model(judge, range=[1, 0]))
    assert wrong_range.param == "grader.range"
    stray = label_model(judge) | {"passing_labels": ["great"]}
    assert refused(client, stray).param == "grader.passing_labels"
    for url in ("http://[::1", "http://[bad]/v1", "http://[::1]x/v1"):
        bad_url = refused(client, score_model(judge, base_url=url))
        assert bad_url.param == "grader.base_url" and "not a valid URL" in bad_url.message
    image = score_model(judge) | {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}  # fmt: skip
    assert "input_image is not supported" in refused(client, image).message
    far = score_model(judge) | {"base_url": "http://203.0.113.9/v1"}
    assert "RFT_JUDGE_ALLOWED_HOSTS" in refused(client, far).message
    assert refused(client, score_model(judge, sampling_params={"temperature": 9})).param == (
        "grader.sampling_params.temperature"
    )
    half_token = score_model(judge, sampling_params={"max_completions_tokens": 10.5})
    assert refused(client, half_token).param == "grader.sampling_params.max_completions_tokens"


def test_run_refuses_a_malformed_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.post(
            "/fine_tuning/alpha/graders/run",
            body={"grader": string_check(), "model_sample": 3},
            cast_to=object,
        )
    assert caught.value.param == "model_sample"
    with pytest.raises(openai.BadRequestError) as caught:
        run(client, string_check(), "Paris", item=["not", "a", "row"])
    assert caught.value.param == "item"


def test_an_inference_key_may_not_use_graders(server: str, alice: User) -> None:
    narrow = client_for(server, alice, ApiKeyScope.INFERENCE)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        run(narrow, string_check(), "Paris")
    assert "'api' scope" in caught.value.message
    with pytest.raises(openai.PermissionDeniedError):
        narrow.fine_tuning.alpha.graders.validate(grader=string_check())  # type: ignore[arg-type]


def test_only_the_owner_may_grade_with_a_registry_model(
    server: str, alice: User, bob: User, starter_artifacts: Path
) -> None:
    register_model(alice, str(starter_artifacts / "models" / "starter"), "alice-judge")
    grader = {
        "type": "score_model", "name": "local", "model": "alice-judge", "range": [0, 10],
        "sampling_params": {"max_completions_tokens": 8},
        "input": [{"role": "user", "content": "Rate from 0 to 10: {{sample.output_text}}"}],
    }  # fmt: skip
    bobs = client_for(server, bob)
    with pytest.raises(openai.BadRequestError) as caught:
        run(bobs, grader, "Paris")
    assert caught.value.param == "grader.model" and "not one of your registered models" in (
        caught.value.message
    )
    with pytest.raises(openai.BadRequestError):
        bobs.fine_tuning.alpha.graders.validate(grader=grader)  # type: ignore[arg-type]
    alices = client_for(server, alice)  # control: the owner's key runs it with that model
    assert alices.fine_tuning.alpha.graders.validate(grader=grader).grader is not None  # type: ignore[arg-type]
    result = run(alices, grader, "Paris")
    assert result.metadata.sampled_model_name == "alice-judge"
    assert not raised(result) & {"model_grader_server_error", "other_error"}
    usage = result.model_grader_token_usage_per_model["alice-judge"]
    assert 0 < usage["completion_tokens"] <= 8


def test_a_model_grader_naming_an_openai_model_goes_to_the_administrators_endpoint(
    client: openai.OpenAI, alice: User, judge: JudgeServer, tmp_path: Path
) -> None:
    grader = {**score_model(judge), "model": "gpt-4o-mini-2024-07-18"}
    del grader["base_url"], grader["api_key"]
    with pytest.raises(openai.BadRequestError) as caught:  # not set up: refused, saying how
        client.fine_tuning.alpha.graders.validate(grader=grader)  # type: ignore[arg-type]
    assert caught.value.body["param"] == "grader.model"
    assert "RFT_GRADER_BASE_URL" in caught.value.message
    configured = {"RFT_GRADER_BASE_URL": judge.url, "RFT_GRADER_API_KEY": "sk-admin"}
    with serving_v1(tmp_path, **configured) as url:
        judge.queue('{"result": 0.9}')
        result = run(client_for(url, alice), grader, "Paris")
    assert result.reward == pytest.approx(0.9) and raised(result) == set()
    sent = judge.requests[-1]
    assert sent["body"]["model"] == "gpt-4o-mini-2024-07-18"
    assert sent["headers"]["authorization"] == "Bearer sk-admin"
