"""User reward code runs only in the sandbox: Bedrock Lambda files unchanged, and hostile code contained."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from rewards.code import CodeError, detect_interface
from rewards.models import RewardFunction
from rewards.sandbox.bwrap import allowed_root
from rewards.sandbox.runner import Limits, SandboxPool
from rewards.scoring import score_batch
from rewards.services import create_reward
from rewards.types import Sample

BEDROCK_LAMBDA = """
import json
import re


def extract_answer(text):
    match = re.search(r"####\\s*(-?[\\d,.]+)", text)
    return match.group(1).replace(",", "") if match else None


def lambda_handler(event, context):
    results = []
    for sample in event:
        answer = extract_answer(sample["messages"][-1]["content"])
        reference = sample.get("reference_answer") or sample["metadata"]["reference_answer"]
        expected = extract_answer(reference) if isinstance(reference, str) else None
        correct = answer is not None and answer == expected
        print(json.dumps({"id": sample["id"], "answer": answer}))
        results.append({
            "id": sample["id"],
            "aggregate_reward_score": 1.0 if correct else 0.0,
            "metrics_list": [
                {"name": "accuracy", "value": float(correct), "type": "Reward"},
                {"name": "length", "value": len(sample["messages"][-1]["content"]), "type": "Metric"},
            ],
        })
    return results
"""

GRADE = """
def grade(sample, item):
    return 1.0 if item["ground_truth"] in sample["output_text"] else 0.0
"""

ROW = {
    "messages": [{"role": "user", "content": "2 + 5?"}],
    "reference_answer": "so 7\n#### 7",
    "ground_truth": "7",
}


@pytest.fixture(scope="module")
def pool() -> SandboxPool:
    return SandboxPool(Limits(batch_timeout=3, memory_bytes=256 * 1024**2))


def run(pool: SandboxPool, code: str, outputs: tuple[str, ...] = ("#### 7",)) -> dict:
    items = [
        {"id": str(i), "output_text": o, "prompt": ROW["messages"], "row": ROW}
        for i, o in enumerate(outputs)
    ]
    return pool.run(code, items)


def test_a_bedrock_lambda_file_runs_unchanged_through_the_sandbox(alice: User) -> None:
    version = create_reward(alice, "gsm8k", RewardFunction.Kind.CODE, code=BEDROCK_LAMBDA)
    samples = [Sample("a", "#### 7", ROW), Sample("b", "#### 8", ROW)]

    right, wrong = score_batch(version, samples)

    assert (right.score, wrong.score, right.error) == (1.0, 0.0, None)
    assert right.components[0] == {"name": "accuracy", "value": 1.0, "type": "Reward"}
    assert right.components[1]["type"] == "Metric"
    assert '"answer": "7"' in right.output


def test_reward_components_and_a_top_level_reference_answer_are_accepted(pool: SandboxPool) -> None:
    code = """
def lambda_handler(event, context):
    return [{"id": e["id"], "aggregate_reward_score": 0.5,
             "reward_components": {"format": 1.0, "match": float(e["reference_answer"].endswith("7"))}}
            for e in event]
"""
    result = run(pool, code)["results"][0]
    assert result["score"] == 0.5
    assert result["components"] == [
        {"name": "format", "value": 1.0, "type": "Reward"},
        {"name": "match", "value": 1.0, "type": "Reward"},
    ]


def test_a_grade_file_scores_each_row(pool: SandboxPool) -> None:
    results = run(pool, GRADE, ("it is 7", "it is 8"))["results"]
    assert [r["score"] for r in results] == [1.0, 0.0]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            "def lambda_handler(event):\n    return []",
            "lambda_handler takes 1 arguments; it must take 2",
        ),
        ("def score(x):\n    return 1", "Define lambda_handler(event, context)"),
        ("def grade(sample, item)\n    return 1", "line 1: expected ':'"),
    ],
)
def test_the_interface_is_detected_without_running_the_code(code: str, message: str) -> None:
    with pytest.raises(CodeError, match=re.escape(message)):
        detect_interface(code)


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        ("float('nan')", "the score must be finite"),
        ("'high'", "the score must be a number, got str"),
        ("None", "the score must be a number, got NoneType"),
    ],
)
def test_a_bad_score_becomes_an_error_for_that_row(
    pool: SandboxPool, returns: str, expected: str
) -> None:
    reply = run(pool, f"def grade(sample, item):\n    return {returns}\n")
    assert expected in reply["results"][0]["error"]


def test_a_lambda_returning_the_wrong_number_of_results_fails_the_batch(pool: SandboxPool) -> None:
    code = "def lambda_handler(event, context):\n    return []\n"
    assert "returned 0 results for 2 items" in run(pool, code, ("a", "b"))["error"]


def test_100_mb_of_output_is_capped(pool: SandboxPool) -> None:
    reply = run(pool, "def grade(sample, item):\n    print('x' * 100_000_000)\n    return 1.0\n")
    assert reply["results"][0]["score"] == 1.0
    assert len(reply["stdout"]) < 70_000 and reply["stdout"].endswith("[output truncated at 64 KB]")


def test_files_written_in_the_sandbox_temp_dir_stay_private(
    pool: SandboxPool, tmp_path: Path
) -> None:
    marker = f"/tmp/rft-sandbox-marker-{os.getpid()}"
    reply = run(
        pool, f"def grade(sample, item):\n    open({marker!r}, 'w').write('x')\n    return 1.0\n"
    )
    assert reply["results"][0]["score"] == 1.0
    assert not Path(marker).exists()


def test_one_rewards_code_never_sees_another_rewards_batches(pool: SandboxPool) -> None:
    planter = (
        "import builtins\n"
        "builtins.planted = 'by the first reward'\n"
        "def grade(sample, item):\n    return 1.0\n"
    )
    reader = (
        "import builtins\n"
        "def grade(sample, item):\n"
        "    print(getattr(builtins, 'planted', 'nothing planted'))\n"
        "    return 1.0\n"
    )
    run(pool, planter)
    reply = run(pool, reader)
    assert reply["stdout"].strip() == "nothing planted"


def test_a_slow_rewards_batch_is_spread_over_two_workers_and_a_fast_ones_is_not() -> None:
    from rewards.sandbox import runner
    from rewards.scoring import _run_code
    from rewards.types import Sample

    handler = (
        "import time\n"
        "def lambda_handler(event, context):\n"
        "    time.sleep(PAUSE)\n"
        "    print('batch of', len(event))\n"
        "    return [{'id': item['id'], 'aggregate_reward_score': 1.0} for item in event]\n"
    )
    fast, slow = handler.replace("PAUSE", "0"), handler.replace("PAUSE", "0.05")
    rows = [{"messages": [{"role": "user", "content": f"q{n}"}]} for n in range(8)]
    samples = [Sample(str(i), "a", rows[i // 8]) for i in range(64)]
    saved, runner._pool = runner._pool, SandboxPool(Limits(batch_timeout=10))
    try:
        for code in (fast, slow):
            _run_code(code, samples)  # the pool learns how long each code's batch takes
        assert {r.output.strip() for r in _run_code(fast, samples)} == {"batch of 64"}
        results = _run_code(slow, samples)
        assert {r.output.strip() for r in results} == {"batch of 32"}
        assert [r.id for r in results] == [s.id for s in samples]
        assert {r.score for r in results} == {1.0}
    finally:
        runner._pool = saved


def test_a_row_over_the_metric_cap_gets_its_own_error_and_the_others_still_score(
    pool: SandboxPool,
) -> None:
    code = """
def lambda_handler(event, context):
    many = [{"name": f"m{n}", "value": 1.0} for n in range(33)]
    return [{"id": e["id"], "aggregate_reward_score": 1.0,
             "metrics_list": many if e["messages"][-1]["content"] == "greedy" else many[:32]}
            for e in event]
"""
    greedy, fine = run(pool, code, ("greedy", "fine"))["results"]
    assert greedy == {"id": "0", "error": "33 metrics for one row; at most 32"}
    assert fine["score"] == 1.0 and len(fine["components"]) == 32


def test_reward_code_sees_only_python_its_libraries_and_a_private_tmp(pool: SandboxPool) -> None:
    code = """
import os, sys
def grade(sample, item):
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    print(sorted(os.listdir("/")), sorted(os.listdir("/dev")), os.getuid(), os.getgid(),
          status["CapEff"].strip(), status["CapBnd"].strip(), sorted(os.environ))
    return 1.0
"""
    root = allowed_root()  # the interpreter, its stdlib and its shared libraries, by path
    mounted = [root.interpreter, *root.stdlib, *root.libraries]
    top = sorted({"dev", "opt", "proc", "tmp"} | {Path(p).parts[1] for p in mounted})
    printed = run(pool, code)["stdout"].strip()
    assert printed == (
        f"{top} ['null', 'urandom', 'zero'] 65534 65534 0000000000000000 0000000000000000 "
        "['LANG', 'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'PWD']"
    )


def test_sympy_and_numpy_come_from_their_own_read_only_directory() -> None:
    pool = SandboxPool(Limits(batch_timeout=60))  # importing SymPy takes seconds on a busy machine
    code = """
import sys, numpy, sympy
def grade(sample, item):
    print(numpy.__file__, sympy.__file__, [p for p in sys.path if "site-packages" in p])
    open(numpy.__file__ + ".pwned", "w")
"""
    reply = run(pool, code)
    numpy_file, sympy_file, site_packages = reply["stdout"].split(" ", 2)
    assert numpy_file.startswith("/opt/reward-libs/numpy/")
    assert sympy_file.startswith("/opt/reward-libs/sympy/")
    assert site_packages.strip() == "[]"  # never the console's site-packages
    assert "Read-only file system" in reply["results"][0]["error"]
