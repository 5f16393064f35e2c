"""Store dataset files under the data dir and register them.

The full upload validator (per-line errors, format conversion, limits) arrives with the training
data issue; this module already stores files atomically and refuses rows without `messages`.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from jobs.models import Dataset
from rftconsole.ownership import owned


class DatasetError(ValueError):
    """The file cannot become a dataset; the message names the line and the problem."""


def scan_jsonl(path: Path) -> tuple[int, list[str]]:
    """Stream the file once: count rows, collect top-level keys, reject rows without messages."""
    rows, fields = 0, set()
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise DatasetError(f"line {number}: invalid JSON ({error.msg})") from None
            if not isinstance(row, dict) or not row.get("messages"):
                raise DatasetError(f"line {number}: a row must be an object with `messages`")
            rows += 1
            fields.update(row)
    if rows == 0:
        raise DatasetError("the file has no rows")
    return rows, sorted(fields)


def dataset_storage(owner: AbstractBaseUser) -> Path:
    directory = Path(settings.DATA_DIR) / "datasets" / str(owner.pk)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def register_dataset_file(
    owner: AbstractBaseUser,
    name: str,
    source_file: Path,
    source: str = Dataset.Source.UPLOAD,
    description: str = "",
) -> Dataset:
    if owned(Dataset, owner).filter(name=name).exists():
        raise DatasetError(f"You already have a dataset named {name!r}.")
    row_count, fields = scan_jsonl(source_file)
    stored = dataset_storage(owner) / f"{uuid.uuid4().hex}.jsonl"
    shutil.copyfile(source_file, stored)
    try:
        with transaction.atomic():
            return Dataset.objects.create(
                owner=owner,
                name=name,
                description=description,
                source=source,
                path=str(stored),
                row_count=row_count,
                fields=fields,
                size_bytes=stored.stat().st_size,
            )
    except BaseException:
        stored.unlink(missing_ok=True)  # nothing half-imported may remain
        raise
