"""Metric latency: from the trainer's callback to a websocket client, beside raw Redis pub/sub.

Starts a console like `make up` (fresh data dir), signs in, and listens on a job's websocket
(`ws/jobs/<id>/`) as the job page does. Each row is timed with wall-clock times on this machine:

- raw Redis pub/sub: a separate process publishes timestamped messages on the console's embedded
  Redis at the replay's pace; the bench subscribes. The floor: one hop through Redis.
- callback replay: a separate process runs the real `JobCallback.on_log` for each step (rollouts
  and the metric point stored, the live event sent through the channel layer), 10 steps/s;
  latency = websocket receipt − on_log entry.
- real job: a training job on the `gpu` worker; latency = websocket receipt − the point's
  `created_at` (stored by the callback just before it sends), with training using the CPU.

Goal: callback → client p50 ≤ 50 ms and p99 ≤ 250 ms, on both callback rows.

    .venv/bin/python bench/metric_latency.py [--points 200] [--steps 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import redis
import websockets
from common import SCRIPTS, Console, job_request, mark, percentile, replay_command, script

PAUSE = 0.1  # seconds between points: 10 per second, faster than any real training step
Received = dict[tuple[str, int], float]


def raw_redis(console: Console, points: int) -> list[float]:
    """Milliseconds from publish to receipt, one hop through the console's Redis."""
    socket_path = str(console.data_dir / "run" / "redis.sock")
    pubsub = redis.Redis(unix_socket_path=socket_path).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("bench")
    pubsub.get_message(timeout=1)  # the subscription's confirmation: from now on it listens
    latencies: list[float] = []

    def listen() -> None:
        while len(latencies) < points:
            message = pubsub.get_message(timeout=5)
            if message is None:
                return
            latencies.append((time.time() - json.loads(message["data"])["sent"]) * 1000)

    reader = threading.Thread(target=listen)
    reader.start()
    publisher = SCRIPTS / "publisher.py"
    subprocess.run(
        [sys.executable, str(publisher), socket_path, str(points), str(PAUSE)], check=True
    )
    reader.join()
    pubsub.close()
    return latencies


async def listen_while(
    console: Console, cookie: str, job: int, produce: Callable[[], Awaitable[Any]]
) -> tuple[Received, Any]:
    """Receipt time of each metric point on the job's websocket while `produce` runs."""
    received: Received = {}
    url = f"ws://127.0.0.1:{console.port}/ws/jobs/{job}/"
    headers = {"Cookie": cookie}
    async with websockets.connect(url, additional_headers=headers, origin=console.url) as socket:
        json.loads(await socket.recv())  # the backlog comes first

        async def read() -> None:
            async for message in socket:
                event = json.loads(message)
                if event.get("type") == "metric":
                    received.setdefault((event["kind"], event["step"]), time.time())

        reader = asyncio.create_task(read())
        result = await produce()
        await asyncio.sleep(1.0)  # points still in flight
        reader.cancel()
    return received, result


async def replay(console: Console, points: int, job: int) -> dict[int, float]:
    argv, env = replay_command(console.env, job, points, PAUSE)
    process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=subprocess.PIPE)
    out, _ = await process.communicate()
    return {int(step): sent for step, sent in json.loads(out.decode().splitlines()[-1]).items()}


def callback_replay(console: Console, cookie: str, points: int) -> list[float]:
    job = console.shell(script("unqueued_job"))["job"]
    received, sent = asyncio.run(
        listen_while(console, cookie, job, lambda: replay(console, points, job))
    )
    return [
        (received[("train", s)] - t) * 1000 for s, t in sent.items() if ("train", s) in received
    ]


def real_job(console: Console, cookie: str, steps: int) -> tuple[list[float], int]:
    session = console.session()
    job = session.post_json("/api/jobs/", job_request("bench-latency", steps))["id"]

    async def train() -> dict[str, Any]:
        return await asyncio.to_thread(session.wait_for_job, job)

    received, final = asyncio.run(listen_while(console, cookie, job, train))
    assert final["status"] == "completed", final
    created = console.shell(script("created_at"), BENCH_JOB=str(job))
    latencies = [
        (received[(kind, step)] - at) * 1000 for kind, step, at in created
        if (kind, step) in received
    ]  # fmt: skip
    return latencies, len(created)


def row(name: str, sent: int, latencies: list[float]) -> tuple[float, float]:
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(f"{name:<34}{sent:>6}{len(latencies):>9}{p50:>9.1f}{p99:>9.1f}{max(latencies):>9.1f}")
    return p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200, help="points per replayed row")
    parser.add_argument("--steps", type=int, default=30, help="training steps of the real job")
    args = parser.parse_args()
    with Console("latency") as console:
        cookie = console.session().cookie_header()
        print(f"started {datetime.now():%H:%M:%S}; latencies in ms, wall clock")
        print(f"{'path':<34}{'sent':>6}{'received':>9}{'p50':>9}{'p99':>9}{'max':>9}")
        raw = row("raw Redis pub/sub", args.points, raw_redis(console, args.points))
        replayed = row(
            "callback replay → websocket", args.points,
            callback_replay(console, cookie, args.points),
        )  # fmt: skip
        latencies, sent = real_job(console, cookie, args.steps)
        trained = row("real job (gpu worker) → websocket", sent, latencies)
    p50, p99 = max(replayed[0], trained[0]), max(replayed[1], trained[1])
    ok = p50 <= 50 and p99 <= 250
    print(
        f"metric latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms callback → websocket, worst row "
        f"(goal p50 ≤ 50, p99 ≤ 250; raw Redis p50 {raw[0]:.1f}, p99 {raw[1]:.1f}) {mark(ok)}"
    )


if __name__ == "__main__":
    main()
