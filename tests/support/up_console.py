"""Looking into a console that `manage.py up` runs in a test: its job rows, its children, its
queue and its HTTP API, each through the same door a user or an operator would use."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.request
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery

# A small job made inside the console (its own data dir and database), as the admin who owns the
# starter model and demo tasks; a checkpoint every 6 steps, 24 steps (long enough for 5 kills). Prints the job's id and an API key.
START_JOB = """
from jobs.actions import create_job
from jobs.models import Dataset, ModelEntry
from rewards.models import RewardFunction
from rftconsole.cli import first_admin
from rftconsole.services import create_api_key
admin = first_admin()
job = create_job(
    admin, "kill-test", ModelEntry.objects.get(owner=admin, name="starter"),
    Dataset.objects.get(owner=admin, name="arithmetic-train"),
    RewardFunction.objects.get(owner=admin, name="arithmetic").latest_version(),
    Dataset.objects.get(owner=admin, name="arithmetic-validation"),
    given={"maxSteps": 24, "batchSize": 32, "trainingSamplePerPrompt": 8, "evalInterval": 6,
           "inferenceMaxTokens": 32},
    profile="cpu",
)
print(job.pk, create_api_key(admin, "fault-test")[1])
"""


@dataclass(frozen=True)
class JobRow:
    status: str
    attempts: int
    steps: list[int]  # train steps with a metric point, in order
    checkpoints: list[int]


def job_row(database: Path, job_id: int) -> JobRow:
    """The job as `up`'s SQLite database has it now (read-only: the console keeps writing)."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
        status, attempts = db.execute(
            "SELECT status, attempts FROM jobs_job WHERE id = ?", (job_id,)
        ).fetchone()
        steps = db.execute(
            "SELECT step FROM jobs_metricpoint WHERE job_id = ? AND kind = 'train' ORDER BY step",
            (job_id,),
        ).fetchall()
        checkpoints = db.execute(
            "SELECT step FROM jobs_checkpoint WHERE job_id = ? ORDER BY step", (job_id,)
        ).fetchall()
    return JobRow(status, attempts, [s for (s,) in steps], [s for (s,) in checkpoints])


def stored_datasets(database: Path, prefix: str) -> list[tuple[str, int, str]]:
    """(name, row count, file) of every dataset whose name starts with `prefix`."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
        rows = db.execute(
            "SELECT name, row_count, path FROM jobs_dataset WHERE name LIKE ? ORDER BY name",
            (f"{prefix}%",),
        ).fetchall()
    return [(name, count, path) for name, count, path in rows]


def all_dataset_files(database: Path) -> set[str]:
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
        return {path for (path,) in db.execute("SELECT path FROM jobs_dataset")}


def child_pid(data_dir: Path, name: str) -> int:
    """The pid `up` recorded for its child `name` in its state file (as `manage.py status` reads)."""
    state = json.loads((data_dir / "run" / "supervisor.json").read_text())
    return next(int(c["pid"]) for c in state["children"] if c["name"] == name)


def console_celery(data_dir: Path) -> Celery:
    """A Celery client of the console's embedded Redis: sends tasks as the web process does."""
    url = f"redis+socket://{data_dir / 'run' / 'redis.sock'}"
    return Celery("fault-test", broker=url, backend=url)


def post_dataset(base_url: str, api_key: str, name: str, content: bytes) -> int | None:
    """POST a JSONL file to /api/datasets/; the HTTP status, or None when the connection broke."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="rows.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    )
    body = head.encode() + content + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(  # noqa: S310 - our own loopback URL
        f"{base_url}/api/datasets/",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {api_key}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    return status_of(request, timeout=60)


def status_of(request: urllib.request.Request, timeout: float) -> int | None:
    """The HTTP status the console answers `request` with; None when the connection fails."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


@dataclass
class Uploader:
    """Uploads datasets one after another until stopped, as a client that retries would: a
    broken connection is retried; a retry refused as a taken name means the first try stored it."""

    base_url: str
    api_key: str
    content: bytes
    stop: threading.Event = field(default_factory=threading.Event)
    answers: dict[str, list[int | None]] = field(default_factory=dict)

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            name, number = f"upload-{number:03d}", number + 1
            tries = self.answers.setdefault(name, [])
            while not tries or tries[-1] is None or tries[-1] >= 500:
                tries.append(post_dataset(self.base_url, self.api_key, name, self.content))
                if len(tries) >= 20:
                    break
            time.sleep(0.05)  # a steady client, not a flood that starves the trainer

    def broken(self) -> int:
        """Tries that got no answer or a server error (each then retried)."""
        return sum(1 for tries in self.answers.values() for t in tries if t is None or t >= 500)
