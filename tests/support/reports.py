"""Tables that tests fill in while they run: printed at the end of the run, for RELIABILITY.md.

A test records what it tried and what happened (before it asserts, so a failure is reported too);
`pytest_terminal_summary` in conftest.py prints every table, and saves it as Markdown under
`RFT_REPORT_DIR` when that is set.
"""

from __future__ import annotations

import os
from pathlib import Path

REPORTS: dict[str, list[tuple[str, ...]]] = {}
HEADERS: dict[str, tuple[str, ...]] = {}


def record(report: str, headers: tuple[str, ...], *row: object) -> None:
    HEADERS[report] = headers
    REPORTS.setdefault(report, []).append(tuple(str(cell).replace("\n", " ") for cell in row))


def markdown(report: str) -> str:
    headers, rows = HEADERS[report], sorted(REPORTS[report])
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def save_all() -> list[Path]:
    directory = os.environ.get("RFT_REPORT_DIR")
    if not directory:
        return []
    Path(directory).mkdir(parents=True, exist_ok=True)
    saved = []
    for report in REPORTS:
        path = Path(directory) / f"{report}.md"
        path.write_text(markdown(report) + "\n")
        saved.append(path)
    return saved
