"""`manage.py up` starts the whole embedded stack and Ctrl-C stops it with nothing left behind.
(Its children killed while a job runs, each restarted: tests/test_up_faults.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import (
    alive,
    embedded_env,
    free_port,
    http_status,
    manage,
    process_tree,
    wait_until,
)

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("starter_artifacts")]


def test_up_serves_the_console_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port, env = free_port(), embedded_env(tmp_path / "var")
    log = (tmp_path / "up.log").open("w+")
    up = subprocess.Popen(manage("up", "--port", str(port)), env=env, stdout=log, stderr=log)
    try:
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/login/") == 200, 180, "login page")
        up_log = tmp_path / "up.log"
        wait_until(lambda: "RFT Console is ready" in up_log.read_text(), 180, "all processes")
        status = subprocess.run(
            manage("status", "--json", "--wait", "120"), env=env, capture_output=True, text=True
        )
        assert status.returncode == 0, status.stdout + status.stderr
        queues = json.loads(status.stdout)["queues"]
        assert queues["gpu"] == [queues["gpu"][0]] and queues["gpu"][0].startswith("gpu@")
        assert queues["default"][0].startswith("default@")
        tree = process_tree(up.pid)
        assert len(tree) >= 6  # up, redis, web-1…N, two workers, beat (+ worker pool processes)
    finally:
        up.send_signal(signal.SIGINT)
        returncode = up.wait(timeout=60)
    log.seek(0)
    output = log.read()
    assert returncode == 0, output
    assert "RFT Console is ready" in output and "All processes stopped." in output
    assert alive(tree[1:]) == []
    assert not (tmp_path / "var" / "run" / "redis.sock").exists()


def test_up_prints_the_generated_admin_password_once(tmp_path: Path) -> None:
    env = embedded_env(tmp_path / "var")
    del env["RFT_ADMIN_PASSWORD"]
    port = free_port()
    up = subprocess.Popen(
        manage("up", "--port", str(port)), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    lines: list[str] = []
    try:
        assert up.stdout is not None
        for raw in up.stdout:
            lines.append(raw.decode())
            if "RFT Console is ready" in lines[-1] or up.poll() is not None:
                break
    finally:
        up.send_signal(signal.SIGINT)
        up.communicate(timeout=60)
    created = [line for line in lines if "created user 'admin' with password:" in line]
    assert len(created) == 1, "".join(lines)
    password = created[0].rsplit(":", 1)[1].strip()
    assert len(password) >= 12


def test_up_refuses_a_port_that_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            manage("up", "--port", str(port)),
            env=embedded_env(tmp_path / "var"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr
