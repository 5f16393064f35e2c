"""`manage.py up`: set up the data dir and run the whole console in the foreground.

Steps: embedded Redis (unless REDIS_URL is set) → migrate → admin account → starter model →
Daphne, the `gpu` worker(s) (`--gpu-workers N`: each with its share of the GPUs, or of the CPU
cores) and the `default` worker, each checked end to end before the next. Then it
watches them: one that dies is named with its reason and restarted with backoff while the rest
keep running (rftconsole/processes/supervisor.py has the policy); Ctrl-C stops everything.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

from celery.utils.nodenames import host_format, worker_direct
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.starter.register import STARTER_MODEL, starter_registered
from rewards.sandbox.status import check_sandbox
from rftconsole.capacity import visible_devices
from rftconsole.celery import DEFAULT_QUEUE, GPU_QUEUE
from rftconsole.cli import first_admin
from rftconsole.env import env_int
from rftconsole.processes.embedded_redis import (
    prepare_socket,
    redis_ready,
    redis_server_argv,
    switch_to_append_only,
)
from rftconsole.processes.gpu_workers import GpuWorkerPlan, plan_gpu_workers, unused_devices
from rftconsole.processes.state import state_path
from rftconsole.processes.supervisor import Child, ChildFailed, Supervisor
from rftconsole.security.accounts import ensure_admin
from rftconsole.system import redis_client
from rftconsole.tasks import report_worker


class Shutdown(Exception):
    """Raised by the SIGINT/SIGTERM handler to leave the watch loop."""


def _raise_shutdown(signum: int, _frame: object) -> None:
    raise Shutdown(signal.Signals(signum).name)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError:
            return False
    return True


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
            return response.status == 200
    except OSError:
        return False


def worker_answers(queue: str, node: str | None = None) -> bool:
    """End-to-end check: a task sent to `queue` runs on its worker and returns through Redis. With
    `node` (a gpu worker's node name), through that worker's own queue: another gpu worker's
    answer must not pass for this one's."""
    destination = worker_direct(host_format(node)) if node else queue
    try:
        report_worker.apply_async(args=[queue], queue=destination).get(timeout=3)
    except Exception:  # noqa: BLE001 - not answering yet; the supervisor retries until its timeout
        return False
    return True


# Defaults for every child process, unless the environment sets them. OMP_WAIT_POLICY=PASSIVE:
# torch's OpenMP threads sleep while they wait instead of spinning. The console runs the web
# process (chat), the gpu worker (training) and the default worker on the same cores; spinning
# threads of one starve the others (a GRPO-sized generation of the starter model took 53 s instead
# of 0.95 s beside one busy process; see BENCHMARKS.md). Same thread count, same results.
CHILD_ENV_DEFAULTS = {"PYTHONUNBUFFERED": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def celery_worker_argv(queue: str, concurrency: int, node: str | None = None) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "rftconsole", "worker",
        "-Q", queue, "-n", node or f"{queue}@%h",
        "--concurrency", str(concurrency), "--prefetch-multiplier", "1",
        "--without-mingle", "--without-gossip", "--loglevel", "INFO",
    ]  # fmt: skip


def listening_socket(host: str, port: int) -> socket.socket:
    """The one socket every web process accepts on: `up` binds it and hands it to each Daphne
    (`--fd`), so N processes share one port and one accept queue."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host.strip("[]"), port))
    except OSError as error:
        listener.close()
        raise CommandError(f"Port {port} on {host} is already in use: {error}.") from None
    listener.listen(1024)  # Daphne's own default backlog is 50; N processes drain one queue
    listener.set_inheritable(True)
    return listener


def said_since_start(child: Child, text: bytes) -> bool:
    """Whether `child` logged `text` since its latest start: a restarted process must not be taken
    for ready on the line its previous start left in the log."""
    try:
        with child.log_path.open("rb") as log:
            log.seek(child.log_start)
            return text in log.read()
    except OSError:
        return False


def web_ready(base_url: str, child: Child) -> bool:
    """Ready when the login page answers and this process said it listens (the page alone would
    pass as soon as any web process accepts)."""
    listening = said_since_start(child, b"Listening on TCP address")
    return listening and http_ok(f"{base_url}/login/")


def web_argv(fd: int) -> list[str]:
    """Daphne serving the console on the inherited listening socket `fd`."""
    return [
        sys.executable, "-m", "rftconsole.processes.web", "--fd", str(fd),
        "rftconsole.asgi:application",
    ]  # fmt: skip


def web_children(fd: int, count: int, base_url: str, logs: Path) -> list[Child]:
    """`count` Daphne processes, web-1..web-N, all serving the listening socket `fd`."""
    children = []
    for number in range(1, count + 1):
        child = Child(
            f"web-{number}",
            web_argv(fd),
            logs / f"web-{number}.log",
            lambda: False,
            describe=f"{base_url}/ (HTTP + websockets), process {number} of {count}",
            pass_fds=(fd,),
        )
        child.is_ready = functools.partial(web_ready, base_url, child)
        children.append(child)
    return children


def gpu_worker(plan: GpuWorkerPlan, logs: Path) -> Child:
    """A `gpu` worker, checked through its own queue (several may run)."""
    return Child(
        plan.name,
        celery_worker_argv(GPU_QUEUE, 1, plan.node),
        logs / plan.log,
        functools.partial(worker_answers, GPU_QUEUE, plan.node),
        describe=plan.describe,
        env=plan.env,
    )


class Command(BaseCommand):
    help = "Set up the data dir and run the console (Redis, Daphne, Celery workers) until Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("RFT_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=env_int("RFT_PORT", 8000, minimum=1))
        parser.add_argument(
            "--ready-timeout",
            type=float,
            default=180.0,
            help="Seconds each process may take to start.",
        )
        parser.add_argument(
            "--gpu-workers",
            type=int,
            default=1,
            help="gpu-queue workers to start (1-64), each with its contiguous share of the GPUs "
            "(CUDA_VISIBLE_DEVICES), or without GPUs of the CPU cores (OMP_NUM_THREADS).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        self.gpu_workers = self.plan_gpu_workers(options["gpu_workers"])
        if not port_is_free(host, port):
            raise CommandError(
                f"Port {port} on {host} is already in use: choose another with --port."
            )
        self.line(f"RFT Console — data dir {settings.DATA_DIR}")
        supervisor = Supervisor(self.child_env(), state_path=state_path(settings.RUN_DIR))
        signal.signal(signal.SIGINT, _raise_shutdown)
        signal.signal(signal.SIGTERM, _raise_shutdown)
        exit_code = 0
        try:
            self.start_all(supervisor, host, port, options["ready_timeout"])
            self.line(f"RFT Console is ready at http://{host}:{port}/  (Ctrl-C stops everything)")
            supervisor.keep_running(self.line)  # restarts children that die; ends by a signal
        except Shutdown as reason:
            self.line(f"Received {reason}: stopping.")
        except (ChildFailed, RuntimeError) as failure:
            self.line(self.style.ERROR(f"✗ {failure}"))
            exit_code = 1
        finally:
            signal.signal(
                signal.SIGINT, signal.SIG_IGN
            )  # a second Ctrl-C must not interrupt cleanup
            supervisor.stop_all()
            self.line("All processes stopped.")
        if exit_code:
            raise SystemExit(exit_code)

    def start_all(self, supervisor: Supervisor, host: str, port: int, timeout: float) -> None:
        logs = settings.LOG_DIR
        if settings.EMBEDDED_REDIS:
            prepare_socket(settings.EMBEDDED_REDIS_SOCKET)
            redis = Child(
                "redis",
                redis_server_argv(settings.EMBEDDED_REDIS_SOCKET, settings.DATA_DIR),
                logs / "redis.log",
                redis_ready,
                describe=f"embedded, unix socket {settings.EMBEDDED_REDIS_SOCKET}",
            )
            self.start_child(supervisor, redis, timeout)
            if switch_to_append_only(redis.argv, redis_client()):
                self.line("✓ redis        its snapshot is now kept in an append-only file too")
        else:
            self.line(f"✓ redis        external ({settings.REDIS_URL.split('@')[-1]})")
        self.prepare_database()
        self.check_sandbox()
        self.start_web_and_workers(supervisor, host, port, logs, timeout)

    def prepare_database(self) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.line("✓ database     migrated")
        username, password = ensure_admin()
        if password:
            self.line(f"✓ admin        created user '{username}' with password: {password}")
            self.line("               (shown once; set RFT_ADMIN_PASSWORD to choose it)")
        else:
            self.line(f"✓ admin        '{username}'")
        self.prepare_starter()

    def check_sandbox(self) -> None:
        """One line: which sandbox runs reward code, or why none can and how to fix it. The
        console starts either way: built-in graders and judges need no sandbox."""
        status = check_sandbox()
        mark = "✓" if status.ok else self.style.ERROR("✗")
        self.line(f"{mark} sandbox      {status.line()}")

    def prepare_starter(self) -> None:
        admin = first_admin()
        if not starter_registered(admin):
            self.line("  starter      setting up the starter model and demo tasks (first run)…")
            call_command("bootstrap_starter", stdout=self.stdout)
        self.line(
            f"✓ starter      model '{STARTER_MODEL}', demo datasets and rewards (owned by admin)"
        )

    def start_web_and_workers(
        self, supervisor: Supervisor, host: str, port: int, logs: Path, timeout: float
    ) -> None:
        base_url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        self.listener = listening_socket(host, port)  # kept open: a restarted web process reuses it
        count = settings.RFT_WEB_PROCESSES
        for child in web_children(self.listener.fileno(), count, base_url, logs):
            self.start_child(supervisor, child, timeout)
        for plan in self.gpu_workers:
            self.start_child(supervisor, gpu_worker(plan, logs), timeout)
        concurrency = env_int("RFT_DEFAULT_WORKER_CONCURRENCY", 2, minimum=1)
        worker = Child(
            f"{DEFAULT_QUEUE}-worker",
            celery_worker_argv(DEFAULT_QUEUE, concurrency),
            logs / f"worker-{DEFAULT_QUEUE}.log",
            lambda: worker_answers(DEFAULT_QUEUE),
            describe=f"queue '{DEFAULT_QUEUE}', concurrency {concurrency}",
        )
        self.start_child(supervisor, worker, timeout)
        schedule = settings.RUN_DIR / "celerybeat-schedule"
        schedule.unlink(missing_ok=True)
        beat = Child(
            "beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "rftconsole",
                "beat",
                "-s",
                str(schedule),
                "-l",
                "INFO",
            ],
            logs / "beat.log",
            lambda: False,
            describe="periodic tasks (re-queues lost jobs, fails stuck deploys, sweeps uploads)",
        )
        beat.is_ready = functools.partial(said_since_start, beat, b"beat: Starting")
        self.start_child(supervisor, beat, timeout)

    def plan_gpu_workers(self, count: int) -> list[GpuWorkerPlan]:
        """The gpu workers to start, refused before anything starts when `count` does not fit."""
        devices = visible_devices()
        try:
            plans = plan_gpu_workers(count, devices, os.cpu_count() or 1, os.environ)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if unused := unused_devices(count, devices):
            self.line(
                f"  gpu workers  {len(devices)} GPUs for {count} workers: {','.join(unused)} unused"
            )
        return plans

    def start_child(self, supervisor: Supervisor, child: Child, timeout: float) -> None:
        supervisor.start(child, timeout)
        self.line(f"✓ {child.name:<12} {child.describe}  [pid {child.pid}, log {child.log_path}]")

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["RFT_DATA_DIR"] = str(settings.DATA_DIR)  # children must agree on the data dir
        env["DJANGO_SETTINGS_MODULE"] = "rftconsole.settings"
        return {**CHILD_ENV_DEFAULTS, **env}

    def line(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()
