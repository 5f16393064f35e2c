"""Time to first token: our `/v1/chat/completions` stream vs the same model streamed token by token
in-process with transformers.

Starts a console like `make up`, deploys the starter model twice from its page (the Deploy
button: the weights load in the web process), once with request logging on (the default) and
once with it off, and creates an API key. Then, alternating, `--repeats` times each:

- ours: a streamed chat completion over HTTP (server-sent events, read with `http.client`);
- raw: the same model files loaded in this process, the same prompt through the chat template,
  `model.generate` in a thread with a streamer that hands each generated token's text to this
  thread through a queue (the `TextIteratorStreamer` pattern of the transformers docs).

The raw streamer passes text on by our endpoint's own rule (`_ChoiceStreamer` in
playground/inference/generate.py): each token as it is generated, the prompt skipped, the ids so
far decoded without special tokens, a token that ends in half a character held until the rest
comes. transformers' `TextIteratorStreamer` holds text back until a space or a line ends, so its
first text waited for a second token: that made the raw side slower and flattered our ratio.
Both sides therefore time the same event: the first generated token's text in the client's hands
(ours: the first server-sent event with non-empty content; the role chunk before it is empty).

Same prompt (an arithmetic validation row), greedy decoding, at most 48 tokens, so both produce
the same answer (checked). TTFT: from sending the request (ours) or applying the chat template
(raw) to the first text. Tokens/s: the tokens after the first ÷ the time from the first text to
the end of the stream (ours: `data: [DONE]`, after the log is completed; raw: generate returned),
so that the fixed cost before the first token, which TTFT measures, is not counted twice. Ours,
in order: the API key is checked and counted (one trip to Django's sync thread), the deployment
looked up, its model taken from the pool and the prompt templated (a second trip); generation
starts in the pool's thread; meanwhile the invocation log is written (logging on) and the
response headers sent. Ratios are the medians of the per-repeat ratios.

Both sides use the same number of torch threads, 1 by default (`RFT_INFERENCE_TORCH_THREADS` for
the console): on 2 shared cores, 2 intra-op threads make a tiny model's latency swing tenfold
whenever anything else runs (the raw side alone measured 30-370 ms TTFT with 2 threads, 7-20 ms
with 1), which would measure the neighbours, not the endpoint. Goals: TTFT ours/raw ≤ 1.2,
tokens/s ours/raw ≥ 0.8. With --profile, the same requests go to the console's ASGI
application in one process (no socket) with each stage of the view timed, to show where our TTFT
goes.

    .venv/bin/python bench/ttft.py [--repeats 20] [--torch-threads 1] [--profile]
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from common import Console, deploy_starter, mark, script, starter_artifacts
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.generation.streamers import BaseStreamer

MAX_TOKENS = 48
DEPLOYMENTS = {"starter-logged": {}, "starter-unlogged": {"no_logs": "1"}}


@dataclass
class Timing:
    ttft: float  # seconds to the first non-empty text
    headers: float  # seconds to the response headers (ours only)
    tokens: int
    total: float  # seconds to the end of the stream
    text: str

    @property
    def tokens_per_second(self) -> float:
        """After the first token: the streaming speed, without the fixed cost TTFT measures."""
        return (self.tokens - 1) / (self.total - self.ttft)


def prompt() -> list[dict[str, str]]:
    path = starter_artifacts() / "datasets" / "arithmetic-validation.jsonl"
    row = json.loads(path.read_text().splitlines()[0])
    users = [i for i, m in enumerate(row["messages"]) if m["role"] == "user"]
    return row["messages"][: users[-1] + 1]


def ours(console: Console, key: str, model: str, messages: list[dict[str, str]]) -> Timing:
    body = json.dumps({
        "model": model, "messages": messages, "temperature": 0, "max_tokens": MAX_TOKENS,
        "stream": True, "stream_options": {"include_usage": True},
    })  # fmt: skip
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", console.port, timeout=60)
    started = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body, headers)
    response = connection.getresponse()
    headers_at = time.perf_counter()
    first, text, tokens, done = 0.0, "", 0, 0.0
    for line in response:
        if line.strip() == b"data: [DONE]":
            done = time.perf_counter()
        if not line.startswith(b"data: ") or done:
            continue
        event = json.loads(line[6:])
        content = event["choices"][0]["delta"].get("content") if event["choices"] else ""
        if content:
            first = first or time.perf_counter()
            text += content
        if event.get("usage"):
            tokens = event["usage"]["completion_tokens"]
    connection.close()
    assert first and done, f"a stream without text or without [DONE] (status {response.status})"
    return Timing(first - started, headers_at - started, tokens, done - started, text)


class TokenStreamer(BaseStreamer):
    """Each generated token's text, by the rule of our endpoint's streamer (`_ChoiceStreamer`):
    the prompt skipped (generate() puts it first), the ids so far decoded without special tokens,
    text that ends in half a character held until the rest comes. Iterated from another thread,
    as `TextIteratorStreamer` is."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.pieces: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.ids: list[int] = []
        self.sent = 0  # characters of the decoded text already passed on
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.ids += value.reshape(-1).tolist()
        self._send(final=False)

    def end(self) -> None:
        self._send(final=True)
        self.pieces.put(None)

    def _send(self, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd") and not final:
            return
        new, self.sent = text[self.sent :], len(text)
        if new:
            self.pieces.put(new)

    def __iter__(self) -> Iterator[str]:
        return iter(self.pieces.get, None)


class Raw:
    """The same model files, generated from token by token in this process."""

    def __init__(self) -> None:
        path = starter_artifacts() / "models" / "starter"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    def __call__(self, messages: list[dict[str, str]]) -> Timing:
        started = time.perf_counter()
        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        streamer = TokenStreamer(self.tokenizer)
        output: list[Any] = []

        @torch.inference_mode()
        def generate() -> None:
            output.append(self.model.generate(
                **inputs, streamer=streamer, do_sample=False, max_new_tokens=MAX_TOKENS,
                pad_token_id=self.tokenizer.eos_token_id,
            ))  # fmt: skip

        thread = threading.Thread(target=generate)
        thread.start()
        first, text = 0.0, ""
        for piece in streamer:
            if piece:
                first = first or time.perf_counter()
                text += piece
        thread.join()
        total = time.perf_counter() - started
        tokens = output[0].shape[1] - inputs["input_ids"].shape[1]
        return Timing(first - started, 0.0, tokens, total, text.strip())


def profile(console: Console, key: str, messages: list[dict[str, str]], repeats: int) -> None:
    stages = console.shell(
        script("ttft_profile"), BENCH_MODEL="starter-logged", BENCH_MESSAGES=json.dumps(messages),
        BENCH_MAX_TOKENS=str(MAX_TOKENS), BENCH_KEY=key, BENCH_REPEATS=str(repeats),
    )  # fmt: skip
    print(f"\nwhere our TTFT goes (in-process ASGI, no socket; medians of {repeats}):")
    for name, milliseconds in stages.items():
        print(f"  {name:<50}{milliseconds:>8.2f} ms")


def median_of(timings: list[Timing], field: str) -> float:
    return statistics.median(getattr(timing, field) for timing in timings)


def measure(
    console: Console, key: str, messages: list[dict[str, str]], raw: Raw, repeats: int
) -> dict[str, list[Timing]]:
    runs: dict[str, list[Timing]] = {name: [] for name in [*DEPLOYMENTS, "raw"]}
    for repeat in range(repeats + 2):  # the first two warm up both sides
        timings = {name: ours(console, key, name, messages) for name in DEPLOYMENTS}
        timings["raw"] = raw(messages)
        if repeat >= 2:
            for name, timing in timings.items():
                runs[name].append(timing)
    return runs


def report(runs: dict[str, list[Timing]]) -> None:
    print(f"{'side':<36}{'TTFT ms':>9}{'headers ms':>12}{'tokens':>8}{'tokens/s':>10}")
    for name, label in (
        ("starter-logged", "ours, /v1 stream (request logged)"),
        ("starter-unlogged", "ours, /v1 stream (logging off)"),
        ("raw", "raw, token by token in-process"),
    ):
        timings = runs[name]
        headers = median_of(timings, "headers") * 1000 if name != "raw" else None
        print(
            f"{label:<36}{median_of(timings, 'ttft') * 1000:>9.1f}"
            f"{f'{headers:.1f}' if headers is not None else '':>12}"
            f"{timings[0].tokens:>8}{median_of(timings, 'tokens_per_second'):>10.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--torch-threads", type=int, default=1, help="both sides; 0: default")
    parser.add_argument("--profile", action="store_true", help="break our TTFT down by stage")
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    messages, raw = prompt(), Raw()
    threads = {"RFT_INFERENCE_TORCH_THREADS": str(args.torch_threads)}
    with Console("ttft", RFT_RATE_LIMIT_PER_MINUTE="100000", **threads) as console:
        key = deploy_starter(console, DEPLOYMENTS)
        runs = measure(console, key, messages, raw, args.repeats)
        answers = {timing.text for timings in runs.values() for timing in timings}
        assert len(answers) == 1, f"the answers differ: {answers}"
        print(
            f"{args.repeats} requests each, medians, {args.torch_threads or 'default'} torch "
            f"thread(s); answer {answers.pop()!r}"
        )
        report(runs)
        if args.profile:
            profile(console, key, messages, args.repeats)
    pairs = list(zip(runs["starter-logged"], runs["raw"], strict=True))
    ratio = statistics.median(a.ttft / b.ttft for a, b in pairs)
    speed = statistics.median(a.tokens_per_second / b.tokens_per_second for a, b in pairs)
    print(
        f"time to first token: {ratio:.2f}× ours/raw (goal ≤ 1.2) {mark(ratio <= 1.2)}; "
        f"tokens/s after the first {speed:.2f}× raw (goal ≥ 0.8) {mark(speed >= 0.8)}"
    )


if __name__ == "__main__":
    main()
