"""What the console's moving parts are doing right now: Redis, and the workers of each queue."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import redis
from django.conf import settings

from rewards.sandbox.status import SandboxStatus, sandbox_status
from rftconsole.celery import DEFAULT_QUEUE, GPU_QUEUE, app
from rftconsole.models import WorkerReport

QUEUES = (GPU_QUEUE, DEFAULT_QUEUE)


@dataclass
class SystemStatus:
    redis_ok: bool
    redis_detail: str
    workers: dict[str, list[str]] = field(default_factory=dict)  # queue -> worker hostnames
    reports: list[WorkerReport] = field(default_factory=list)
    sandbox: SandboxStatus | None = None  # can this process run reward code (see rewards.sandbox)

    @property
    def ready(self) -> bool:
        return self.redis_ok and all(self.workers.get(queue) for queue in QUEUES)

    def as_dict(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "redis": {"ok": self.redis_ok, "detail": self.redis_detail},
            "queues": {queue: self.workers.get(queue, []) for queue in QUEUES},
            "sandbox": self.sandbox
            and {
                k: v
                for k, v in asdict(self.sandbox).items()
                if k != "path"  # not for users
            },
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


def system_status(timeout: float = 1.0) -> SystemStatus:
    redis_ok, detail = check_redis()
    workers = workers_by_queue(timeout) if redis_ok else {}
    reports = list(WorkerReport.objects.all())
    return SystemStatus(redis_ok, detail, workers, reports, sandbox_status())
