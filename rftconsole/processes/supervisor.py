"""Start, watch, restart and stop the console's child processes (Redis, Daphne, Celery workers).

Each child runs in its own session (process group) so that Ctrl-C reaches only the supervisor, which
then stops the children in reverse order; killing the group also takes a worker's pool processes
with it, so nothing is orphaned. If the supervisor itself is killed, the kernel sends each child
SIGTERM (PR_SET_PDEATHSIG).

A child that dies while the console runs is restarted after a backoff (1 s, 2 s, 4 s … capped at
30 s; reset once it has run healthy for a minute) and every exit is reported with its reason and
the tail of its log. A child that crashes CRASH_LIMIT times within CRASH_WINDOW_SECONDS is marked
failing: it is still retried, at the capped backoff (a cause such as a full disk or an unreachable
database may clear without anyone restarting the console), and the state file says so, for the
Overview page and `manage.py status`. The other children keep running throughout.
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

from rftconsole.processes.state import remove_state, write_state

PR_SET_PDEATHSIG = 1
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}

# The restart policy (README "Processes" cites these).
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
HEALTHY_AFTER_SECONDS = 60.0  # ready and up this long: backoff and crash count start over
CRASH_LIMIT = 5  # this many exits within CRASH_WINDOW_SECONDS mark a child failing
CRASH_WINDOW_SECONDS = 300.0
READY_CHECK_SECONDS = 1.0  # how often a restarted child's readiness is asked (a check may block)


@dataclass(frozen=True)
class RestartPolicy:
    first_backoff: float = FIRST_BACKOFF_SECONDS
    max_backoff: float = MAX_BACKOFF_SECONDS
    healthy_after: float = HEALTHY_AFTER_SECONDS
    crash_limit: int = CRASH_LIMIT
    crash_window: float = CRASH_WINDOW_SECONDS

    def backoff(self, consecutive_exits: int) -> float:
        """Seconds to wait before the restart that follows the n-th exit in a row."""
        return min(self.first_backoff * 2 ** max(consecutive_exits - 1, 0), self.max_backoff)


class ChildFailed(RuntimeError):
    """A child exited, or did not become ready in time; the message says which and why."""


def _die_with_parent() -> None:
    # The supervisor blocks Ctrl-C/SIGTERM while it spawns (see spawn); the child must not
    # inherit that mask, or it could never be stopped politely.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
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
    env: dict[str, str] = field(default_factory=dict)  # set over the supervisor's env (its devices)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # What the restart policy knows about this child (monotonic times).
    started_at: float = field(default=0.0, repr=False)
    log_start: int = field(default=0, repr=False)  # the log's size at the latest start
    ready: bool = False
    restarts: int = 0
    consecutive_exits: int = 0  # exits since it last ran healthy: sets the backoff
    exit_times: list[float] = field(default_factory=list, repr=False)  # within the crash window
    restart_at: float | None = None  # set while it waits out its backoff
    next_ready_check: float = field(default=0.0, repr=False)
    last_exit: str = ""
    last_exit_at: float | None = None  # wall-clock time, for people
    failing: bool = False
    failing_detail: str = ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def state(self) -> str:
        if self.restart_at is not None:
            return "restarting"
        return "running" if self.ready else "starting"

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def failure(self, what: str) -> ChildFailed:
        tail = log_tail(self.log_path)
        detail = f"\n--- last lines of {self.log_path} ---\n{tail}" if tail else ""
        return ChildFailed(f"{self.name} {what}{detail}")

    def as_state(self) -> dict[str, object]:
        return {
            "name": self.name,
            "describe": self.describe,
            "pid": self.process.pid if self.process else None,
            "state": self.state,
            "failing": self.failing,
            "restarts": self.restarts,
            "exits_in_window": len(self.exit_times),
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at,
            "failing_detail": self.failing_detail if self.failing else "",
            "log": str(self.log_path),
        }


class Supervisor:
    def __init__(
        self,
        env: dict[str, str],
        policy: RestartPolicy | None = None,
        state_path: Path | None = None,
    ) -> None:
        self.env = env
        self.policy = policy or RestartPolicy()
        self.state_path = state_path  # where keep_running reports each child's state (JSON)
        self.children: list[Child] = []

    def start(self, child: Child, ready_timeout: float) -> None:
        """First start: spawn and wait until it is ready (a failure here stops `up`)."""
        self.spawn(child)
        self._wait_ready(child, ready_timeout)
        child.ready = True

    def spawn(self, child: Child) -> None:
        """Start `child` without waiting for it to be ready (tick() notices when it is)."""
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        child.log_start = child.log_path.stat().st_size if child.log_path.exists() else 0
        # Ctrl-C while Popen runs would leave a child started but unrecorded (an orphan): hold
        # the stop signals until it is in self.children; they are delivered right after.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            with child.log_path.open("ab") as log:
                child.process = subprocess.Popen(
                    child.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**self.env, **child.env},
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                    pass_fds=child.pass_fds,
                )
            child.started_at, child.ready, child.restart_at = time.monotonic(), False, None
            child.next_ready_check = child.started_at + READY_CHECK_SECONDS
            if child not in self.children:
                self.children.append(child)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

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
        """Block until a child exits and return it (no restarts: for tests that want that)."""
        while True:
            for child in self.children:
                if child.exited() is not None:
                    return child
            time.sleep(poll_seconds)

    def keep_running(self, say: Callable[[str], None], poll_seconds: float = 0.5) -> None:
        """Restart children that die, for ever (until a signal handler raises)."""
        self.write_state()
        while True:
            self.tick(time.monotonic(), say)
            time.sleep(poll_seconds)

    def tick(self, now: float, say: Callable[[str], None]) -> None:
        """One look at every child: note exits, restart those whose backoff is over, notice
        readiness and health. Writes the state file when anything changed."""
        changed = False
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._restart(child, say)
                    changed = True
            elif (returncode := child.exited()) is not None:
                self._on_exit(child, returncode, now, say)
                changed = True
            elif not child.ready:
                changed |= self._check_ready(child, now, say)
            elif child.consecutive_exits and now - child.started_at >= self.policy.healthy_after:
                changed |= self._healthy_again(child, say)
        if changed:
            self.write_state()

    def _on_exit(self, child: Child, returncode: int, now: float, say: Callable[[str], None]):
        reason = describe_exit(returncode)
        self._kill_leftovers(child)
        policy = self.policy
        child.exit_times = [t for t in child.exit_times if now - t < policy.crash_window] + [now]
        child.consecutive_exits += 1
        child.failing = len(child.exit_times) >= policy.crash_limit
        delay = policy.max_backoff if child.failing else policy.backoff(child.consecutive_exits)
        child.ready, child.restart_at = False, now + delay
        child.last_exit, child.last_exit_at = reason, time.time()
        child.failing_detail = (
            f"{len(child.exit_times)} exits within {policy.crash_window:.0f} s; still retried "
            f"every {policy.max_backoff:.0f} s"
        )
        failing = f" It is FAILING: {child.failing_detail}." if child.failing else ""
        say(f"✗ {child.name} {reason}; restarting it in {delay:.0f} s.{failing}")
        tail = log_tail(child.log_path)
        if tail:
            say(f"--- last lines of {child.log_path} ---\n{tail}\n---")

    def _restart(self, child: Child, say: Callable[[str], None]) -> None:
        try:
            self.spawn(child)
        except OSError as error:  # e.g. the executable vanished: try again after the backoff
            self._on_exit(child, 127, time.monotonic(), say)
            say(f"  ({child.name} could not be started: {error})")
            return
        child.restarts += 1
        say(f"↻ {child.name} restarted (restart {child.restarts}) [pid {child.pid}]")

    def _check_ready(self, child: Child, now: float, say: Callable[[str], None]) -> bool:
        if now < child.next_ready_check:
            return False
        child.next_ready_check = now + READY_CHECK_SECONDS
        if not child.is_ready():
            return False
        child.ready = True
        say(f"✓ {child.name} is ready again, {time.monotonic() - child.started_at:.1f} s after "
            f"its restart [pid {child.pid}]")  # fmt: skip
        return True

    def _healthy_again(self, child: Child, say: Callable[[str], None]) -> bool:
        was_failing = child.failing
        child.consecutive_exits, child.exit_times, child.failing = 0, [], False
        if was_failing:
            say(f"✓ {child.name} has run {self.policy.healthy_after:.0f} s: no longer failing.")
        return was_failing

    def _kill_leftovers(self, child: Child) -> None:
        """A worker's leader can die and leave its pool processes in its group: end them, so a
        restarted worker does not share the queue with orphans of the old one."""
        self._signal_group(child, signal.SIGKILL)
        self._wait_group(child, 5.0)

    def write_state(self) -> None:
        if self.state_path is not None:
            write_state(self.state_path, [child.as_state() for child in self.children])

    def stop_all(self, grace_seconds: float = 10.0) -> None:
        """Stop children newest first: SIGTERM to each group, then SIGKILL what is left."""
        for child in reversed(self.children):
            if child.restart_at is not None:
                continue  # dead, its group already emptied (_on_exit): nothing to stop
            self._signal_group(child, signal.SIGTERM)
            self._wait_group(child, grace_seconds)
            self._signal_group(child, signal.SIGKILL)
            if child.process is not None:
                child.process.wait()
        if self.state_path is not None:
            remove_state(self.state_path)

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
