"""`manage.py status`: is Redis up, and which workers consume each queue?"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from rftconsole.system import QUEUES, SystemStatus, system_status


class Command(BaseCommand):
    help = "Report Redis and the Celery workers of each queue; exit 1 unless all are up."

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
        for queue in QUEUES:
            workers = status.workers.get(queue, [])
            listed = ", ".join(workers) if workers else "no worker"
            self.stdout.write(f"{queue:<8} {'ok' if workers else 'DOWN'}  {listed}")
        if status.sandbox:
            state = "ok" if status.sandbox.ok else "REFUSED"
            self.stdout.write(f"sandbox  {state}  {status.sandbox.line()}")
