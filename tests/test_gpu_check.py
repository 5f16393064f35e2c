"""bench/gpu_check.sh and the figures it prints (bench/multi_process.py's, from a job's points).

Without a CUDA GPU the check says so in one line and measures nothing (exit 0); a checkout without
the virtual environment is told how to make one. The figures and the verdict line are pure
functions of the stored points, tested here with runs written out by hand.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "bench" / "gpu_check.sh"


def run_check(script: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script)], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # how the bench scripts import `common`
    # bench/multi_process.py: not `multiprocess`, a library that `datasets` imports
    return importlib.import_module("multi_process")


def points(seconds: list[float], memory: float | None = None) -> list[dict[str, Any]]:
    """A job's train points, step 1 first; 640 tokens per step (8 prompts × 8 samples × 10)."""
    return [
        {
            "step": step,
            "step_seconds": s,
            "tokens_per_second": round(640 / s, 1),
            **({"gpu_memory_peak_gib": memory * step / len(seconds)} if memory else {}),
        }
        for step, s in enumerate(seconds, start=1)
    ]


def summary(base: float, final: float) -> dict[str, Any]:
    return {"base": {"accuracy": base}, "final": {"accuracy": final}}


def test_without_a_cuda_gpu_the_check_says_so_in_one_line_and_exits_0() -> None:
    done = run_check(CHECK, CUDA_VISIBLE_DEVICES="")  # hidden, so on a GPU machine too

    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert line.startswith("no CUDA GPU found (") and line.endswith("): nothing measured"), line
    if not shutil.which("nvidia-smi"):  # this machine: neither the driver nor torch sees one
        assert line == "no CUDA GPU found (nvidia-smi/torch see none): nothing measured"


def test_a_checkout_without_the_virtual_environment_is_told_to_make_it(tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()
    script = Path(shutil.copy(CHECK, tmp_path / "bench" / "gpu_check.sh"))

    done = run_check(script, CUDA_VISIBLE_DEVICES="")

    assert done.returncode == 1
    assert done.stdout == ""
    assert "run `make up` or `make test` first" in done.stderr


def test_a_runs_figures_leave_out_the_warm_up_step_and_take_the_peak_memory(
    bench: ModuleType,
) -> None:
    cpu = bench.figures(summary(0.12, 0.40), points([9.0, 1.2, 1.1, 1.0, 1.3]))
    assert cpu["seconds_per_step"] == pytest.approx(1.15)  # median of steps 2–5; step 1 warms up
    assert cpu["tokens_per_second"] == pytest.approx(
        557.55, abs=0.01
    )  # of 533.3, 581.8, 640, 492.3
    assert cpu["gpu_memory_peak_gib"] is None  # recorded on CUDA only
    assert cpu["accuracy_ratio"] == pytest.approx(0.40 / 0.12)

    gpu = bench.figures(summary(0.12, 0.40), points([3.0, 0.3, 0.3], memory=1.5))
    assert gpu["gpu_memory_peak_gib"] == pytest.approx(1.5)


def test_the_verdict_marks_each_goal_met_or_missed(bench: ModuleType) -> None:
    one, two = bench.Run(1, vllm=False), bench.Run(2, vllm=False)
    slow = bench.figures(summary(0.12, 0.40), points([9.0, 1.1, 1.1]))
    fast = bench.figures(summary(0.12, 0.38), points([9.0, 0.88, 0.88]))
    unlearned = bench.figures(summary(0.12, 0.15), points([9.0, 0.88, 0.88]))

    met = bench.verdict("cpu", {one: slow, two: fast})
    assert met.startswith("multiprocess (cpu): 2 processes 1.25× the speed of 1 per step")
    assert "median s/step 0.880 vs 1.100; goal ≥ 1.0) ✓" in met
    assert "3.33× (1 process, generate), 3.17× (2 processes, generate) (goal ≥ 1.66 each) ✓" in met
    assert "✗" not in met

    slower = bench.verdict("cpu", {one: fast, two: slow})
    assert "2 processes 0.80× the speed of 1 per step" in slower and "goal ≥ 1.0) ✗" in slower
    assert bench.verdict("cpu", {one: slow, two: unlearned}).endswith("(goal ≥ 1.66 each) ✗")


def test_a_gpu_check_on_one_gpu_reports_vllm_and_says_2_processes_did_not_run(
    bench: ModuleType,
) -> None:
    generate, vllm = bench.Run(1, vllm=False), bench.Run(1, vllm=True)
    runs = {
        generate: bench.figures(summary(0.12, 0.40), points([3.0, 0.5, 0.5], memory=1.0)),
        vllm: bench.figures(summary(0.12, 0.41), points([30.0, 0.25, 0.25], memory=40.0)),
    }

    line = bench.verdict("cuda", runs)

    assert line.startswith("multiprocess (cuda): 2 processes vs 1 not measured (no such pair ran)")
    assert "vLLM 2.00× the speed of generate at 1 process(es) (goal ≥ 1.0) ✓" in line


class Replies:
    """Stands in for the console's /v1 in the serving check's judgement of replies."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        return 200, self.reply(body) if callable(self.reply) else self.reply


def chat(content: str) -> dict[str, Any]:
    return {"choices": [{"message": {"content": content}}], "usage": {"completion_tokens": 9}}


def streamed(content: str) -> list[dict[str, Any]]:
    return [{"choices": [{"delta": {"content": part}}]} for part in (content[:5], content[5:])]


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module("gpu_serve_check")


def test_the_serving_check_fails_an_answer_that_breaks_the_schema(serving: ModuleType) -> None:
    good = '{"name": "Gus", "age": 31, "city": "Oslo"}'
    bad = '{"name": "Gus", "age": "31", "city": "Oslo"}'  # the age as a string

    def answer(text: str) -> Any:
        return lambda body: streamed(text) if body["stream"] else chat(text)

    assert serving.structured(Replies(answer(good)))[0] is True
    ok, detail = serving.structured(Replies(answer(bad)))
    assert ok is False and "'31' is not of type 'integer'" in detail
    assert serving.structured(Replies(answer("Gus, 31, Oslo")))[0] is False


def test_the_serving_check_fails_logprobs_that_a_greedy_answer_cannot_have(
    serving: ModuleType,
) -> None:
    def logprobs(chosen: float, top: float) -> dict[str, Any]:
        token = {"logprob": chosen, "top_logprobs": [{"logprob": top}, {"logprob": -9.0}]}
        return {"choices": [{"logprobs": {"content": [token, token]}}]}

    assert serving.logprobs(Replies(logprobs(-0.2, -0.2)))[0] is True
    assert serving.logprobs(Replies(logprobs(-2.0, -0.2)))[0] is False  # not the top token
    assert serving.logprobs(Replies(logprobs(0.5, 0.5)))[0] is False  # a probability above 1
