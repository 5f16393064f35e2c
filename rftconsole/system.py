"""What the console's moving parts are doing right now: Redis, the workers of each queue, and
(under `manage.py up`) each supervised process as its supervisor last reported it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from django.conf import settings

from rewards.sandbox.status import SandboxStatus, sandbox_status
from rftconsole.celery import DEFAULT_QUEUE, GPU_QUEUE, app
from rftconsole.models import WorkerReport
from rftconsole.processes.state import SupervisedChild, read_state, state_path

QUEUES = (GPU_QUEUE, DEFAULT_QUEUE)


@dataclass
class SystemStatus:
    redis_ok: bool
    redis_detail: str
    workers: dict[str, list[str]] = field(default_factory=dict)  # queue -> worker hostnames
    reports: list[WorkerReport] = field(default_factory=list)
    sandbox: SandboxStatus | None = None  # can this process run reward code (see rewards.sandbox)
    # The processes `manage.py up` supervises; None when no supervisor runs (e.g. a deployment
    # that starts Daphne and the workers itself).
    supervised: list[SupervisedChild] | None = None

    @property
    def queues(self) -> tuple[str, ...]:
        """`gpu` and `default`, then any `gpu.N` a worker consumes (jobs of N processes)."""
        sized = [queue for queue in self.workers if queue.startswith(f"{GPU_QUEUE}.")]
        return QUEUES + tuple(sorted(sized, key=lambda queue: int(queue.rsplit(".", 1)[1])))

    @property
    def failing(self) -> list[SupervisedChild]:
        return [child for child in self.supervised or [] if child.failing]

    @property
    def ready(self) -> bool:
        queues_served = all(self.workers.get(queue) for queue in QUEUES)
        return self.redis_ok and queues_served and not self.failing

    def as_dict(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "redis": {"ok": self.redis_ok, "detail": self.redis_detail},
            "queues": {queue: self.workers.get(queue, []) for queue in self.queues},
            "sandbox": self.sandbox
            and {
                k: v
                for k, v in asdict(self.sandbox).items()
                if k != "path"  # not for users
            },
            "processes": None
            if self.supervised is None
            else [child.as_dict() for child in self.supervised],
        }


def redis_client() -> redis.Redis:
    if settings.EMBEDDED_REDIS:
        return redis.Redis(unix_socket_path=str(settings.EMBEDDED_REDIS_SOCKET), socket_timeout=2)
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)


def check_redis() -> tuple[bool, str]:
    where = "embedded" if settings.EMBEDDED_REDIS else "external"
    try:
        redis_client().ping()
    except redis.RedisError as error:
        return False, f"{where} Redis unreachable: {error}"
    return True, f"{where} Redis answers"


def workers_by_queue(timeout: float = 1.0) -> dict[str, list[str]]:
    """Ask every live worker which queues it consumes (one broadcast, `timeout` seconds)."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    by_queue: dict[str, list[str]] = {}
    for hostname, queues in sorted(replies.items()):
        for queue in queues:
            by_queue.setdefault(queue["name"], []).append(hostname)
    return by_queue


@dataclass
class WorkInHand:
    """What the workers hold right now: the queues with a worker that has nothing to do (no task
    running, none reserved), and the tasks running or reserved anywhere."""

    idle_queues: set[str]
    held: list[dict[str, Any]]

    def holds(self, task_name: str, first_argument: object) -> bool:
        return any(
            task.get("name") == task_name and list(task.get("args") or [])[:1] == [first_argument]
            for task in self.held
        )


def work_in_hand(timeout: float = 1.0) -> WorkInHand:
    """Ask every live worker its queues, running and reserved tasks (3 broadcasts)."""
    inspect = app.control.inspect(timeout=timeout)
    consumed = inspect.active_queues() or {}
    active, reserved = inspect.active() or {}, inspect.reserved() or {}
    idle: set[str] = set()
    for hostname, queues in consumed.items():
        if hostname in active and not active[hostname] and not reserved.get(hostname):
            idle.update(queue["name"] for queue in queues)
    held = [task for tasks in (*active.values(), *reserved.values()) for task in tasks]
    return WorkInHand(idle, held)


def system_status(timeout: float = 1.0) -> SystemStatus:
    redis_ok, detail = check_redis()
    workers = workers_by_queue(timeout) if redis_ok else {}
    reports = list(WorkerReport.objects.all())
    supervised = read_state(state_path(settings.RUN_DIR))
    return SystemStatus(redis_ok, detail, workers, reports, sandbox_status(), supervised)
