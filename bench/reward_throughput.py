"""Reward throughput: sandboxed user code vs the same code called in-process, at batch 64.

Both sides do the same work for the trainer, for both rewards (the trivial one and the math
template): take the same 64 sampled answers, group them by prompt with `sandbox_batch` (each
distinct row once: 8 rows for 64 answers), build the reward's input (the Bedrock Lambda event,
`child._run_lambda`), call the user's function, check its answer and turn it into per-row results.
The sandbox adds only the transport. Its pool would split a batch over two workers after one
that took over 5 ms (a slow reward); here a fast batch preempted by a neighbour could trigger
that, so the bench turns the split off: each side scores each batch whole, in one call.
The in-process side is what a console without a sandbox would do (exec the user's code in the
trainer); we never do that outside this benchmark. Prints rows/s for both and their ratio.
Goal: the trivial reward sandboxed ≥ 0.5 of in-process.

Then the model-as-judge reward against our own endpoint: a console started like `make up`
deploys the starter model (the Deploy button; the web process serves it) and a judge reward
points at its `/v1/chat/completions` with an API key. The same batch is scored through
`score_batch` (as the trainer does) at judge concurrency 1, 4 (the default) and 8: rows/s each.
The endpoint keeps its defaults (`RFT_WEB_PROCESSES` web processes, one generation at a time in
each) except the per-key rate limit, raised so that it never answers 429 here. Goal for the
judge: concurrency 8 at least as fast as concurrency 1 (≥ 1.0×), i.e. a judge that sends requests
in parallel never loses throughput; with one web process per core it may gain, but on a machine
whose cores also run the bench's client the gain is not promised.

    .venv/bin/python bench/reward_throughput.py [--batch 64] [--seconds 5] [--no-judge]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import Console, deploy_starter, mark, script  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rftconsole.settings")

import django  # noqa: E402

django.setup()

from rewards.library import get_template  # noqa: E402
from rewards.sandbox import child, runner  # noqa: E402
from rewards.scoring import _run_code, sandbox_batch  # noqa: E402
from rewards.types import RewardResult, Sample  # noqa: E402

TRIVIAL_LAMBDA = script("trivial_reward")  # every answer 1.0: the transport, not the reward
# Never split a batch over workers (see the docstring): the in-process side scores it whole.
runner.SPLIT_ABOVE_SECONDS = float("inf")


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
    """The same work without the sandbox: the same de-duplicated batch the sandbox gets (each
    distinct row's prompt and metadata once, `sandbox_batch`), the same event built and answer
    checked (child.py's `_run_lambda`), the same results made from it."""
    namespace: dict = {"__name__": "reward"}
    exec(compile(code, "reward.py", "exec"), namespace)  # noqa: S102 - the baseline being measured

    def score(batch: list[Sample]) -> list[RewardResult]:
        scores, errors, components = child._run_lambda(namespace, sandbox_batch(batch))
        return [
            RewardResult(s.id, scores[n], components.get(n, []), error=errors.get(n))
            for n, s in enumerate(batch)
        ]

    return score


def sandboxed(code: str) -> Callable[[list[Sample]], list[RewardResult]]:
    return lambda batch: _run_code(code, batch)


def rows_per_second(score: Callable, batch: list[Sample], seconds: float) -> float:
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        results = score(batch)
        assert len(results) == len(batch) and all(r.error is None for r in results)
        calls += 1
    return calls * len(batch) / (time.perf_counter() - started)


def compare(name: str, code: str, batch: list[Sample], seconds: float, rounds: int = 5) -> float:
    """Median of `rounds` side-by-side ratios, each side timed for `seconds / rounds` in turn,
    so that a neighbour's burst hits one round of both sides rather than one side."""
    direct_call, boxed_call = in_process(code), sandboxed(code)
    direct_call(batch), boxed_call(batch)  # warm up: the pool starts its worker, code compiles
    direct, boxed = [], []
    for _ in range(rounds):
        direct.append(rows_per_second(direct_call, batch, seconds / rounds))
        boxed.append(rows_per_second(boxed_call, batch, seconds / rounds))
    ratio = statistics.median(b / d for b, d in zip(boxed, direct, strict=True))
    print(
        f"  {name:<32} in-process {statistics.median(direct):10,.0f} rows/s   "
        f"sandboxed {statistics.median(boxed):10,.0f} rows/s"
    )
    print(f"  {'':<32} ratio {ratio:.2f} (median of {rounds} rounds)")
    return ratio


# Where a sandboxed batch's time goes, in the trainer's process: (file suffix, function).
SANDBOX_STAGES = {
    "batch built for the worker (sandbox_batch)": ("rewards/code_batches.py", "sandbox_batch"),
    "sent and run: pipe write until the worker has it": ("sandbox/runner.py", "send"),
    "reply read and decoded (receive)": ("sandbox/runner.py", "receive"),
    "results made from the reply (_chunk_results)": ("rewards/code_batches.py", "_chunk_results"),
    "total (run_code)": ("rewards/code_batches.py", "run_code"),
}


def sandbox_profile(code: str, batch: list[Sample], calls: int = 2000) -> None:
    """Microseconds per batch in each stage of a sandboxed call (cProfile, so inflated)."""
    score = sandboxed(code)
    score(batch)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        score(batch)
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    print(f"  where a sandboxed batch goes (cProfile, {calls} batches), µs per batch:")
    for label, (suffix, name) in SANDBOX_STAGES.items():
        seconds = sum(row[3] for key, row in stats.items()
                      if key[0].endswith(suffix) and key[2] == name)  # fmt: skip
        print(f"    {label:<52}{seconds / calls * 1e6:>8.0f}")


JUDGE_CONCURRENCY = (1, 4, 8)


def judge_throughput(batch: int, per_prompt: int) -> dict[int, tuple[float, int]]:
    """Rows/s of the judge reward on our own endpoint, per judge concurrency."""
    with Console("judge", RFT_RATE_LIMIT_PER_MINUTE="100000") as console:
        key = deploy_starter(console, {"starter": {}})
        speeds = console.shell(
            script("judge_throughput"), BENCH_BATCH=str(batch), BENCH_PER_PROMPT=str(per_prompt),
            BENCH_CONCURRENCY=json.dumps(JUDGE_CONCURRENCY), BENCH_URL=console.url, BENCH_KEY=key,
        )  # fmt: skip
        return {int(c): (r[0], r[1]) for c, r in speeds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--per-prompt", type=int, default=8, help="answers per prompt (GRPO group)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-judge", action="store_true", help="skip the judge (no console)")
    parser.add_argument("--profile", action="store_true", help="where a sandboxed batch goes")
    args = parser.parse_args()
    batch = samples(args.batch, args.per_prompt)
    print(f"reward throughput: batch {args.batch}, {args.per_prompt} answers per prompt")
    trivial = compare("trivial Lambda (returns 1.0)", TRIVIAL_LAMBDA, batch, args.seconds)
    if args.profile:
        sandbox_profile(TRIVIAL_LAMBDA, batch)
    compare(
        "math template (regex + compare)",
        get_template("math-ground-truth").code,
        batch,
        args.seconds,
    )
    judge = ""
    if not args.no_judge:
        speeds = judge_throughput(args.batch, args.per_prompt)
        print(f"judge reward on our /v1 endpoint (starter model), batch {args.batch}:")
        for concurrency, (speed, unreadable) in speeds.items():
            print(
                f"  concurrency {concurrency:<3}{speed:10.1f} rows/s   "
                f"({unreadable} replies without a readable score)"
            )
        low, high = speeds[min(speeds)][0], speeds[max(speeds)][0]
        judge = (
            f"; judge {high:.1f} rows/s at concurrency {max(speeds)} = {high / low:.2f}× of 1 "
            f"(goal ≥ 1.0) {mark(high / low >= 1.0)}"
        )
    print(
        f"reward throughput: sandboxed {trivial:.2f} of in-process, trivial reward "
        f"(goal ≥ 0.5) {mark(trivial >= 0.5)}{judge}"
    )


if __name__ == "__main__":
    main()
