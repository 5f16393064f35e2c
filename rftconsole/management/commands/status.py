"""`manage.py status`: is Redis up, which workers consume each queue, and (under `manage.py up`)
is any supervised process failing?"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from rftconsole.system import SystemStatus, system_status


class Command(BaseCommand):
    help = (
        "Report Redis, the Celery workers of each queue and the processes `up` supervises; "
        "exit 1 unless all are up and none is failing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")
        parser.add_argument(
            "--wait", type=float, default=0.0, help="Keep asking for up to this many seconds."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        deadline = time.monotonic() + options["wait"]
        status = system_status()
        while not status.ready and time.monotonic() < deadline:
            time.sleep(1)
            status = system_status()
        if options["json"]:
            self.stdout.write(json.dumps(status.as_dict()))
        else:
            self.print_table(status)
        if not status.ready:
            raise SystemExit(1)

    def print_table(self, status: SystemStatus) -> None:
        self.stdout.write(f"redis    {'ok' if status.redis_ok else 'DOWN'}  {status.redis_detail}")
        for queue in status.queues:
            workers = status.workers.get(queue, [])
            listed = ", ".join(workers) if workers else "no worker"
            self.stdout.write(f"{queue:<8} {'ok' if workers else 'DOWN'}  {listed}")
        for child in status.supervised or []:
            state = "FAILING" if child.failing else child.state
            exits = f", last {child.last_exit}" if child.last_exit else ""
            exits += f" ({child.failing_detail})" if child.failing else ""
            self.stdout.write(
                f"{child.name:<14} {state}  pid {child.pid}, restarted {child.restarts}×{exits}"
            )
        if status.sandbox:
            state = "ok" if status.sandbox.ok else "REFUSED"
            self.stdout.write(f"sandbox  {state}  {status.sandbox.line()}")
