"""Start, watch and stop the console's child processes (Redis, Daphne, Celery workers).

Each child runs in its own session (process group) so that Ctrl-C reaches only the supervisor, which
then stops the children in reverse order; killing the group also takes a worker's pool processes
with it, so nothing is orphaned. If the supervisor itself is killed, the kernel sends each child
SIGTERM (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1


class ChildFailed(RuntimeError):
    """A child exited, or did not become ready in time; the message says which and why."""


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    is_ready: Callable[[], bool]
    describe: str = ""
    pass_fds: tuple[int, ...] = ()  # descriptors handed to every start (e.g. a listening socket)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def failure(self, what: str) -> ChildFailed:
        tail = log_tail(self.log_path)
        detail = f"\n--- last lines of {self.log_path} ---\n{tail}" if tail else ""
        return ChildFailed(f"{self.name} {what}{detail}")


class Supervisor:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: list[Child] = []

    def start(self, child: Child, ready_timeout: float) -> None:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        with child.log_path.open("ab") as log:
            child.process = subprocess.Popen(
                child.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                pass_fds=child.pass_fds,
            )
        self.children.append(child)
        self._wait_ready(child, ready_timeout)

    def _wait_ready(self, child: Child, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            returncode = child.exited()
            if returncode is not None:
                raise child.failure(f"{describe_exit(returncode)} while starting")
            if child.is_ready():
                return
            time.sleep(0.2)
        raise child.failure(f"was not ready after {timeout:.0f} s")

    def watch(self, poll_seconds: float = 0.5) -> Child:
        """Block until a child exits and return it."""
        while True:
            for child in self.children:
                if child.exited() is not None:
                    return child
            time.sleep(poll_seconds)

    def stop_all(self, grace_seconds: float = 10.0) -> None:
        """Stop children newest first: SIGTERM to each group, then SIGKILL what is left."""
        for child in reversed(self.children):
            self._signal_group(child, signal.SIGTERM)
            self._wait_group(child, grace_seconds)
            self._signal_group(child, signal.SIGKILL)
            if child.process is not None:
                child.process.wait()

    @staticmethod
    def _signal_group(child: Child, sig: signal.Signals) -> None:
        if child.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)

    @staticmethod
    def _wait_group(child: Child, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process is not None:
                child.process.poll()  # reap the leader so the group can empty
            try:
                os.killpg(child.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
