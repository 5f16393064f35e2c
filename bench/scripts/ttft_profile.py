"""Where our time to first token goes, measured inside one process: the same requests as ttft.py
sent to the console's own ASGI application (rftconsole.asgi, as Daphne calls it, without the
socket), each stage of the `/v1/chat/completions` view timed by wrapping it, and the parts of
its two sync stages (key check, rate-limit count; deployment, model, chat template) beneath them.

Run in the console's data dir with `manage.py shell -c "$(cat bench/scripts/ttft_profile.py)"`
(ttft.py --profile), parameters from the environment: BENCH_MODEL (a deployment's name),
BENCH_MESSAGES (the chat, as JSON), BENCH_MAX_TOKENS, BENCH_KEY (an API key) and BENCH_REPEATS
(requests measured, after 3 to warm up). Prints one JSON line: {stage: median milliseconds}.
"""

import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from playground.v1 import views as openai_api
from playground.v1.responses import Call
from rftconsole.asgi import application

SPANS: dict[str, list[tuple[float, float]]] = {}  # stage -> (start, end) of each call
STAGES = (
    "API key and rate limit (_admit)",
    "deployment, model, chat template (prepare_chat)",
    "invocation log written",
)
MIDDLEWARE = "middleware, request side (+ hop to the sync thread)"
# The parts of the two sync stages, shown under them: (stage, label, function in the view module).
PARTS = (
    (STAGES[0], "  of which the key looked up and checked", "_authenticate"),
    (STAGES[0], "  of which the request counted (Redis)", "_rate_limit"),
    (STAGES[1], "  of which the deployment looked up", "deployment_named"),
    (STAGES[1], "  of which the model from the pool", "served_model"),
    (STAGES[1], "  of which the chat template and tokens", "chat_prompt_ids"),
)


def timed(name: str, function: Callable[..., Any], coroutine: bool = True) -> Callable[..., Any]:
    """`function`, recording the start and end of each call in SPANS[name]."""

    async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            SPANS.setdefault(name, []).append((started, time.perf_counter()))

    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SPANS.setdefault(name, []).append((started, time.perf_counter()))

    return async_wrapper if coroutine else sync_wrapper


def scope(key: str) -> dict[str, Any]:
    """A streamed chat completion's HTTP scope, as Daphne would build it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {key}".encode()),
        ],
    }


async def one(body: str, http_scope: dict[str, Any]) -> tuple[float, float, float]:
    """One request: when it started, when the headers came and when the first token came."""
    started, times, sent = time.perf_counter(), {}, []

    async def receive() -> dict[str, Any] | None:
        if not sent:
            sent.append(True)
            return {"type": "http.request", "body": body.encode(), "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        return None

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            times["headers"] = time.perf_counter()
        part = message.get("body", b"")
        if "first" not in times and b'"content": "' in part and b'"content": ""' not in part:
            times["first"] = time.perf_counter()

    await application(dict(http_scope), receive, send)
    return started, times["headers"], times["first"]


async def run(n: int, body: str, http_scope: dict[str, Any]) -> list[tuple[float, float, float]]:
    return [await one(body, http_scope) for _ in range(n)]


def main() -> None:
    openai_api._admit = timed(STAGES[0], openai_api._admit, coroutine=False)
    openai_api.prepare_chat = timed(STAGES[1], openai_api.prepare_chat, coroutine=False)
    Call.create_log = timed(STAGES[2], Call.create_log)
    for _, label, name in PARTS:
        setattr(openai_api, name, timed(label, getattr(openai_api, name), coroutine=False))
    body = json.dumps({
        "model": os.environ["BENCH_MODEL"], "messages": json.loads(os.environ["BENCH_MESSAGES"]),
        "temperature": 0, "max_tokens": int(os.environ["BENCH_MAX_TOKENS"]), "stream": True,
    })  # fmt: skip
    http_scope = scope(os.environ["BENCH_KEY"])
    asyncio.run(run(3, body, http_scope))
    SPANS.clear()
    requests = asyncio.run(run(int(os.environ["BENCH_REPEATS"]), body, http_scope))
    rows: dict[str, list[float]] = {MIDDLEWARE: []}
    for name in STAGES:
        rows[name] = []
        rows.update((label, []) for stage, label, _ in PARTS if stage == name)
    rows |= {
        "view code and thread hops between the stages": [],
        "response start (middleware, response side)": [],
        "headers → first token (pool thread, event loop)": [],
        "total": [],
        "generation started → first token": [],
    }
    for n, (started, headers, first) in enumerate(requests):
        stage = {name: SPANS[name][n] for name in STAGES}
        view_start, view_end = stage[STAGES[0]][0], stage[STAGES[2]][1]
        rows[MIDDLEWARE].append(view_start - started)
        for name, (a, b) in stage.items():
            rows[name].append(b - a)
        for _, label, _ in PARTS:
            rows[label].append(SPANS[label][n][1] - SPANS[label][n][0])
        rows["view code and thread hops between the stages"].append(
            view_end - view_start - sum(b - a for a, b in stage.values())
        )
        rows["response start (middleware, response side)"].append(headers - view_end)
        rows["headers → first token (pool thread, event loop)"].append(first - headers)
        rows["generation started → first token"].append(first - stage[STAGES[1]][1])
        rows["total"].append(first - started)
    print(json.dumps({name: statistics.median(values) * 1000 for name, values in rows.items()}))


main()  # `manage.py shell -c` runs this text (its __name__ is not "__main__")
