"""Run user reward code in sandboxed worker processes: the one module that executes user code.

Each worker is a fresh interpreter (`python -I -S`, no site-packages, empty environment) started in
new mount, network and pid namespaces (plus a user namespace when not root). Before it runs, the
data dir, the source tree and the user's caches are covered by empty tmpfs mounts and /tmp is a
private tmpfs, so there is nothing to read and no network to reach. child.py then drops to
`nobody` (when root), applies CPU/memory/process/file limits and serves batches. The parent keeps
a small warm pool, enforces a wall-clock timeout per batch and replaces any worker that crashes,
times out or has served its quota. If the kernel refuses the namespaces, user code does not run.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
CHILD_SOURCE = (Path(__file__).with_name("child.py")).read_text()


SPIN_SECONDS = 0.0005
SPLIT_ABOVE_SECONDS = 0.005  # batches slower than this are worth spreading over two workers


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 300  # over a worker's life: it retires at half of this, or `max_batches`
    memory_bytes: int = 512 * 1024**2
    file_bytes: int = 8 * 1024**2
    batch_timeout: float = 30.0
    max_batches: int = 10_000


class SandboxError(RuntimeError):
    """The batch could not be scored; the message says why (timeout, crash, limit)."""


class IsolationUnavailable(SandboxError):
    pass


def _interpreter() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def hidden_paths() -> list[str]:
    """Directories the user code must not see, except any that holds the interpreter itself."""
    home = Path.home()
    candidates = [
        settings.DATA_DIR, settings.BASE_DIR, settings.STARTER_CACHE,
        home / ".cache", home / ".ssh", home / ".config", home / ".aws", home / ".huggingface",
    ]  # fmt: skip
    keep = Path(sys.base_prefix).resolve()
    paths: list[Path] = []
    for path in sorted({Path(c).resolve() for c in candidates}, key=lambda p: len(p.parts)):
        covered = any(path.is_relative_to(hidden) for hidden in paths)
        if path.is_dir() and not keep.is_relative_to(path) and not covered:
            paths.append(path)
    return [str(path) for path in paths]


def _enter_namespaces(hide: list[str]) -> None:
    """preexec_fn: runs in the forked child, before exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid, root = os.getuid(), os.getgid(), os.getuid() == 0
    os.setsid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | (0 if root else CLONE_NEWUSER)
    if libc.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), "unshare failed: Linux namespaces are unavailable")
    if not root:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "could not make mounts private")
    for path in hide:
        if (
            libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=4k,mode=0")
            != 0
        ):
            raise OSError(ctypes.get_errno(), f"could not hide {path}")
    for scratch in ("/tmp", "/var/tmp", "/dev/shm"):  # noqa: S108 - covered by private tmpfs
        if os.path.isdir(scratch):
            libc.mount(
                b"tmpfs", scratch.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64m,mode=1777"
            )


class SandboxWorker:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.batches = 0
        self.sent_at = 0.0
        self.cpu_used = 0.0  # CPU seconds the worker has used, as it reports
        self.code_hash: str | None = None  # the only reward code this worker will ever run
        reply_read, reply_write = os.pipe()
        config = {"reply_fd": reply_write, "limits": asdict(limits), "new_proc": True}
        hide = hidden_paths()
        try:
            self.process = subprocess.Popen(
                [_interpreter(), "-I", "-S", "-c", CHILD_SOURCE],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env={"RFT_SANDBOX": json.dumps(config), "LANG": "C.UTF-8"},
                cwd="/",
                pass_fds=(reply_write,),
                preexec_fn=lambda: _enter_namespaces(hide),
            )
        except (OSError, subprocess.SubprocessError) as error:
            raise IsolationUnavailable(
                f"The reward sandbox could not start ({error}). It needs Linux user, mount, "
                "network and pid namespaces (unshare); user code is never run without them."
            ) from None
        finally:
            os.close(reply_write)
        self.replies = reply_read
        self.buffer = b""

    def send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            payload = pickle.dumps(request, protocol=5)  # trusted → sandbox only; replies are JSON
            self.process.stdin.write(len(payload).to_bytes(8, "big") + payload)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise SandboxError(self._death_reason()) from None
        self.batches += 1
        self.sent_at = time.monotonic()

    def receive(self) -> dict[str, Any]:
        reply = json.loads(self._read_line(self.sent_at + self.limits.batch_timeout))
        self.cpu_used = float(reply.pop("cpu", 0.0))
        return reply

    def _read_line(self, deadline: float) -> bytes:
        spin_until = time.monotonic() + SPIN_SECONDS
        while b"\n" not in self.buffer:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                self.kill()
                raise SandboxError(f"timed out after {self.limits.batch_timeout:g} s (wall clock)")
            # Poll briefly before sleeping: a fast reward answers within microseconds, and
            # waking a sleeping process costs more than that on small virtual machines.
            wait = 0 if now < spin_until else remaining
            ready, _, _ = select.select([self.replies], [], [], wait)
            if ready:
                chunk = os.read(self.replies, 1 << 20)
                if not chunk:
                    raise SandboxError(self._death_reason())
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def _death_reason(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return "the reward process stopped answering"
        if 128 < code < 256:  # the namespace's init reports a child killed by signal N as 256 - N
            code -= 256
        detail = {
            -signal.SIGKILL: "killed (out of memory, or a limit was hit)",
            -signal.SIGXCPU: "exceeded its CPU time limit",
            -signal.SIGXFSZ: "wrote a file larger than allowed",
            -signal.SIGSEGV: "crashed (segmentation fault)",
        }.get(code, f"exited with code {code}")
        return f"the reward process {detail}"

    @property
    def usable(self) -> bool:
        fresh = self.batches < self.limits.max_batches
        rested = self.cpu_used < self.limits.cpu_seconds / 2  # never near the CPU rlimit
        return fresh and rested and self.process.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        os.close(self.replies)
        self.replies = -1

    def close(self) -> None:
        if self.replies >= 0:
            self.kill()


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

    def worth_splitting(self, code: str) -> bool:
        """Split a batch over workers only for code that is slow: for a fast reward the second
        worker's extra round trip costs more than its half of the work saves."""
        code_hash = hashlib.sha256(code.encode()).hexdigest()
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
        code_hash = hashlib.sha256(code.encode()).hexdigest()
        workers = self._take(len(batches), code_hash)
        sent: list[SandboxError | None] = []
        for worker, batch in zip(workers, batches, strict=True):
            try:
                worker.send({"code": code, "code_hash": code_hash, **batch})
                sent.append(None)
            except SandboxError as error:
                worker.close()
                self._replace()
                sent.append(error)
        pairs = zip(workers, sent, strict=True)
        replies = [failed or self._receive(worker) for worker, failed in pairs]
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

    def _receive(self, worker: SandboxWorker) -> dict[str, Any] | SandboxError:
        try:
            reply = worker.receive()
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
