"""A console process for the hostile suite: runs as root, or as an ordinary account, like a real
install does, and answers the test over pipes (one JSON line per request).

    python -m tests.support.sandbox_driver '{"account": "rft-sandbox-test" | null, "data_dir": "..."}'

As an ordinary account it starts as root only to set up what a user's own install has: its
interpreter, venv and checkout readable (a private mount namespace shows just those paths where a
parent directory is private, e.g. a 0700 /root), then it drops to the account for good before
Django or the sandbox is touched. It owns everything a probe aims at: its data dir (outside
/tmp), a secret in its environment, a TCP and a UDP server on 127.0.0.1, a unix socket server
in a directory of its own and an abstract unix socket.

Requests: {"op": "sandbox", "code"} runs the code through the real SandboxPool;
{"op": "control", "code", "timeout"} runs the same code the way a console without a sandbox
would (in a process of the console's user, with its environment and its modules importable).
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import secrets
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[2]
CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE = 0x20000, 0x1000, 0x4000, 0x40000
PR_SET_DUMPABLE = 4
ROW = {"messages": [{"role": "user", "content": "2 + 5?"}], "ground_truth": "7"}

# The control: the reward called in a plain process of the console's user (what running it
# in-process would do), reporting on fd `report_fd`; `reply_fd` stands in for the protocol pipe.
HARNESS = r"""
import json, os, sys
config = json.loads(sys.argv[-1])
namespace = {"__name__": "reward"}
row = config["row"]
messages = [*row["messages"], {"role": "assistant", "content": "#### 7"}]
try:
    exec(compile(sys.stdin.read(), "reward.py", "exec"), namespace)
    if "lambda_handler" in namespace:
        event = [{"id": "0", "messages": messages, "metadata": row, "reference_answer": None}]
        out = namespace["lambda_handler"](event, None)
    else:
        out = namespace["grade"]({"output_text": "#### 7", "messages": messages}, row)
    report = {"outcome": "returned", "size": len(json.dumps(out, default=str))}
except BaseException as error:
    report = {"outcome": "raised", "detail": f"{type(error).__name__}: {str(error)[:300]}",
              "size": len(str(error))}
os.write(config["report_fd"], json.dumps(report).encode())
"""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _reachable_by(path: Path, uid: int, gid: int) -> bool:
    info = path.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & 0o100)
    if info.st_gid == gid:
        return bool(info.st_mode & 0o010)
    return bool(info.st_mode & 0o001)


def show_only(paths: list[Path], uid: int, gid: int) -> None:
    """In a private mount namespace, cover each parent directory the account cannot enter with
    an empty tmpfs that holds only the way to `paths` (bound back in place)."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNS) != 0 or libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None):
        raise OSError(ctypes.get_errno(), "private mount namespace")
    keep: dict[Path, set[str]] = {}
    for path in paths:
        for parent in reversed(path.parents):
            if parent != Path("/") and not _reachable_by(parent, uid, gid):
                keep.setdefault(parent, set()).add(path.relative_to(parent).parts[0])
    for parent, names in sorted(keep.items(), key=lambda item: len(item[0].parts)):
        fds = {name: os.open(parent / name, os.O_PATH) for name in names}
        if libc.mount(b"tmpfs", str(parent).encode(), b"tmpfs", 0, b"mode=0755") != 0:
            raise OSError(ctypes.get_errno(), f"cover {parent}")
        for name, fd in fds.items():
            (parent / name).mkdir()
            source = f"/proc/self/fd/{fd}".encode()
            if libc.mount(source, str(parent / name).encode(), None, MS_BIND | MS_REC, None):
                raise OSError(ctypes.get_errno(), f"bind {parent / name}")
            os.close(fd)


def show_install(uid: int, gid: int) -> None:
    """What a user's own install has readable: its checkout, venv and interpreter."""
    interpreter = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    show_only([BASE_DIR, Path(sys.prefix), Path(sys.base_prefix), interpreter], uid, gid)


def become(account: str) -> None:
    entry = pwd.getpwnam(account)
    show_install(entry.pw_uid, entry.pw_gid)
    os.setgroups([])
    os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
    os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
    _libc().prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # as if it had started as the account
    os.environ.update(HOME=entry.pw_dir, USER=account, LOGNAME=account)
    os.chdir(entry.pw_dir)


def serve_forever(server: socket.socket, udp: bool = False) -> None:
    def loop() -> None:
        while True:
            if udp:
                data, peer = server.recvfrom(1024)
                server.sendto(data, peer)
            else:
                connection, _ = server.accept()
                connection.sendall(b"hello from the console's side\n")
                connection.close()

    threading.Thread(target=loop, daemon=True).start()


def listeners(sockets_dir: Path) -> dict[str, Any]:
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    sockets_dir.mkdir(parents=True, exist_ok=True)
    path = sockets_dir / "console.sock"
    path.unlink(missing_ok=True)
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(path))
    unix.listen()
    abstract_name = f"rft-hostile-{os.getpid()}"
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + abstract_name)
    abstract.listen()
    for server in (tcp, unix, abstract):
        serve_forever(server)
    serve_forever(udp, udp=True)
    return {
        "tcp": tcp.getsockname()[1],
        "udp": udp.getsockname()[1],
        "unix": str(path),
        "abstract": abstract_name,
    }


def control(code: str, timeout: float) -> dict[str, Any]:
    reply_read, reply_write = os.pipe()
    report_read, report_write = os.pipe()
    config = {"reply_fd": reply_write, "report_fd": report_write, "row": ROW}
    env = {**os.environ, "PYTHONPATH": str(BASE_DIR)}
    process = subprocess.Popen(
        [sys.executable, "-c", HARNESS, json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(reply_write, report_write),
        env=env,
        start_new_session=True,
    )
    os.close(reply_write)
    os.close(report_write)
    drained = [0]

    def drain() -> None:
        while chunk := os.read(reply_read, 1 << 20):
            drained[0] += len(chunk)

    threading.Thread(target=drain, daemon=True).start()
    assert process.stdin is not None
    process.stdin.write(code.encode())
    process.stdin.close()
    try:
        code_ = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()
        return {"outcome": "running", "pipe_bytes": drained[0]}
    with os.fdopen(report_read, "rb") as report:
        text = report.read()
    result = json.loads(text) if text else {"outcome": "exited", "detail": str(code_)}
    if code_ < 0:
        result = {"outcome": "signal", "detail": str(-code_)}
    return {**result, "pipe_bytes": drained[0]}


def decoys(home: Path, data_dir: Path) -> dict[str, Path]:
    """What a probe aims at, as the console's own user has it: made (again) before each case."""
    files = {
        "dataset": data_dir / "datasets" / "1-alice-train.jsonl",
        "dotfile": home / ".rft-hostile-bashrc",
        "shadow": home / ".config" / "rft-hostile" / "shadow",
        "ssh key": home / ".ssh" / "rft-hostile-id",
        "git hook": home / "rft-hostile-checkout" / ".git" / "hooks" / "pre-commit.sample",
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("written by the console's own user\n")
    files["shadow"].chmod(0o600)
    for planted in (data_dir / "pwned", files["git hook"].with_name("pre-commit")):
        planted.unlink(missing_ok=True)
    return files


def fingerprint(files: dict[str, Path], data_dir: Path) -> dict[str, str]:
    """What is in each decoy (or that it is gone), and which files the data dir holds."""
    found = {name: path.read_text() if path.exists() else "(gone)" for name, path in files.items()}
    found["data dir"] = " ".join(sorted(p.name for p in data_dir.iterdir()))
    return found


def sandbox(pool: Any, code: str) -> dict[str, Any]:
    from rewards.sandbox.runner import SandboxError

    items = [{"id": "0", "output_text": "#### 7", "prompt": ROW["messages"], "row": ROW}]
    try:
        reply = pool.run(code, items)
    except SandboxError as error:
        return {"message": f"stopped by the sandbox: {error}", "score": None}
    result = reply.get("results", [{}])[0]
    message = reply.get("error") or result.get("error") or ""
    return {"message": message, "score": result.get("score"), "stdout": reply.get("stdout", "")}


def main() -> None:
    options = json.loads(sys.argv[1])
    if options.get("account"):
        become(options["account"])
    data_dir = Path(options["data_dir"])
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        RFT_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="tests.settings",
    )
    os.environ.setdefault("RFT_PROBE_SECRET", secrets.token_hex(8))  # the test sets it at start
    import django

    django.setup()
    from rewards.sandbox.runner import Limits, SandboxPool

    pool = SandboxPool(Limits(batch_timeout=3, memory_bytes=256 * 1024**2))
    hello = {
        "pid": os.getpid(),
        "uid": os.getuid(),
        "home": os.environ.get("HOME", str(Path.home())),
        "data_dir": str(data_dir),
        "venv": sys.prefix,
        "secret": os.environ["RFT_PROBE_SECRET"],
        **listeners(data_dir.parent / "sockets"),
    }
    files = decoys(Path(hello["home"]), data_dir)
    hello["decoys"] = {name: str(path) for name, path in files.items()}
    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "sandbox":
            answer = sandbox(pool, request["code"])
        elif request["op"] == "control":
            answer = control(request["code"], request["timeout"])
        else:  # "reset": the decoys as they were, and what they hold
            answer = fingerprint(decoys(Path(hello["home"]), data_dir), data_dir)
        if request["op"] != "reset":
            answer["fingerprint"] = fingerprint(files, data_dir)
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
