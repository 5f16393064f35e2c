"""Run user reward code in sandboxed worker processes: the one module that executes user code.

Each worker is a fresh interpreter that bubblewrap starts in an allowlist root (bwrap.py): nothing
but the interpreter, its libraries, the curated reward libraries and a private /tmp exists for it;
no network, uid 65534 in a user namespace, no capabilities. child.py applies CPU/memory/process/
file limits and serves batches. The parent keeps a small warm pool, enforces a wall-clock timeout
per batch, reads and checks every reply within fixed bounds (replies.py), and replaces any worker
that crashes, times out, misbehaves or has served its quota. If the kernel refuses the namespaces,
user code does not run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import marshal
import os
import select
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from rewards.sandbox.bwrap import IsolationUnavailable, SandboxError, command
from rewards.sandbox.replies import MAX_REPLY_BYTES, MalformedReply, check_reply

__all__ = ["IsolationUnavailable", "Limits", "SandboxError", "SandboxPool", "default_pool"]

CHILD_SOURCE = (Path(__file__).with_name("child.py")).read_text()
SPLIT_ABOVE_SECONDS = 0.005  # batches slower than this are worth spreading over two workers
START_TIMEOUT = 30.0  # seconds a new worker may take to say it is ready
SPIN_SECONDS = 0.002  # poll this long for a reply before sleeping (see _read_line)
READ_BYTES = 1 << 16  # per read of a reply: a larger buffer costs an mmap per call


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 300  # over a worker's life: it retires at half of this, or `max_batches`
    memory_bytes: int = 512 * 1024**2
    file_bytes: int = 8 * 1024**2
    tmp_bytes: int = 64 * 1024**2  # the private /tmp, all files together
    batch_timeout: float = 30.0
    max_batches: int = 10_000


SIGNALS = {
    signal.SIGKILL: "killed (out of memory, or a limit was hit)",
    signal.SIGXCPU: "exceeded its CPU time limit",
    signal.SIGXFSZ: "wrote a file larger than allowed",
    signal.SIGSEGV: "crashed (segmentation fault)",
    signal.SIGABRT: "aborted",
}


_spawners: dict[int, ThreadPoolExecutor] = {}  # by pid: a forked process needs its own thread


def _spawn(argv: list[str], fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
    """Start bwrap from one thread that lives as long as this process. `--die-with-parent` ties
    the sandbox to the *thread* that started it: one started from a short-lived thread (a
    request's, a background spare's) would be killed when that thread ends."""
    spawner = _spawners.get(os.getpid())
    if spawner is None:
        spawner = _spawners[os.getpid()] = ThreadPoolExecutor(1, "sandbox-spawner")
    start = functools.partial(
        subprocess.Popen,
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={"LANG": "C.UTF-8"},
        cwd="/",
        pass_fds=fds,
        start_new_session=True,
    )
    return spawner.submit(start).result()


class SandboxWorker:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.batches = 0
        self.sent_at = 0.0
        self.cpu_used = 0.0  # CPU seconds the worker has used, as it reports
        self.code_hash: str | None = None  # the only reward code this worker will ever run
        reply_read, reply_write = os.pipe()
        config = json.dumps({"reply_fd": reply_write, "limits": asdict(limits)})
        try:
            argv, fds = command(CHILD_SOURCE, config, limits.tmp_bytes)
            self.process = _spawn(argv, (reply_write, *fds))
        except BaseException as error:
            os.close(reply_read)
            if isinstance(error, OSError | subprocess.SubprocessError):
                raise IsolationUnavailable(f"bwrap could not be started ({error})") from None
            raise
        finally:
            os.close(reply_write)
        self.replies = reply_read
        self.buffer = b""
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        try:
            ready = json.loads(self._read_line(time.monotonic() + START_TIMEOUT))
        except (SandboxError, ValueError):
            ready = {}
        if ready.get("ready") is not True:
            reason = self._startup_failure()
            self.close()
            raise IsolationUnavailable(reason)

    def _startup_failure(self) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        assert self.process.stderr is not None
        if self.process.poll() is None:
            return "it did not answer"
        text = self.process.stderr.read(4000).decode(errors="replace").strip()
        return text.replace("\n", " ") or self._death_reason()

    def send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            # marshal: builtins only (rows are JSON), and fast; it flows to the sandbox, never back
            payload = marshal.dumps({**request, "seq": self.batches})
        except ValueError as error:
            raise SandboxError(f"this batch cannot be sent to the sandbox ({error})") from None
        data = len(payload).to_bytes(8, "big") + payload
        try:
            while data:  # straight to the pipe: no buffered writer in between
                data = data[os.write(self.process.stdin.fileno(), data) :]
        except (BrokenPipeError, OSError):
            raise SandboxError(self._death_reason()) from None
        self.batches += 1
        self.sent_at = time.monotonic()

    def receive(self, count: int) -> dict[str, Any]:
        """The reply to the last batch of `count` rows, checked (replies.py)."""
        line = self._read_line(self.sent_at + self.limits.batch_timeout)
        try:
            reply = json.loads(line)
            if not isinstance(reply, dict) or reply.get("seq") != self.batches - 1:
                raise MalformedReply("the reply is not the answer to this batch")
            self.cpu_used = float(reply.pop("cpu", 0.0))
            return check_reply(reply, count)
        except (ValueError, TypeError) as error:  # MalformedReply is a ValueError
            self.kill()
            raise SandboxError(f"the reward process sent a malformed reply ({error})") from None

    def _read_line(self, deadline: float) -> bytes:
        spin_until = time.monotonic() + SPIN_SECONDS
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_REPLY_BYTES:
                self.kill()
                raise SandboxError(
                    f"the reward process sent a reply larger than {MAX_REPLY_BYTES // 1024**2} MB"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise SandboxError(f"timed out after {self.limits.batch_timeout:g} s (wall clock)")
            # Poll briefly before sleeping: a fast reward answers within a few hundred
            # microseconds, and waking a sleeping process costs more than that. Each poll
            # yields the core, in case the worker was woken on this one.
            wait = 0 if time.monotonic() < spin_until else remaining
            if not select.select([self.replies], [], [], wait)[0]:
                if wait == 0:
                    os.sched_yield()
                continue
            chunk = os.read(self.replies, READ_BYTES)
            if not chunk:
                raise SandboxError(self._death_reason())
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        if len(line) > MAX_REPLY_BYTES:
            self.kill()
            raise SandboxError(
                f"the reward process sent a reply larger than {MAX_REPLY_BYTES // 1024**2} MB"
            )
        return line

    def _death_reason(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return "the reward process stopped answering"
        signum = code - 128 if 128 < code < 192 else -code  # bwrap reports signal N as 128 + N
        if signum > 0:
            return f"the reward process {SIGNALS.get(signum, f'was killed by signal {signum}')}"
        return f"the reward process exited with code {code}"

    @property
    def usable(self) -> bool:
        fresh = self.batches < self.limits.max_batches
        rested = self.cpu_used < self.limits.cpu_seconds / 2  # never near the CPU rlimit
        return fresh and rested and self.process.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        if self.replies >= 0:
            os.close(self.replies)
        self.replies = -1
        for stream in (self.process.stdin, self.process.stderr):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]

    def close(self) -> None:
        if self.replies >= 0:
            self.kill()


@functools.lru_cache(maxsize=256)
def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class SandboxPool:
    """A few warm workers; a batch takes one, and it returns to the pool if still healthy.

    A worker serves one reward code only (its first): code could leave hooks behind in its
    process, so another reward's rows never reach it. A retired or broken worker is replaced in
    the background by a fresh spare, so a batch rarely waits for a process to start.
    """

    def __init__(self, limits: Limits, size: int = 2) -> None:
        self.limits = limits
        self.idle: list[SandboxWorker] = []
        self.lock = threading.Lock()
        self.size = size
        self.last_seconds: dict[str, float] = {}  # by code hash: how long its last batch took
        self.calls: dict[str, int] = {}  # by code hash: run_batches calls (a timing-free count)

    def calls_of(self, code: str) -> int:
        """How many times `code` was sent to the pool (each call may use several workers)."""
        return self.calls.get(_hash(code), 0)

    def worth_splitting(self, code: str) -> bool:
        """Split a batch over workers only for code that is slow: for a fast reward the second
        worker's extra round trip costs more than its half of the work saves."""
        code_hash = _hash(code)
        return self.size > 1 and self.last_seconds.get(code_hash, 0.0) > SPLIT_ABOVE_SECONDS

    def run(self, code: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Score `items` ({id, output_text, row, prompt}): the simple form, for tools and tests.

        Returns {"results": [{id, score, components} | {id, error}], "stdout"} or, when the
        batch failed as a whole, {"error", "stdout"}; raises SandboxError when the worker died.
        """
        batch = {
            "rows": [{"row": item["row"], "prompt": item.get("prompt", [])} for item in items],
            "ids": [item["id"] for item in items],
            "texts": [item["output_text"] for item in items],
            "row_of": list(range(len(items))),
        }
        reply = self.run_batches(code, [batch])[0]
        if isinstance(reply, SandboxError):
            raise reply
        return _with_results(reply, batch["ids"])

    def run_batches(
        self, code: str, batches: list[dict[str, Any]]
    ) -> list[dict[str, Any] | SandboxError]:
        """Score batches at once, one warm worker each, in parallel. A batch is a dict of
        `rows` ([{row, prompt}], each distinct row once) and the columns `ids`, `texts` and
        `row_of` (each item's row, by position).

        Returns each batch's reply — {"scores", "errors", "components", "stdout"}, by position,
        or {"error", "stdout"} — or the SandboxError that ended its worker.
        """
        code_hash = _hash(code)
        self.calls[code_hash] = self.calls.get(code_hash, 0) + 1
        workers = self._take(len(batches), code_hash)
        sent: list[SandboxError | None] = []
        for worker, batch in zip(workers, batches, strict=True):
            try:
                first = worker.batches == 0  # the code travels once; the worker keeps it
                worker.send({"code": code if first else None, "code_hash": code_hash, **batch})
                sent.append(None)
            except SandboxError as error:
                worker.close()
                self._replace()
                sent.append(error)
        pairs = zip(workers, sent, strict=True)
        counts = [len(batch["ids"]) for batch in batches]
        replies = [
            failed or self._receive(worker, count)
            for (worker, failed), count in zip(pairs, counts, strict=True)
        ]
        # The reward's own time, as the workers measured it (not process starts or transport).
        work = [r.pop("s", 0.0) for r in replies if isinstance(r, dict)]
        self.last_seconds[code_hash] = float(sum(work))
        return replies

    def _take(self, count: int, code_hash: str) -> list[SandboxWorker]:
        """Idle workers bound to this code, then fresh spares, then new processes."""
        with self.lock:
            mine = [w for w in self.idle if w.code_hash == code_hash]
            spares = [w for w in self.idle if w.code_hash is None]
            workers = (mine + spares)[:count]
            self.idle = [w for w in self.idle if w not in workers]
        try:
            while len(workers) < count:
                workers.append(SandboxWorker(self.limits))
        except SandboxError:
            for worker in workers:
                self._keep(worker)
            raise
        for worker in workers:
            worker.code_hash = code_hash
        return workers

    def _keep(self, worker: SandboxWorker) -> None:
        """Back to the pool; when full, the longest-idle worker of other code makes room."""
        with self.lock:
            if len(self.idle) >= self.size:
                others = [w for w in self.idle if w.code_hash != worker.code_hash]
                if not others:
                    worker.close()
                    return
                self.idle.remove(others[0])
                others[0].close()
            self.idle.append(worker)

    def _receive(self, worker: SandboxWorker, count: int) -> dict[str, Any] | SandboxError:
        try:
            reply = worker.receive(count)
        except SandboxError as error:
            worker.close()
            self._replace()
            return error
        if worker.usable:
            self._keep(worker)
        else:
            worker.close()
            self._replace()
        return reply

    def _replace(self) -> None:
        if len(self.idle) < self.size:
            threading.Thread(target=self._start_one, name="sandbox-spare", daemon=True).start()

    def _start_one(self) -> None:
        with contextlib.suppress(SandboxError):
            self._keep(SandboxWorker(self.limits))


def _with_results(reply: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """A positional reply as per-item results: {id, score, components} or {id, error}."""
    if "scores" not in reply:
        return reply  # the batch failed as a whole: {"error", "stdout"}
    errors, components = reply.pop("errors"), reply.pop("components")
    results: list[dict[str, Any]] = []
    for position, (item_id, score) in enumerate(zip(ids, reply.pop("scores"), strict=True)):
        key = str(position)
        if key in errors:
            results.append({"id": item_id, "error": errors[key]})
        else:
            results.append({"id": item_id, "score": score, "components": components.get(key, [])})
    reply["results"] = results
    return reply


_pool: SandboxPool | None = None


def default_pool() -> SandboxPool:
    global _pool
    if _pool is None:
        _pool = SandboxPool(Limits(batch_timeout=settings.RFT_REWARD_TIMEOUT))
    return _pool
