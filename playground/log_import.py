"""Import Bedrock model invocation log records (JSON lines, plain or .gz) as the uploader's
invocation logs, so that the metadata filters and "build a dataset from logs" work on them.

All or nothing, like a dataset import: every line is checked; with any problem no log is kept and
the report names each bad line. Rows are written in batches inside one transaction while the file
streams in, so a large export is never held in memory, and a problem rolls all of them back.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.dateparse import parse_datetime

from jobs.datasets.bedrock_logs import LogRecord, is_log_record, line_rows, read_record
from jobs.datasets.formats import RowError
from jobs.datasets.importer import DatasetError, ImportReport, check_size, parse_line
from jobs.datasets.streams import StreamError, file_lines
from jobs.datasets.transfers import too_large_message, upload_too_large
from playground.logs import LogFilterError, check_key
from playground.models import InvocationLog, check_metadata

BATCH = 500


class _Refused(Exception):
    """Raised inside the transaction to roll back the logs written so far."""


def import_upload(request: Any) -> ImportReport:
    """The request's multipart `file` imported for its user: the page and the API share this."""
    upload = request.FILES.get("file")  # parses the body first, which sets upload_too_large
    if upload_too_large(request):  # stopped at RFT_DATASET_MAX_BYTES while arriving
        raise DatasetError(too_large_message(request))
    if upload is None:
        raise DatasetError("Choose a file of Bedrock invocation log records (.jsonl or .gz).")
    check_size(upload.size)
    return import_log_records(request.user, file_lines(upload))


def import_log_records(owner: AbstractBaseUser, lines: Iterable[bytes]) -> ImportReport:
    """Store every record as an invocation log of `owner`; raises DatasetError (with the report
    when lines are bad) and stores nothing unless every line is a usable record."""
    report = ImportReport()
    try:
        with transaction.atomic():
            _store(owner, lines, report)
            if not report.ok:
                raise _Refused
    except _Refused:
        message = f"{report.problem_count} problems; nothing was stored."
        raise DatasetError(message, report) from None
    except StreamError as error:  # a damaged or oversized .gz
        raise DatasetError(str(error)) from None
    if report.rows == 0:
        raise DatasetError("The file has no invocation log records.")
    report.warnings.append(f"Imported {report.rows} Bedrock invocation log records.")
    return report


def _store(owner: AbstractBaseUser, lines: Iterable[bytes], report: ImportReport) -> None:
    pending: list[InvocationLog] = []
    limit = settings.RFT_DATASET_MAX_ROWS
    for number, raw in enumerate(lines, start=1):
        try:
            entries = line_rows(parse_line(raw, number))  # a CloudWatch Logs envelope gives many
        except RowError as error:
            report.problem(number, str(error))
            continue
        for entry in entries:
            try:
                log = _log_of(owner, entry.row())
            except RowError as error:
                report.problem(number, entry.problem(error))
                continue
            if log is None:
                continue
            report.rows += 1
            if report.rows > limit:
                report.problem(
                    number, f"more than {limit:,} records (RFT_DATASET_MAX_ROWS); split it"
                )
                break
            if report.ok:
                pending.append(log)
                report.converted["bedrock_log"] += 1
            if len(pending) >= BATCH:
                InvocationLog.objects.bulk_create(pending)
                pending = []
        if report.rows > limit:
            break
    if pending and report.ok:
        InvocationLog.objects.bulk_create(pending)


def _log_of(owner: AbstractBaseUser, row: Any) -> InvocationLog | None:
    if row is None:
        return None
    if not is_log_record(row):
        raise RowError(
            'not a Bedrock model invocation log record (no "schemaType": "ModelInvocationLog")'
        )
    record = read_record(row)
    _check_metadata(record.metadata)
    if len(record.model_id) > 2048 or len(record.request_id) > 100:
        raise RowError(
            "modelId (2,048) or requestId (100 characters) is longer than AWS makes them"
        )
    return InvocationLog(
        owner=owner,
        source=InvocationLog.Source.BEDROCK,
        deployment=record.model_id[:100],  # shown and filtered on; model_id keeps it whole
        request={"model": record.model_id, "messages": record.messages},
        response_text=record.response_text,
        request_metadata=record.metadata,
        prompt_tokens=record.input_tokens,
        completion_tokens=record.output_tokens,
        model_id=record.model_id,
        operation=record.operation,
        request_id=record.request_id,
        logged_at=_logged_at(record),
    )


def _check_metadata(metadata: dict[str, str]) -> None:
    """The limits every invocation log keeps (16 text pairs), and keys the filters can name."""
    try:
        check_metadata(metadata)
        for key in metadata:
            check_key(key)
    except (ValueError, LogFilterError) as error:
        raise RowError(f"requestMetadata: {error}") from None


def _logged_at(record: LogRecord) -> Any:
    try:
        moment = parse_datetime(record.timestamp)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise RowError(
            f"timestamp {record.timestamp!r} is not an ISO 8601 time with a zone "
            "(Bedrock writes e.g. 2025-03-11T00:38:02Z)"
        )
    try:  # year 1 at +14:00 is before year 1 in UTC: the database cannot hold it
        return moment.astimezone(UTC)
    except OverflowError:
        raise RowError(f"timestamp {record.timestamp!r} is outside the years 1 to 9999") from None
