"""/v1 under load at the per-key rate limit: chat completions from concurrent clients, at the
limit and above it, against a console started like `make up`.

Starts a console (`RFT_WEB_PROCESSES` web processes, one per core by default, all serving one
socket) with the per-key limit set to `--limit` requests a minute (`RFT_RATE_LIMIT_PER_MINUTE`:
a fixed one-minute window counted in Redis, so one limit for all web processes), deploys the
starter model from its page and warms every web process up. Then two phases of `--seconds`
each, each with an API key of its own (the limit is per key), `--clients` threads each holding
one keep-alive HTTP connection and sending plain (not streamed) chat completions of at most
`--max-tokens` tokens:

- at the limit: exactly `--limit` requests in the phase, evenly paced, so no window can count
  more than the limit: every one must be answered 200 (a 429 here refuses too early);
- above it: every client sends its next request as soon as it has an answer, far more than the
  limit (429 answers cost little). The phase starts early enough in a window to end in it.

Each accepted answer (200) is placed in the window (`time // 60`, the same clock as the
server's) of its sending and of its answer; where the two differ it straddles a boundary and is
counted apart. Goal: no answer other than 200 or 429 (no connection error, no 5xx) in either
phase, no 429 at the limit, and in every window at most `--limit` accepted (tolerance 0) — and
above it at least `--limit` minus the straddling ones, so the count is neither exceeded nor
refused early. Prints, per phase, requests/s accepted, the 429 count, p50/p95 latency of the
accepted ones, and how the requests spread over the web processes (their access logs).

    .venv/bin/python bench/v1_load.py [--limit 240] [--clients 8] [--seconds 20] [--max-tokens 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass

from common import Console, deploy_starter, mark, percentile

WINDOW = 60  # seconds: playground/v1/ratelimit.py's WINDOW_SECONDS
PROMPT = [{"role": "user", "content": "What is 14 + 8?"}]


@dataclass
class Reply:
    sent: float  # time.time(), the clock the server's window is counted on
    answered: float
    status: int  # 0: no HTTP answer (connection error)
    error: str = ""

    @property
    def window(self) -> int | None:
        """The window the server counted it in, when sending and answer share one."""
        first, last = int(self.sent // WINDOW), int(self.answered // WINDOW)
        return first if first == last else None


class Client:
    """One keep-alive connection sending chat completions, recording every answer."""

    def __init__(self, port: int, key: str, body: str) -> None:
        self.port, self.body = port, body
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.connection: http.client.HTTPConnection | None = None

    def send(self) -> Reply:
        sent = time.time()
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.connection.request("POST", "/v1/chat/completions", self.body, self.headers)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            return Reply(sent, time.time(), 0, f"{type(error).__name__}: {error}")
        reply = Reply(sent, time.time(), response.status)
        if response.status == 200 and not json.loads(data)["choices"][0]["message"]["content"]:
            reply.error = "an empty answer"
        elif response.status not in (200, 429):
            reply.error = data[:300].decode(errors="replace")
        return reply

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def run_phase(clients: list[Client], seconds: float, total: int | None) -> list[Reply]:
    """All clients at once for `seconds`: `total` requests evenly paced, or (None) each client
    sending its next request as soon as it has an answer."""
    replies: list[Reply] = []
    lock = threading.Lock()
    started = time.monotonic()

    def work(number: int, client: Client) -> None:
        if total is None:
            due: list[float] = []
        else:  # request k of all goes at k * seconds / total; this client sends every n-th
            due = [k * seconds / total for k in range(number, total, len(clients))]
        while True:
            if total is not None:
                if not due:
                    break
                time.sleep(max(0.0, started + due.pop(0) - time.monotonic()))
            elif time.monotonic() - started >= seconds:
                break
            reply = client.send()
            with lock:
                replies.append(reply)
        client.close()

    threads = [threading.Thread(target=work, args=(n, c)) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return replies


def wait_for_window_room(seconds: float) -> None:
    """Start a phase early enough in a window that it ends in the same one (clear counts)."""
    left = WINDOW - time.time() % WINDOW
    if left < seconds + 5:
        time.sleep(left + 0.2)


def served_per_process(console: Console) -> dict[str, Counter[int]]:
    """Status counts of /v1/chat/completions in each web process's access log, and (as status 0)
    how often it lost the shared count (Redis unreachable: it then counts alone)."""
    counts: dict[str, Counter[int]] = {}
    for log in sorted((console.data_dir / "logs").glob("web-*.log")):
        text = log.read_text(errors="replace")
        found = re.findall(r'"POST /v1/chat/completions" (\d{3})', text)
        counts[log.stem] = Counter(int(status) for status in found)
        counts[log.stem][0] = text.count("rate-limit count is unreachable")
    return counts


@dataclass
class Verdict:
    accepted: int
    refused: int
    errors: list[str]
    most_in_a_window: int
    fewest_in_a_refusing_window: int | None  # the fewest accepted (+ straddling) where 429s came
    straddling: int


def judge(replies: list[Reply], limit: int) -> Verdict:
    accepted = [r for r in replies if r.status == 200 and not r.error]
    errors = [f"{r.status} {r.error}" for r in replies if r.error or r.status not in (200, 429)]
    per_window = Counter(r.window for r in accepted if r.window is not None)
    straddling = sum(r.window is None for r in accepted)
    refusing = {int(r.answered // WINDOW) for r in replies if r.status == 429}
    fewest = min((per_window[w] + straddling for w in refusing), default=None)
    refused = sum(r.status == 429 for r in replies)
    most = max(per_window.values(), default=0)
    return Verdict(len(accepted), refused, errors, most, fewest, straddling)


def report(name: str, replies: list[Reply], limit: int) -> Verdict:
    verdict = judge(replies, limit)
    seconds = max(r.answered for r in replies) - min(r.sent for r in replies)
    latencies = [(r.answered - r.sent) * 1000 for r in replies if r.status == 200 and not r.error]
    p50 = percentile(latencies, 50) if latencies else float("nan")
    p95 = percentile(latencies, 95) if latencies else float("nan")
    print(
        f"{name:<16}{len(replies):>6}{verdict.accepted:>9}{verdict.accepted / seconds:>8.1f}"
        f"{verdict.refused:>6}{len(verdict.errors):>7}{p50:>8.0f}{p95:>8.0f}"
        f"{verdict.most_in_a_window:>8}{verdict.straddling:>7}"
    )
    for error in verdict.errors[:5]:
        print(f"    error: {error}")
    return verdict


def new_key(console: Console, name: str) -> str:
    return str(console.session().post_json("/api/keys/", {"name": name})["key"])


def warm_up(console: Console, key: str, body: str, processes: int) -> None:
    """Every web process loads the weights on its first request: a few concurrent rounds reach
    them all (they share one accept queue) before anything is measured."""
    clients = [Client(console.port, key, body) for _ in range(max(2, processes) * 2)]
    for _ in range(3):
        replies = run_phase(clients, 0.0, len(clients))
        assert all(r.status == 200 for r in replies), [(r.status, r.error) for r in replies]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=240, help="requests per minute per key")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase")
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()
    body = json.dumps({"model": "starter", "messages": PROMPT, "max_tokens": args.max_tokens})
    with Console("v1load", RFT_RATE_LIMIT_PER_MINUTE=str(args.limit)) as console:
        processes = len(list((console.data_dir / "logs").glob("web-*.log")))
        deploy_starter(console, {"starter": {}})
        warm_up(console, new_key(console, "warm-up"), body, processes)
        print(
            f"/v1/chat/completions, limit {args.limit} requests a minute per key, {processes} web "
            f"process(es), {args.clients} clients, {args.seconds:.0f} s a phase, max_tokens "
            f"{args.max_tokens}; latencies in ms of accepted requests"
        )
        print(
            f"{'phase':<16}{'sent':>6}{'accepted':>9}{'acc/s':>8}{'429':>6}{'errors':>7}"
            f"{'p50':>8}{'p95':>8}{'max/win':>8}{'strad':>7}"
        )
        before = served_per_process(console)
        key = new_key(console, "at")  # one key for all clients: the limit is per key
        clients = [Client(console.port, key, body) for _ in range(args.clients)]
        at = report("at the limit", run_phase(clients, args.seconds, args.limit), args.limit)
        wait_for_window_room(args.seconds)
        key = new_key(console, "above")
        clients = [Client(console.port, key, body) for _ in clients]
        above = report("above the limit", run_phase(clients, args.seconds, None), args.limit)
        time.sleep(0.5)  # the access logs' last lines
        after = served_per_process(console)
    spread = ", ".join(
        f"{name}: {after[name][200] - before.get(name, Counter())[200]} accepted, "
        f"{after[name][429] - before.get(name, Counter())[429]} refused, "
        f"{after[name][0]}× the shared count unreachable"
        for name in after
    )
    print(f"served by: {spread}")
    verdict(at, above, args.limit)


def verdict(at: Verdict, above: Verdict, limit: int) -> None:
    no_errors = not at.errors and not above.errors
    at_ok = at.refused == 0 and at.accepted == limit
    capped = max(at.most_in_a_window, above.most_in_a_window) <= limit
    early = above.fewest_in_a_refusing_window
    reached = above.refused > 0 and early is not None and early >= limit
    print(
        f"v1 load: at the limit {at.accepted} of {limit} accepted, {at.refused} refused; above "
        f"it at most {above.most_in_a_window} accepted a window (limit {limit}), {above.refused}×"
        f" 429; {len(at.errors) + len(above.errors)} other errors (goal 0 errors, ≤ limit a "
        f"window, no early 429) {mark(no_errors and at_ok and capped and reached)}"
    )


if __name__ == "__main__":
    main()
