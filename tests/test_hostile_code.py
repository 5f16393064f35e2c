"""Hostile reward code: every attack is contained, with a clear error, and nothing else is harmed.

One parametrized test runs each case in the real sandbox pool. For each it records what happened
(tests/reports.py prints the table at the end of the run; RELIABILITY.md shows the latest).
After each case the pool still scores a good reward, the files it aimed at are intact, and this
process (standing in for the trainer that called the sandbox) is alive.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from django.conf import settings

from rewards.sandbox.runner import Limits, SandboxError, SandboxPool
from tests.reports import record

pytestmark = pytest.mark.reliability

REPORT = ("hostile-reward-code", ("Case", "Contained", "What happened"))
ROW = {"messages": [{"role": "user", "content": "2 + 5?"}], "ground_truth": "7"}
GOOD = "def grade(sample, item):\n    return 1.0 if item['ground_truth'] in sample['output_text'] else 0.0\n"

BASE_DIR = Path(settings.BASE_DIR)
SECRET_FILE = str(Path(settings.DATA_DIR) / "secret_key")
DB_FILE = str(settings.DATABASES["default"]["NAME"])
SETTINGS_FILE = str(BASE_DIR / "rftconsole" / "settings.py")
MANAGE_PY = str(BASE_DIR / "manage.py")
PWNED = [BASE_DIR / "pwned.txt", Path("/etc/pwned")]

# case: (the body of grade(), a piece of the error the user must see)
HOSTILE = {
    "infinite loop": ("while True:\n    pass", "timed out after 3 s"),
    "ignore SIGTERM, then loop": (
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass",
        "timed out after 3 s",
    ),
    "memory bomb": ("x = bytearray(4 * 1024**3)", "MemoryError"),
    "slow memory growth": ("x = []\nwhile True:\n    x.append(' ' * 10**6)", "MemoryError"),
    "deep recursion": ("def f(n):\n    return f(n + 1)\nf(0)", "RecursionError"),
    "fork bomb": ("while True:\n    os.fork()", "BlockingIOError"),
    "spawn a shell (posix_spawn)": (
        "os.posix_spawn('/bin/sh', ['sh', '-c', 'id'], {})",
        "BlockingIOError",
    ),
    "start threads": (
        "import _thread\nfor _ in range(50):\n    _thread.start_new_thread(lambda: None, ())",
        "can't start new thread",
    ),
    "import subprocess": ("import importlib\nimportlib.import_module('subprocess')", "subprocess"),
    "replace itself with a shell (execv)": (
        "os.execv('/bin/sh', ['sh', '-c', 'echo pwned'])",
        "the reward process exited",
    ),
    "crash the interpreter (segfault)": (
        "import ctypes\nctypes.string_at(0)",
        "crashed (segmentation fault)",
    ),
    "close every file descriptor": ("os.closerange(0, 1024)", "the reward process exited"),
    "read the secret key": (f"open({SECRET_FILE!r}).read()", "Error"),
    "read the database": (f"open({DB_FILE!r}, 'rb').read()", "Error"),
    "read the settings": (f"open({SETTINGS_FILE!r}).read()", "Error"),
    "list the data dir": (f"os.listdir({str(settings.DATA_DIR)!r})", "FileNotFoundError"),
    "read another process's environment": ("open('/proc/1/environ', 'rb').read()", "Error"),
    "read the environment": (
        "assert sorted(os.environ) == ['LANG'], sorted(os.environ)\nraise RuntimeError('env is empty')",
        "env is empty",
    ),
    "read ssh keys": ("os.listdir(os.path.expanduser('~/.ssh'))", "FileNotFoundError"),
    "open a network socket": (
        "socket.create_connection(('127.0.0.1', 6379), timeout=2)",
        "Network is unreachable",
    ),
    "resolve a host name": ("socket.getaddrinfo('pypi.org', 443)", "gaierror"),
    "kill the parent and every pid": (
        "os.kill(os.getppid(), signal.SIGKILL)\nfor pid in range(2, 3000):\n    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\nraise RuntimeError('nothing to kill')",
        "nothing to kill",
    ),
    "kill -1 (everything it may signal)": ("os.kill(-1, signal.SIGKILL)", "ProcessLookupError"),
    "become root": ("os.setuid(0)", "PermissionError"),
    "write outside its temp dir": (f"open({str(PWNED[0])!r}, 'w').write('x')", "Error"),
    "write to /etc": (f"open({str(PWNED[1])!r}, 'w').write('x')", "Error"),
    "delete the source tree": (f"os.remove({MANAGE_PY!r})", "Error"),
    "make the source writable": (f"os.chmod({MANAGE_PY!r}, 0o777)", "Error"),
    "fill the disk": (
        "f = open('/tmp/big', 'wb')\nfor _ in range(20000):\n    f.write(b'x' * 1024 * 1024)",
        "File too large",
    ),
    "exit the process": ("os._exit(3)", "exited with code 3"),
}


@pytest.fixture(scope="module")
def pool() -> SandboxPool:
    return SandboxPool(Limits(batch_timeout=3, memory_bytes=256 * 1024**2))


def grade_body(body: str) -> str:
    lines = "\n".join(f"    {line}" for line in body.strip().splitlines())
    return f"import os, socket, signal\n\ndef grade(sample, item):\n{lines}\n    return 1.0\n"


def run(pool: SandboxPool, code: str) -> dict:
    return pool.run(
        code, [{"id": "0", "output_text": "#### 7", "prompt": ROW["messages"], "row": ROW}]
    )


def fingerprint(path: str) -> tuple[str, int]:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest(), Path(path).stat().st_mode


def test_there_are_at_least_15_hostile_cases() -> None:
    assert len(HOSTILE) >= 15


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_code_is_contained_with_a_clear_error(pool: SandboxPool, case: str) -> None:
    body, expected = HOSTILE[case]
    guarded = {path: fingerprint(path) for path in (MANAGE_PY, SECRET_FILE, SETTINGS_FILE)}
    try:
        reply = run(pool, grade_body(body))
        message = reply.get("error") or reply["results"][0].get("error", "")
    except SandboxError as error:
        message = f"stopped by the sandbox: {error}"
    harmed = [str(p) for p in PWNED if p.exists()]
    harmed += [path for path, before in guarded.items() if fingerprint(path) != before]
    still_works = run(pool, GOOD)["results"][0].get("score") == 1.0
    contained = expected in message and not harmed and still_works and os.getppid() > 1
    what = message.strip().splitlines()[-1][:160] if message.strip() else "(no error)"
    record(
        *REPORT, case, "yes" if contained else "NO", what + (f"; harmed {harmed}" if harmed else "")
    )
    assert expected in message, message
    assert harmed == []
    assert still_works  # the pool still scores a good reward afterwards
    assert os.getppid() > 1  # and this process is alive and unharmed
