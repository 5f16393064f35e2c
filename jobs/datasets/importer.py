"""Import training data: stream the file once, convert each row to chat format, collect per-line
problems, and store the result only when there are none.

The converted rows are written to a temporary file next to their final place while reading, so a
large file is never held in memory; an invalid file leaves neither a dataset nor a file behind.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from jobs.datasets.bedrock_logs import is_log_record, line_rows, read_record
from jobs.datasets.formats import SHAPE_NAMES, RowError, to_chat
from jobs.datasets.storage import TextSink, open_for_write
from jobs.datasets.streams import StreamError, file_lines
from jobs.models import Dataset
from rftconsole.ownership import owned
from rftconsole.parsers import JSONInputError, strict_loads
from rftconsole.paths import data_dir, safe_child

LISTED_PROBLEMS = 100


class DatasetError(ValueError):
    """The data cannot become a dataset; `report` holds the per-line problems, if any."""

    def __init__(self, message: str, report: ImportReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ImportReport:
    rows: int = 0
    converted: Counter[str] = field(default_factory=Counter)  # shape → rows converted from it
    problems: list[tuple[int, str]] = field(default_factory=list)  # the first 100 (line, what)
    problem_count: int = 0
    warnings: list[str] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def problem(self, line: int, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < LISTED_PROBLEMS:
            self.problems.append((line, message))

    def converted_text(self) -> str:
        return ", ".join(f"{n} from {SHAPE_NAMES[s]}" for s, n in sorted(self.converted.items()))

    def summary(self) -> str:
        """The import command's last line, e.g. `valid: 299 rows (0 converted), 0 problems`."""
        converted = sum(self.converted.values())
        state = "valid" if self.ok else "invalid"
        return f"{state}: {self.rows} rows ({converted} converted), {self.problem_count} problems"

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.ok,
            "rows": self.rows,
            "converted": dict(self.converted),
            "problems": [{"line": line, "problem": text} for line, text in self.problems],
            "problem_count": self.problem_count,
            "unlisted_problems": self.problem_count - len(self.problems),
            "warnings": self.warnings,
            "fields": sorted(self.fields),
        }


def convert_lines(lines: Iterable[bytes], sink: TextSink | None) -> ImportReport:
    """Check and convert every line; write converted rows to `sink` (when given)."""
    report, ids, limit = ImportReport(), set(), settings.RFT_DATASET_MAX_ROWS
    for number, raw in enumerate(lines, start=1):
        try:
            entries = line_rows(parse_line(raw, number))  # a CloudWatch Logs envelope gives many
        except RowError as error:
            report.problem(number, str(error))
            continue
        for entry in entries:
            try:
                converted, shape = _convert(entry.row())
                _check_id(converted, ids)
            except RowError as error:
                report.problem(number, entry.problem(error))
                continue
            report.rows += 1
            if report.rows > limit:
                report.problem(
                    number, f"more than {limit:,} rows (RFT_DATASET_MAX_ROWS); split the file"
                )
                break
            if shape != "chat":
                report.converted[shape] += 1
            report.fields.update(converted)
            if sink is not None and report.problem_count == 0:
                sink.write(json.dumps(converted, ensure_ascii=False) + "\n")
        if report.rows > limit:
            break
    _finish(report)
    return report


def _convert(row: Any) -> tuple[dict[str, Any], str]:
    if is_log_record(row):  # a Bedrock invocation log line: its prompt, response and metadata
        return read_record(row).as_row(), "bedrock_log"
    return to_chat(row)


def parse_line(raw: bytes, number: int) -> Any:
    """One line as JSON (None when blank); raises RowError saying what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RowError(
            f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1})"
        ) from None
    if number == 1:
        text = text.removeprefix("\ufeff")  # a byte-order mark some editors add
    # Without its line break: JSON that ends too early would otherwise be reported on the
    # break's "line 2, column 1" instead of where this line stops.
    text = text.rstrip("\r\n")
    if not text.strip():
        return None
    try:
        return strict_loads(text)  # NaN, 1e400 or deep nesting would break the rows API later
    except JSONInputError as error:
        raise RowError(str(error)) from None
    except json.JSONDecodeError as error:
        raise RowError(f"invalid JSON: {_where(error, text)}") from None


def _where(error: json.JSONDecodeError, text: str) -> str:
    """The decoder's complaint at its character position in the line (1-based)."""
    at = "" if error.msg.endswith(" at") else " at"  # "Unterminated string starting at"
    return f"{error.msg}{at} column {error.pos + 1} (the line has {len(text)} characters)"


def _check_id(row: dict[str, Any], seen: set[str]) -> None:
    if "id" not in row:
        return
    key = json.dumps(row["id"])
    if key in seen:
        raise RowError(f"duplicate id {row['id']!r}")
    seen.add(key)


def _finish(report: ImportReport) -> None:
    if report.rows == 0 and report.problem_count == 0:
        report.problem(0, "the file has no rows")
    minimum = settings.RFT_DATASET_MIN_ROWS
    if report.ok and report.rows < minimum:
        report.warnings.append(
            f"{report.rows} rows: Amazon Bedrock asks for at least {minimum}; "
            "fine for a try, few for real training."
        )
    if report.converted:
        report.warnings.append(f"Converted {report.converted_text()} to chat format.")


def dataset_storage(owner: AbstractBaseUser) -> Path:
    directory = safe_child(data_dir(), "datasets", str(owner.pk))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


INCOMING_PREFIX = ".incoming-"  # an upload being written; renamed to <token>.jsonl when valid


def sweep_incoming(older_than_seconds: float = 3600.0) -> list[Path]:
    """Remove uploads left half-written by a web process that was killed mid-import (an import
    that runs removes its own on any error). An import in progress writes to its file all the
    time, so only files untouched for `older_than_seconds` go."""
    root = data_dir() / "datasets"
    cutoff = time.time() - older_than_seconds
    removed = []
    for path in root.glob(f"*/{INCOMING_PREFIX}*.jsonl") if root.is_dir() else []:
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # its import finished or failed meanwhile
            continue
    return removed


def check_size(size: int) -> None:
    limit = settings.RFT_DATASET_MAX_BYTES
    if size > limit:
        raise DatasetError(
            f"The file is {size / 1024**2:,.1f} MB; the limit is {limit / 1024**2:,.0f} MB "
            "(RFT_DATASET_MAX_BYTES). Split it, or raise the limit."
        )


def check_name(owner: AbstractBaseUser, name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise DatasetError("Give the dataset a name of 1 to 100 characters.")
    if owned(Dataset, owner).filter(name=name).exists():
        raise DatasetError(f"You already have a dataset named {name!r}.")
    return name


def import_lines(
    owner: AbstractBaseUser,
    name: str,
    lines: Iterable[bytes],
    *,
    description: str = "",
    source: str = Dataset.Source.UPLOAD,
    dry_run: bool = False,
) -> tuple[Dataset | None, ImportReport]:
    """Validate and convert; store the dataset only when every row is valid (and not a dry run)."""
    name = check_name(owner, name)
    if dry_run:
        try:
            return None, convert_lines(lines, None)
        except StreamError as error:
            raise DatasetError(str(error)) from None
    # A server-made file name: the dataset's name is only shown, never part of a path.
    directory, token = dataset_storage(owner), uuid.uuid4().hex
    stored = safe_child(directory, f"{token}.jsonl")
    incoming = safe_child(directory, f"{INCOMING_PREFIX}{token}.jsonl")
    try:
        with open_for_write(incoming) as sink:  # encrypted when a key is configured
            report = convert_lines(lines, sink)
        if not report.ok:
            raise DatasetError(f"{report.problem_count} problems; nothing was stored.", report)
        os.replace(incoming, stored)
        return _create(owner, name, description, source, stored, report), report
    except StreamError as error:  # a damaged or oversized .gz, found while reading it
        incoming.unlink(missing_ok=True)
        raise DatasetError(str(error)) from None
    except BaseException:
        incoming.unlink(missing_ok=True)  # nothing half-imported may remain
        stored.unlink(missing_ok=True)
        raise


def _create(
    owner: AbstractBaseUser,
    name: str,
    description: str,
    source: str,
    stored: Path,
    report: ImportReport,
) -> Dataset:
    try:
        with transaction.atomic():
            return Dataset.objects.create(
                owner=owner,
                name=name,
                description=description,
                source=source,
                path=str(stored),
                row_count=report.rows,
                fields=sorted(report.fields),
                size_bytes=stored.stat().st_size,
                converted=dict(report.converted),
                warnings=report.warnings,
            )
    except IntegrityError:  # the same name, created at the same moment
        raise DatasetError(f"You already have a dataset named {name!r}.") from None


def import_file(
    owner: AbstractBaseUser,
    name: str,
    path: Path,
    *,
    description: str = "",
    source: str = Dataset.Source.UPLOAD,
    dry_run: bool = False,
) -> tuple[Dataset | None, ImportReport]:
    check_size(path.stat().st_size)
    with path.open("rb") as handle:
        lines = file_lines(handle)  # plain or gzip
        return import_lines(
            owner, name, lines, description=description, source=source, dry_run=dry_run
        )


def register_dataset_file(
    owner: AbstractBaseUser,
    name: str,
    source_file: Path,
    source: str = Dataset.Source.UPLOAD,
    description: str = "",
) -> Dataset:
    """Import a file that must be valid (starter data, tests); problems raise DatasetError."""
    dataset, _ = import_file(owner, name, source_file, description=description, source=source)
    assert dataset is not None
    return dataset
