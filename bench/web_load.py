"""Web: what each page costs the server, two pages under 50 concurrent users, the saturation
throughput, and 200 websocket viewers of one job.

Starts a console like `make up` (`RFT_WEB_PROCESSES` web processes: one per core by default) and
gives its admin 30 demo jobs with a finished run's metric history (186 train and 10 validation
points); the newest is still training (step 120 of 186), as a console usually has a job running:
its row and page are computed on every load, the finished ones' come from the page cache
(jobs/page_cache.py). Every client keeps its connection open (HTTP/1.1 keep-alive, as browsers
do) and checks what it got (status 200 and the expected text; anything else is an error).

1. Server time per page: one client, `--repeats` loads of each page after one warm-up: the jobs
   list, a finished job's page, the training job's page, the rewards list, the playground and
   `/v1/models` (with an API key). Goal: p95 <= 50 ms each.
2. Users: `--clients` threads, each signed in, load a page, then think 0.5-1.5 s (uniform, mean
   1 s: a person reading, or the page's own 3 s poll and a click now and then), for `--seconds`;
   the jobs list, then a finished job's page. Goal: p95 < 100 ms for each.
3. Saturation: the same clients with no think time, on the jobs list: pages per second (goal:
   >= 50/s, the 50 users' own rate with room to spare) and p95 (reported: with no think time it is
   clients / throughput, queueing, whatever the page costs).
4. Viewers: `--viewers` websocket clients (asyncio + websockets) open the job page's socket
   (`ws/jobs/<id>/`) of one job; then a separate process runs the real training callback
   (`JobCallback.on_log`: rollouts and the point stored, the live event sent) for `--points`
   steps at 10 per second, several times a CPU training step's pace. Every viewer must receive
   every point: lost = points sent x viewers - points received. Goal: 0 lost.

With --profile, 50 jobs lists rendered in one process under cProfile show where a page's time goes.

    .venv/bin/python bench/web_load.py [--clients 50] [--seconds 20] [--viewers 200] [--points 50]
        [--repeats 40] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import random
import subprocess
import threading
import time
from dataclasses import dataclass, field

import websockets
from common import Console, mark, percentile, replay_command, script

JOBS = 30
PAUSE = 0.1
THINK = (0.5, 1.5)  # seconds a user waits between two pages
SERVER_GOAL_MS, USER_GOAL_MS, SATURATION_GOAL = 50.0, 100.0, 50.0


@dataclass
class Page:
    name: str
    path: str
    expect: bytes  # text the page must contain
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)  # ms of each good page
    errors: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def fetch(connection: http.client.HTTPConnection, page: Page) -> bool:
    """One load on a kept-alive connection; True if it is the page expected."""
    connection.request("GET", page.path, headers=page.headers)
    response = connection.getresponse()
    body = response.read()
    return response.status == 200 and page.expect in body


def load(port: int, page: Page, clients: int, seconds: float, think: tuple[float, float] | None,
         repeats: int | None = None) -> Sample:  # fmt: skip
    """`clients` threads loading `page` for `seconds` (or `repeats` times each), with a think
    time drawn from `think` between two loads (None: back to back)."""
    sample = Sample()
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + seconds

    def client(seed: int) -> None:
        draw = random.Random(seed)  # noqa: S311 - think times, not secrets
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        if think:
            time.sleep(draw.uniform(0, think[1]))  # users do not arrive in step
        done = 0
        while time.monotonic() < deadline and (repeats is None or done < repeats):
            begun = time.perf_counter()
            try:
                ok = fetch(connection, page)
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()  # reconnects on the next request
            elapsed = (time.perf_counter() - begun) * 1000
            with lock:
                if ok:
                    sample.latencies.append(elapsed)
                else:
                    sample.errors += 1
            done += 1
            if think:
                time.sleep(draw.uniform(*think))
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sample.seconds = time.monotonic() - started
    return sample


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


def pages(cookie: str, key: str, finished: int, live: int) -> list[Page]:
    signed_in = {"Cookie": cookie}
    return [
        Page("jobs list", "/jobs/", f"demo-{JOBS - 1}<".encode(), signed_in),
        Page("finished job's page", f"/jobs/{finished}/", f"demo-{JOBS - 2}".encode(), signed_in),
        Page("training job's page", f"/jobs/{live}/", f"demo-{JOBS - 1}".encode(), signed_in),
        Page("rewards list", "/rewards/", b"arithmetic", signed_in),
        Page("playground", "/playground/", b"starter", signed_in),
        Page("/v1/models", "/v1/models", b'"object"', {"Authorization": f"Bearer {key}"}),
    ]


def row(name: str, sample: Sample) -> str:
    return (
        f"{name:<24}{len(sample.latencies):>7}{sample.rate:>9.1f}"
        f"{percentile(sample.latencies, 50):>8.1f}{percentile(sample.latencies, 95):>8.1f}"
        f"{sample.errors:>8}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--points", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="where a page's time goes")
    args = parser.parse_args()
    with Console("web") as console:
        jobs = console.shell(script("fill_jobs"), BENCH_JOBS=str(JOBS), BENCH_LIVE="1")
        session = console.session()
        key = session.post_json("/api/keys/", {"name": "bench"})["key"]
        cookie = session.cookie_header()
        shown = pages(cookie, key, jobs["finished"], jobs["live"])
        server = {}
        for page in shown:
            load(console.port, page, 1, 1e9, None, repeats=1)  # warm-up: caches, imports
            server[page.name] = load(console.port, page, 1, 1e9, None, repeats=args.repeats)
        users = {
            page.name: load(console.port, page, args.clients, args.seconds, THINK)
            for page in shown[:2]
        }
        saturation = load(console.port, shown[0], args.clients, args.seconds / 2, None)
        job = console.shell(script("unqueued_job"))["job"]
        counts = asyncio.run(watch(console, cookie, job, args.viewers, args.points))
        stages = console.shell(script("page_profile"), BENCH_REPEATS="50") if args.profile else {}
    header = f"{'page':<24}{'pages':>7}{'pages/s':>9}{'p50':>8}{'p95':>8}{'errors':>8}"
    print(f"server time per page: 1 client, {args.repeats} loads each after a warm-up; ms")
    print(header)
    for name, sample in server.items():
        print(row(name, sample))
    print(f"\n{args.clients} users, each thinking {THINK[0]}-{THINK[1]} s between pages, "
          f"{args.seconds:.0f} s; ms")  # fmt: skip
    print(header)
    for name, sample in users.items():
        print(row(name, sample))
    print(f"\nsaturation: {args.clients} clients back to back, {args.seconds / 2:.0f} s; ms")
    print(header)
    print(row("jobs list", saturation))
    if stages:
        print("\nwhere a /jobs/ page goes (in-process, no socket), ms per page:")
        for stage, milliseconds in stages.items():
            print(f"  {stage:<44}{milliseconds:>8.1f}")
    expected = args.points * args.viewers
    lost = expected - sum(counts)
    print(f"\nwebsocket viewers of one job: {args.viewers}, {args.points} points sent at 10/s")
    print(f"  points delivered {sum(counts)} of {expected}; fewest to one viewer {min(counts)}")
    worst_server = max(percentile(s.latencies, 95) for s in server.values())
    user_p95 = {name: percentile(s.latencies, 95) for name, s in users.items()}
    errors = sum(s.errors for s in (*server.values(), *users.values(), saturation))
    ok_users = all(p95 < USER_GOAL_MS for p95 in user_p95.values())
    print(
        f"web: p95 at {args.clients} users {user_p95['jobs list']:.0f} ms jobs list, "
        f"{user_p95[shown[1].name]:.0f} ms job page (goal < {USER_GOAL_MS:.0f}) {mark(ok_users)}; "
        f"saturation {saturation.rate:.0f} pages/s (goal ≥ {SATURATION_GOAL:.0f}) "
        f"{mark(saturation.rate >= SATURATION_GOAL)}; server time p95 ≤ {worst_server:.0f} ms "
        f"every page (goal ≤ {SERVER_GOAL_MS:.0f}) {mark(worst_server <= SERVER_GOAL_MS)}; "
        f"{args.viewers} viewers lost {lost} of {expected} points (goal 0) {mark(lost == 0)}; "
        f"{errors} errors (goal 0) {mark(errors == 0)}"
    )


if __name__ == "__main__":
    main()
