"""Re-encrypt everything the console stores encrypted with the primary key: dataset files,
invocation logs, rollouts, validation answers, evaluation rows, judge API keys. Data stored plain
before a key was set is encrypted on the way. Used by `manage.py rotate_encryption_key`.

Each item is rewritten on its own (files through a temporary file and os.replace, rows in small
transactions), so an interrupted run loses nothing and running again finishes the work. An item no
configured key can decrypt is reported and left as it is; the others still move on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection, models, transaction

from jobs.datasets import storage
from jobs.models import Dataset, Rollout, ValidationAnswers
from playground.models import EvaluationRow, InvocationLog
from rewards.models import RewardVersion
from rewards.services import SECRET_KEY_FIELD
from rftconsole.security import crypto

BATCH_ROWS = 200
LISTED_FAILURES = 20


@dataclass
class Outcome:
    """What happened to one kind of data."""

    kind: str
    done: int = 0  # re-encrypted (or, in a dry run, readable)
    were_plain: int = 0  # of those, stored unencrypted before
    skipped: list[str] = field(default_factory=list)  # e.g. a dataset whose file is gone
    failed: list[str] = field(default_factory=list)  # could not be decrypted

    def line(self, dry_run: bool) -> str:
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        text = f"{self.kind}: {verb} {self.done} ({self.were_plain} stored plain before)"
        if self.skipped:
            text += f", {len(self.skipped)} skipped"
        if self.failed:
            text += f", {len(self.failed)} FAILED"
        return text

    def note(self, bucket: list[str], message: str) -> None:
        if len(bucket) < LISTED_FAILURES:
            bucket.append(message)
        else:
            bucket.append("…")  # counted, not listed


def rotate_all(dry_run: bool = False) -> list[Outcome]:
    """Every kind in turn; callers check first that a key is configured."""
    return [
        rotate_datasets(dry_run),
        rotate_rows(InvocationLog, ["request", "response_text"], "invocation logs", dry_run),
        rotate_rows(
            Rollout,
            ["prompt", "reference_answer", "completions", "reward_output"],
            "rollouts",
            dry_run,
        ),
        rotate_rows(ValidationAnswers, ["answers"], "validation answers", dry_run),
        rotate_rows(EvaluationRow, ["row", "answers"], "evaluation rows", dry_run),
        rotate_judge_keys(dry_run),
    ]


def rotate_datasets(dry_run: bool) -> Outcome:
    outcome = Outcome("dataset files")
    for dataset in Dataset.objects.order_by("pk").iterator():
        path = Path(dataset.path)
        label = f"dataset {dataset.pk} ({dataset.name})"
        if not path.is_file():
            outcome.note(outcome.skipped, f"{label}: file {path} is missing")
            continue
        try:
            plain = not storage.is_encrypted(path)
            if dry_run:
                storage.check_readable(path)
            else:
                storage.rewrite_encrypted(path)
                Dataset.objects.filter(pk=dataset.pk).update(size_bytes=path.stat().st_size)
        except crypto.DecryptionError:
            outcome.note(outcome.failed, f"{label}: no configured key decrypts {path}")
            continue
        outcome.done += 1
        outcome.were_plain += plain
    return outcome


def rotate_rows(model: type[models.Model], names: list[str], kind: str, dry_run: bool) -> Outcome:
    """Read raw column values in pages by primary key, decrypt, and write back sealed."""
    outcome = Outcome(kind)
    fields = [model._meta.get_field(name) for name in names]
    after = 0
    while rows := _raw_page(model, fields, after):
        after = rows[-1][0]
        updated = []
        for pk, *raw in rows:
            pairs = list(zip(fields, raw, strict=True))
            try:
                values = {f.name: f.from_db_value(v, None, connection) for f, v in pairs}
            except crypto.DecryptionError:
                outcome.note(outcome.failed, f"{model.__name__} {pk}: no configured key fits")
                continue
            outcome.done += 1
            outcome.were_plain += any(_stored_plain(f, v) for f, v in pairs)
            updated.append(model(pk=pk, **values))
        if updated and not dry_run:
            with transaction.atomic():
                model.objects.bulk_update(updated, names)  # type: ignore[attr-defined]
    return outcome


def _raw_page(model: type[models.Model], fields: list[Any], after: int) -> list[tuple]:
    """Column values as stored, bypassing the fields' decryption (a row that no key decrypts
    must not stop the others)."""
    quote = connection.ops.quote_name
    pk = quote(model._meta.pk.column)  # type: ignore[union-attr]
    columns = ", ".join([pk, *(quote(f.column) for f in fields)])
    table = quote(model._meta.db_table)
    # Names come from the model's own metadata; values are parameters.
    query = f"SELECT {columns} FROM {table} WHERE {pk} > %s ORDER BY {pk} LIMIT %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(query, [after, BATCH_ROWS])
        return list(cursor.fetchall())


def _stored_plain(model_field: Any, raw: Any) -> bool:
    """Whether a stored value holds content that is not encrypted."""
    if raw is None or raw == "":
        return False
    if isinstance(model_field, models.JSONField) and isinstance(raw, str):
        raw = json.loads(raw)
    return not (isinstance(raw, str) and crypto.is_sealed(raw))


def rotate_judge_keys(dry_run: bool) -> Outcome:
    outcome = Outcome("judge API keys")
    versions = RewardVersion.objects.filter(config__has_key=SECRET_KEY_FIELD).order_by("pk")
    for version in versions.iterator():
        token = version.config.get(SECRET_KEY_FIELD)
        if not isinstance(token, str) or not token:
            continue
        try:
            rotated = crypto.rotate_token(token.encode(), f"reward version {version.pk}")
        except crypto.DecryptionError:
            outcome.note(outcome.failed, f"{version}: no configured key decrypts its API key")
            continue
        outcome.done += 1
        if not dry_run:
            config = {**version.config, SECRET_KEY_FIELD: rotated.decode()}
            # An update, not save(): versions are immutable, and this changes no setting.
            RewardVersion.objects.filter(pk=version.pk).update(config=config)
    return outcome
