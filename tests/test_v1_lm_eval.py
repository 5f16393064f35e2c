"""lm-evaluation-harness, a real evaluation client, against the console's endpoint, offline.

Two small tasks of our own on the starter's arithmetic domain (tests/data/lm_eval): a
multiple-choice task scored by log-likelihood through lm-eval's `local-completions` model (token-id
prompts, `echo`, `logprobs`, on /v1/completions), and a generate-until task through
`local-chat-completions` (/v1/chat/completions with the chat template). The results must be the
numbers our own computation gives for the same rows: the log-likelihoods from the starter's
forward pass in this process, the exact matches from the endpoint's greedy answers.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support import v1_reference
from tests.support.v1_reference import MODEL, Reference

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

# The shared /v1 fixtures, found by pytest under these names.
alice_openai = v1_reference.alice_openai
deployment = v1_reference.deployment
reference = v1_reference.reference
server = v1_reference.server
starter = v1_reference.starter


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing may be downloaded: the tasks' data is local, the tokenizer is the starter's
    directory. Set per test (not at import), so other modules' tests see the environment as is."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


ROWS = Path(__file__).parent / "data" / "lm_eval" / "arithmetic.jsonl"
TUTOR = "You are a math tutor."
ANSWER = r"#### (\-?[0-9]+)"


def write_tasks(directory: Path) -> Path:
    """The two task configs (JSON is YAML), pointing at the rows by absolute path."""
    files = {"data_files": {"test": str(ROWS)}, "cache_dir": str(directory / "datasets-cache")}
    data = {"dataset_path": "json", "dataset_kwargs": files}
    choice = {
        **data, "task": "rft_arith_choice", "test_split": "test",
        "output_type": "multiple_choice", "doc_to_text": "{{question}} Answer after ####.\n####",
        "doc_to_choice": "choices", "doc_to_target": "label", "target_delimiter": " ",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }  # fmt: skip
    answer = {
        **data, "task": "rft_arith_answer", "test_split": "test",
        "output_type": "generate_until", "doc_to_text": "{{question}} Answer after ####.",
        "doc_to_target": "{{answer}}",
        "generation_kwargs": {"until": ["\n\n"], "max_gen_toks": 48, "do_sample": False, "temperature": 0},
        "filter_list": [{"name": "strict-match", "filter": [{"function": "regex", "regex_pattern": ANSWER}, {"function": "take_first"}]}],
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
    }  # fmt: skip
    for task in (choice, answer):
        (directory / f"{task['task']}.yaml").write_text(json.dumps(task, indent=2))
    return directory


def evaluate(
    model: str, task: str, model_args: dict[str, Any], tasks: Path, **options: Any
) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(
        model=model, model_args=model_args, tasks=[task], log_samples=True, bootstrap_iters=0,
        task_manager=TaskManager(include_path=str(tasks)), **options,
    )  # fmt: skip


def continuation_loglikelihood(reference: Reference, context: str, continuation: str) -> float:
    """A continuation's log-likelihood as lm-eval defines it (trailing spaces of the context move
    to the continuation; the whole is tokenized at once), from the model in this process."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    encode = lambda text: reference.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    whole, start = encode(context + continuation), len(encode(context))
    return sum(reference.logprobs(whole)[start - 1 :])


def test_lm_eval_scores_log_likelihoods_through_local_completions(
    server: str, alice_openai: openai.OpenAI, reference: Reference, starter_artifacts: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("OPENAI_API_KEY", alice_openai.api_key)  # lm-eval's key for local APIs
    model_args = {
        "model": MODEL, "base_url": f"{server}/completions", "tokenizer_backend": "huggingface",
        "tokenizer": str(starter_artifacts / "models" / "starter"), "max_length": 512,
        "max_retries": 1, "num_concurrent": 1,
    }  # fmt: skip
    results = evaluate("local-completions", "rft_arith_choice", model_args, write_tasks(tmp_path))
    samples = results["samples"]["rft_arith_choice"]
    assert len(samples) == 10
    hits = []
    for sample in samples:
        ours = [continuation_loglikelihood(reference, *args) for args in sample["arguments"]]
        theirs = [loglikelihood for loglikelihood, _ in sample["filtered_resps"]]
        assert all(math.isclose(a, b, abs_tol=1e-3) for a, b in zip(ours, theirs, strict=True))
        hits.append(ours.index(max(ours)) == sample["doc"]["label"])
    accuracy = results["results"]["rft_arith_choice"]["acc,none"]
    assert 0 <= accuracy <= 1 and accuracy == pytest.approx(sum(hits) / len(hits))


def test_lm_eval_generates_until_through_local_chat_completions(
    server: str, alice_openai: openai.OpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", alice_openai.api_key)
    model_args = {
        "model": MODEL, "base_url": f"{server}/chat/completions", "tokenizer_backend": None,
        "max_retries": 1, "num_concurrent": 1,
    }  # fmt: skip
    results = evaluate(
        "local-chat-completions", "rft_arith_answer", model_args, write_tasks(tmp_path),
        apply_chat_template=True, system_instruction=TUTOR,
    )  # fmt: skip
    samples = results["samples"]["rft_arith_answer"]
    assert len(samples) == 10
    matches = []
    for sample in samples:
        context = sample["arguments"][0][0]
        messages = json.loads(getattr(context, "prompt", context))
        assert messages == [
            {"role": "system", "content": TUTOR},
            {"role": "user", "content": f"{sample['doc']['question']} Answer after ####."},
        ]
        answer = (
            alice_openai.chat.completions.create(
                model=MODEL, messages=messages, temperature=0, max_tokens=48, stop=["\n\n"]
            )
            .choices[0]
            .message.content
        )
        assert sample["resps"][0][0] == answer  # lm-eval read the endpoint's answer as it is
        found = re.findall(ANSWER, answer)
        extracted = found[0].strip() if found else "[invalid]"
        assert sample["filtered_resps"][0] == extracted
        matches.append(extracted == sample["doc"]["answer"])
    exact = results["results"]["rft_arith_answer"]["exact_match,strict-match"]
    assert 0 <= exact <= 1 and exact == pytest.approx(sum(matches) / len(matches))
