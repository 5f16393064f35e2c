"""Can user code run here? One answer for `manage.py up`, the Overview page and the editor."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from rewards.sandbox.bwrap import IsolationUnavailable, available_reward_libs, find_bwrap
from rewards.sandbox.runner import Limits, SandboxWorker

MAX_AGE = 300.0  # seconds an answer is reused: starting a sandbox to ask costs ~0.1 s


@dataclass(frozen=True)
class SandboxStatus:
    ok: bool
    detail: str  # which bubblewrap and libraries, or why user code cannot run (for any user)
    fix: str = ""
    path: str = ""  # where that bwrap is: for the operator's command line, not the web page

    def line(self) -> str:
        if self.ok:
            return f"reward code runs in {self.detail} [{self.path}]"
        return f"reward code will NOT run: {self.detail}. Fix: {self.fix}"


_lock = threading.Lock()
_last: tuple[float, SandboxStatus] | None = None


def check_sandbox() -> SandboxStatus:
    """Start one real sandbox (the same way a reward batch does) and say how it went."""
    try:
        SandboxWorker(Limits()).close()
        bwrap = find_bwrap()
    except IsolationUnavailable as error:
        return SandboxStatus(False, error.reason, error.fix)
    libs = ", ".join(available_reward_libs()) or "none (standard library only)"
    return SandboxStatus(True, f"{bwrap.describe()}; reward libraries: {libs}", path=bwrap.path)


def sandbox_status() -> SandboxStatus:
    global _last
    with _lock:
        if _last is None or time.monotonic() - _last[0] > MAX_AGE:
            _last = (time.monotonic(), check_sandbox())
        return _last[1]
