"""Reward throughput: sandboxed user code vs the same code called in-process, at batch 64.

Both sides do the same work for the trainer: take 64 sampled answers, build the reward's input
(the Bedrock Lambda event), call the user's function, and turn its answer into per-row results.
The in-process side is what a console without a sandbox would do (exec the user's code in the
trainer); we never do that outside this benchmark. Prints rows/s for both and their ratio.

    .venv/bin/python bench/reward_throughput.py [--batch 64] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rftconsole.settings")

import django  # noqa: E402

django.setup()

from rewards.library import get_template  # noqa: E402
from rewards.sandbox import child  # noqa: E402
from rewards.scoring import RewardResult, Sample, _run_code, prompt_messages  # noqa: E402

TRIVIAL_LAMBDA = """
def lambda_handler(event, context):
    return [{"id": item["id"], "aggregate_reward_score": 1.0} for item in event]
"""


def samples(batch: int, per_prompt: int) -> list[Sample]:
    """A training step's batch: `batch // per_prompt` prompts, each answered `per_prompt` times."""
    rows = [
        {
            "messages": [
                {"role": "system", "content": "You are a math tutor."},
                {"role": "user", "content": f"Ana buys {n} bags of 4 apples. How many? (####)"},
            ],
            "reference_answer": {"final_answer": str(4 * n)},
            "task_id": f"arithmetic_{n:05d}",
        }
        for n in range(batch // per_prompt)
    ]
    return [Sample(str(i), f"#### {i}", rows[i // per_prompt]) for i in range(batch)]


def in_process(code: str) -> Callable[[list[Sample]], list[RewardResult]]:
    """The straightforward in-process call: build each sample's Bedrock event item, call the
    handler, check its answer the same way the sandbox does, make the results."""
    namespace: dict = {"__name__": "reward"}
    exec(compile(code, "reward.py", "exec"), namespace)  # noqa: S102 - the baseline being measured

    def score(batch: list[Sample]) -> list[RewardResult]:
        event = [
            {
                "id": s.id,
                "messages": [
                    *prompt_messages(s.row),
                    {"role": "assistant", "content": s.output_text},
                ],
                "metadata": {k: v for k, v in s.row.items() if k != "messages"},
                "reference_answer": s.row.get("reference_answer"),
            }
            for s in batch
        ]
        ids = [s.id for s in batch]
        scores, errors, components = child.lambda_results(
            namespace["lambda_handler"](event, None), ids
        )
        return [
            RewardResult(i, scores[n], components.get(n, []), error=errors.get(n))
            for n, i in enumerate(ids)
        ]

    return score


def sandboxed(code: str) -> Callable[[list[Sample]], list[RewardResult]]:
    return lambda batch: _run_code(code, batch)


def rows_per_second(score: Callable, batch: list[Sample], seconds: float) -> float:
    score(batch)  # warm up: the pool starts its worker, the code is compiled once
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        results = score(batch)
        assert len(results) == len(batch) and all(r.error is None for r in results)
        calls += 1
    return calls * len(batch) / (time.perf_counter() - started)


def compare(name: str, code: str, batch: list[Sample], seconds: float) -> float:
    direct = rows_per_second(in_process(code), batch, seconds)
    boxed = rows_per_second(sandboxed(code), batch, seconds)
    ratio = boxed / direct
    print(f"  {name:<32} in-process {direct:10,.0f} rows/s   sandboxed {boxed:10,.0f} rows/s")
    print(f"  {'':<32} ratio {ratio:.2f}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--per-prompt", type=int, default=8, help="answers per prompt (GRPO group)")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    batch = samples(args.batch, args.per_prompt)
    print(f"reward throughput: batch {args.batch}, {args.per_prompt} answers per prompt")
    trivial = compare("trivial Lambda (returns 1.0)", TRIVIAL_LAMBDA, batch, args.seconds)
    compare(
        "math template (regex + compare)",
        get_template("math-ground-truth").code,
        batch,
        args.seconds,
    )
    verdict = "PASS" if trivial >= 0.5 else "FAIL"
    print(f"goal: trivial reward sandboxed ≥ 0.50 of in-process: {trivial:.2f} {verdict}")


if __name__ == "__main__":
    main()
