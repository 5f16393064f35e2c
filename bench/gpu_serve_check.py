"""Serving on a GPU: the /v1 endpoint with the deployment's weights on CUDA (bench/gpu_check.sh).

Starts a console as `make up` does with `RFT_INFERENCE_DEVICE=cuda:0` (2 web processes), deploys
the starter model from its page and sends /v1 requests over HTTP: a greedy chat answer; 10 seeds of
a strict `json_schema` answer, streamed and not, each parsed and validated (constrained decoding's
token mask applied to CUDA logits); chat logprobs with top_logprobs 2 (bf16 weights: a greedy
token's logprob must be the top one); /v1/completions scoring a prompt (`echo`, `max_tokens 0`);
/v1/responses streamed; 20 greedy requests timed; and nvidia-smi showing the web processes holding
GPU memory (the weights really are on the GPU). One line per check, then a verdict line; exit 1
when a check fails. Goal: every check passes (the latency is reported beside, for the record).

    .venv/bin/python bench/gpu_serve_check.py          # DEVICE=cpu runs the same checks on the CPU
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import jsonschema
from common import Console, deploy_starter

DEVICE = os.environ.get("DEVICE", "cuda:0")
MODEL = "starter-gpu"
EXTRACTION = [
    {"role": "system", "content": "You extract data."},
    {
        "role": "user",
        "content": 'Give JSON with "name", "age" (a number) and "city".\n'
        "Text: Gus is 31 years old and lives in Oslo.",
    },
]
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "city": {"type": "string", "maxLength": 24},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
PERSON_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "person", "schema": PERSON, "strict": True},
}
SUM = [{"role": "user", "content": "What is 17 + 25? End with #### and the number."}]


class Endpoint:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """(status, parsed JSON), or for a stream (status, [parsed events])."""
        request = urllib.request.Request(  # noqa: S310 - loopback
            self.url + path, data=json.dumps({"model": MODEL, **body}).encode(), method="POST"
        )
        request.add_header("Authorization", f"Bearer {self.key}")
        request.add_header("Content-Type", "application/json")
        try:
            response = urllib.request.urlopen(request, timeout=120)  # noqa: S310 - loopback
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")
        with response:
            if not body.get("stream"):
                return response.status, json.loads(response.read())
            return response.status, [event for line in response if (event := _event(line))]


def _event(line: bytes) -> dict[str, Any] | None:
    text = line.decode().strip()
    if not text.startswith("data:") or text == "data: [DONE]":
        return None
    return json.loads(text[5:])


def greedy_chat(api: Endpoint) -> tuple[bool, str]:
    status, reply = api.post(
        "/v1/chat/completions", {"messages": SUM, "temperature": 0, "max_tokens": 48}
    )
    if status != 200:
        return False, f"{status} {reply}"[:300]
    answer = reply["choices"][0]["message"]["content"]
    return bool(reply["usage"]["completion_tokens"]), repr(answer)


def structured(api: Endpoint) -> tuple[bool, str]:
    problems = []
    for seed in range(10):
        for stream in (False, True):
            body = {"messages": EXTRACTION, "temperature": 1, "seed": seed, "max_tokens": 128,
                    "response_format": PERSON_FORMAT, "stream": stream}  # fmt: skip
            status, reply = api.post("/v1/chat/completions", body)
            if status != 200:
                problems.append(f"seed {seed}, stream {stream}: {status} {reply}"[:300])
                continue
            text = _streamed_text(reply) if stream else reply["choices"][0]["message"]["content"]
            try:
                jsonschema.validate(json.loads(text), PERSON)
            except (ValueError, jsonschema.ValidationError) as error:
                problems.append(f"seed {seed}, stream {stream}: {text!r}: {error}"[:300])
    return not problems, "; ".join(problems[:3]) or "20 answers, every one parses and validates"


def _streamed_text(events: list[dict[str, Any]]) -> str:
    chunks = [e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices")]
    return "".join(chunks)


def logprobs(api: Endpoint) -> tuple[bool, str]:
    body = {
        "messages": SUM,
        "temperature": 0,
        "max_tokens": 16,
        "logprobs": True,
        "top_logprobs": 2,
    }
    status, reply = api.post("/v1/chat/completions", body)
    if status != 200:
        return False, f"{status} {reply}"[:300]
    content = reply["choices"][0]["logprobs"]["content"]
    wrong = [
        token for token in content
        if token["logprob"] > 1e-6 or len(token["top_logprobs"]) != 2
        or abs(token["top_logprobs"][0]["logprob"] - token["logprob"]) > 0.05
    ]  # fmt: skip
    detail = f"{len(content)} greedy tokens, each the top one; wrong: {wrong[:2]}"
    return bool(content) and not wrong, detail


def scoring(api: Endpoint) -> tuple[bool, str]:
    body = {"prompt": "12 + 7 = 19", "max_tokens": 0, "echo": True, "logprobs": 1}
    status, reply = api.post("/v1/completions", body)
    if status != 200:
        return False, f"{status} {reply}"[:300]
    values = reply["choices"][0]["logprobs"]["token_logprobs"]
    ok = values[0] is None and all(v is not None and v <= 1e-6 for v in values[1:])
    return ok, f"prompt tokens scored: {[None if v is None else round(v, 2) for v in values]}"


def responses(api: Endpoint) -> tuple[bool, str]:
    body = {"input": "What is 3 + 4?", "stream": True, "max_output_tokens": 32, "store": False}
    status, events = api.post("/v1/responses", body)
    if status != 200:
        return False, f"{status} {events}"[:300]
    kinds = [event.get("type") for event in events]
    return "response.completed" in kinds, f"{len(kinds)} events, last {kinds[-1:]}"


def latency(api: Endpoint) -> tuple[bool, str]:
    seconds, tokens = [], []
    for _ in range(20):
        started = time.perf_counter()
        status, reply = api.post(
            "/v1/chat/completions", {"messages": SUM, "temperature": 0, "max_tokens": 48}
        )
        seconds.append(time.perf_counter() - started)
        tokens.append(reply["usage"]["completion_tokens"] if status == 200 else 0)
    median = statistics.median(seconds) * 1000
    typical = statistics.median(tokens)
    return all(tokens), f"20 answered; median {median:.0f} ms for {typical:.0f} tokens"


def on_the_gpu(_: Endpoint) -> tuple[bool, str]:
    if not DEVICE.startswith("cuda"):
        return True, f"{DEVICE}: nothing to show"
    query = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"]
    apps = subprocess.run(query, capture_output=True, text=True, check=False).stdout.split("\n")
    apps = [line.strip() for line in apps if line.strip()]
    return bool(apps), "; ".join(apps) or "no process holds GPU memory"


CHECKS = {
    "chat, greedy": greedy_chat,
    "json_schema (strict), 10 seeds, streamed and not": structured,
    "chat logprobs, top_logprobs 2": logprobs,
    "completions, echo + max_tokens 0 (scoring)": scoring,
    "responses, streamed": responses,
    "20 greedy requests": latency,
    "the web processes hold the weights on the GPU": on_the_gpu,
}


def main() -> int:
    env = {"RFT_INFERENCE_DEVICE": DEVICE, "RFT_WEB_PROCESSES": "2"}
    with Console("gpu-serve", RFT_RATE_LIMIT_PER_MINUTE="100000", **env) as console:
        api = Endpoint(console.url, deploy_starter(console, {MODEL: {}}))
        failed = []
        for name, check in CHECKS.items():
            ok, detail = check(api)
            print(f"{'✓' if ok else '✗'} {name}: {detail}", flush=True)
            if not ok:
                failed.append(name)
    verdict = f"failed: {', '.join(failed)} ✗" if failed else "every check passed ✓"
    print(f"serving ({DEVICE}): {len(CHECKS) - len(failed)}/{len(CHECKS)} checks; {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
