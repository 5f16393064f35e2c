"""Web: the jobs page under 50 concurrent clients, and 200 websocket viewers of one job.

Starts a console like `make up` (`RFT_WEB_PROCESSES` web processes: one per core by default)
and gives its admin 30 jobs with their metric history (186 train and 10 validation points each,
as a finished demo job has). The page shows the newest 25 (`JOBS_PER_PAGE`); each load must
contain the newest job.

1. Jobs page: `--clients` threads, each signed in (the same session cookie), request `/jobs/`
   back to back for `--seconds`; latency p50/p95 and pages per second, beside one client alone
   (the page's own service time).
2. Viewers: `--viewers` websocket clients (asyncio + websockets) open the job page's socket
   (`ws/jobs/<id>/`) of one job; then a separate process runs the real training callback
   (`JobCallback.on_log`: rollouts and the point stored, the live event sent) for `--points`
   steps at 10 per second, several times a CPU training step's pace. Every viewer must receive
   every point: lost = points sent × viewers − points received.

The issue sets no latency goal for the page; the goal is 0 points lost. With --profile, 50 pages
rendered in one process under cProfile show where a page's time goes.

    .venv/bin/python bench/web_load.py [--clients 50] [--seconds 20] [--viewers 200] [--points 50]
        [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import threading
import time
import urllib.request

import websockets
from common import Console, mark, percentile, replay_command, script

JOBS = 30
NEWEST = f"demo-{JOBS - 1}<".encode()  # the first row of the first page
PAUSE = 0.1


def page_latencies(url: str, cookie: str, clients: int, seconds: float) -> tuple[list[float], int]:
    """Milliseconds per `/jobs/` page with `clients` threads requesting back to back."""
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    lock = threading.Lock()

    def client() -> None:
        nonlocal errors
        opener = urllib.request.build_opener()
        opener.addheaders = [("Cookie", cookie)]
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                with opener.open(f"{url}/jobs/", timeout=60) as response:
                    ok = response.status == 200 and NEWEST in response.read()
            except OSError:
                ok = False
            with lock:
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


async def viewer(url: str, headers: dict[str, str], origin: str, ready: asyncio.Event,
                 received: set[int], done: asyncio.Event) -> None:  # fmt: skip
    """One job page's socket: the train steps it receives until `done` (a failure loses them)."""
    try:
        async with websockets.connect(url, additional_headers=headers, origin=origin) as socket:
            json.loads(await socket.recv())  # the backlog
            ready.set()
            while not done.is_set():
                try:
                    message = await asyncio.wait_for(socket.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                event = json.loads(message)
                if event.get("type") == "metric" and event.get("kind") == "train":
                    received.add(event["step"])
    except (OSError, websockets.WebSocketException) as error:
        print(f"  a viewer failed: {type(error).__name__}: {error}")
    finally:
        ready.set()


async def watch(console: Console, cookie: str, job: int, viewers: int, points: int) -> list[int]:
    """Points received by each viewer while the callback replay sends `points` of them."""
    url = f"ws://127.0.0.1:{console.port}/ws/jobs/{job}/"
    readies = [asyncio.Event() for _ in range(viewers)]
    received: list[set[int]] = [set() for _ in range(viewers)]
    done = asyncio.Event()
    tasks = []
    for n in range(viewers):  # connect in batches of 20: 200 handshakes at once time out
        tasks.append(asyncio.create_task(
            viewer(url, {"Cookie": cookie}, console.url, readies[n], received[n], done)
        ))  # fmt: skip
        if n % 20 == 19:
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies[: n + 1])), 60)
    await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in readies)), 60)
    argv, env = replay_command(console.env, job, points, PAUSE)
    replay = await asyncio.create_subprocess_exec(*argv, env=env, stdout=subprocess.DEVNULL)
    await replay.wait()
    await asyncio.sleep(2.0)  # the last points in flight
    done.set()
    await asyncio.gather(*tasks)
    return [len(steps & set(range(1, points + 1))) for steps in received]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--points", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="where a page's time goes")
    args = parser.parse_args()
    with Console("web") as console:
        console.shell(script("fill_jobs"), BENCH_JOBS=str(JOBS))  # finished demo jobs
        cookie = console.session().cookie_header()
        alone, _ = page_latencies(console.url, cookie, 1, args.seconds / 4)
        loaded, errors = page_latencies(console.url, cookie, args.clients, args.seconds)
        job = console.shell(script("unqueued_job"))["job"]
        counts = asyncio.run(watch(console, cookie, job, args.viewers, args.points))
        stages = console.shell(script("page_profile"), BENCH_REPEATS="50") if args.profile else {}
    print(f"jobs page (/jobs/, {JOBS} jobs with their points, 25 a page); ms")
    print(f"{'clients':<10}{'pages':>7}{'pages/s':>9}{'p50':>8}{'p95':>8}{'errors':>8}")
    for clients, sample, seconds, failed in (
        (1, alone, args.seconds / 4, 0),
        (args.clients, loaded, args.seconds, errors),
    ):
        print(
            f"{clients:<10}{len(sample):>7}{len(sample) / seconds:>9.1f}"
            f"{statistics.median(sample):>8.0f}{percentile(sample, 95):>8.0f}{failed:>8}"
        )
    if stages:
        print("\nwhere a /jobs/ page goes (in-process, no socket), ms per page:")
        for stage, milliseconds in stages.items():
            print(f"  {stage:<44}{milliseconds:>8.1f}")
    expected = args.points * args.viewers
    lost = expected - sum(counts)
    print(f"\nwebsocket viewers of one job: {args.viewers}, {args.points} points sent at 10/s")
    print(f"  points delivered {sum(counts)} of {expected}; fewest to one viewer {min(counts)}")
    p95 = percentile(loaded, 95)
    print(
        f"web: jobs page p95 {p95:.0f} ms at {args.clients} clients (1 client "
        f"{percentile(alone, 95):.0f} ms); {args.viewers} viewers lost {lost} of {expected} points "
        f"(goal 0 lost) {mark(lost == 0 and errors == 0)}"
    )


if __name__ == "__main__":
    main()
