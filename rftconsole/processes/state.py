"""The supervisor's state file: what `manage.py up` knows about each child, for other processes.

`up` rewrites it (atomically) whenever a child exits, restarts, becomes ready or is marked failing,
and removes it when it stops. The Overview page and `manage.py status` read it; a file left by a
supervisor that no longer runs (killed with SIGKILL) is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

FILE_NAME = "supervisor.json"


def state_path(run_dir: Path) -> Path:
    """Where the supervisor of the console with this run dir keeps its state file."""
    return run_dir / FILE_NAME


@dataclass(frozen=True)
class SupervisedChild:
    name: str
    state: str  # running, starting or restarting (waiting out its backoff)
    failing: bool
    restarts: int
    exits_in_window: int
    pid: int | None
    last_exit: str
    last_exit_at: datetime | None
    describe: str = ""
    failing_detail: str = ""  # e.g. "5 exits within 300 s; still retried every 30 s"

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state,
            "failing": self.failing,
            "restarts": self.restarts,
            "exits_in_window": self.exits_in_window,
            "pid": self.pid,
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at.isoformat() if self.last_exit_at else None,
            "failing_detail": self.failing_detail,
        }


def write_state(path: Path, children: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps({"supervisor_pid": os.getpid(), "children": children}))
    os.replace(temporary, path)  # readers see the old file or the new one, never half of one


def remove_state(path: Path) -> None:
    path.unlink(missing_ok=True)


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user
    return True


def read_state(path: Path) -> list[SupervisedChild] | None:
    """The children of the running supervisor; None when no supervisor runs (or none wrote)."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not _alive(state.get("supervisor_pid")):
        return None
    children = []
    for raw in state.get("children", []):
        exited_at = raw.get("last_exit_at")
        children.append(
            SupervisedChild(
                name=str(raw.get("name", "?")),
                state=str(raw.get("state", "")),
                failing=bool(raw.get("failing")),
                restarts=int(raw.get("restarts") or 0),
                exits_in_window=int(raw.get("exits_in_window") or 0),
                pid=raw.get("pid"),
                last_exit=str(raw.get("last_exit") or ""),
                last_exit_at=datetime.fromtimestamp(exited_at, UTC) if exited_at else None,
                describe=str(raw.get("describe") or ""),
                failing_detail=str(raw.get("failing_detail") or ""),
            )
        )
    return children
