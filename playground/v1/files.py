"""OpenAI's Files API for fine-tuning: `/v1/files` create, list, retrieve, content and delete.

A file of purpose `fine-tune` *is* a dataset of the key's owner, and its id is `file-<dataset
pk>`: an upload goes through the same importer as the console's (every line checked and
converted to chat format, nothing stored when a line is bad), and every dataset made in the
console is listed here too. Views only parse and answer; the datasets code does the work.

Files are fine-tuning data, managed like the REST API's datasets, so every call needs a key with
the `api` scope: an `inference` key is meant to be shipped inside an app that only chats.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import IO, Any

from asgiref.sync import sync_to_async
from django.core.exceptions import SuspiciousOperation
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.http import content_disposition_header

from jobs.datasets.importer import DatasetError, check_size, import_lines
from jobs.datasets.storage import open_plain
from jobs.datasets.streams import file_lines
from jobs.datasets.tools import remove_dataset
from jobs.datasets.transfers import too_large_message, upload_too_large
from jobs.models import Dataset
from playground.v1.params import ApiError, bad, page_limit, require_api_scope
from playground.v1.views import v1_view
from rftconsole.models import ApiKey
from rftconsole.ownership import owned
from rftconsole.paths import download_filename
from rftconsole.security.audit import audit

PURPOSE = "fine-tune"
# Canonical form only (no sign, no leading zero, ASCII digits, within a 64-bit key): one id per
# dataset, and nothing a database could overflow on.
FILE_ID = re.compile(r"file-([1-9][0-9]{0,17})")
MAX_LIST = 10_000  # OpenAI's largest (and default) page
SHOWN_PROBLEMS = 5  # line-level problems quoted in an error message
NAME_LENGTH = 100  # a dataset name's limit (importer.check_name)
CHUNK_BYTES = 256 * 1024


def id_of(dataset: Dataset) -> str:
    return f"file-{dataset.pk}"


def parse_file_id(text: str) -> int | None:
    """The dataset pk of a file id in its one exact form, else None."""
    match = FILE_ID.fullmatch(text)
    return int(match.group(1)) if match else None


def file_object(dataset: Dataset) -> dict[str, Any]:
    """OpenAI's FileObject; `bytes` is the stored (converted) file's size, `status_details` what
    the import noticed but accepted (rows converted from another shape, few rows)."""
    return {
        "id": id_of(dataset),
        "object": "file",
        "bytes": dataset.size_bytes,
        "created_at": int(dataset.created_at.timestamp()),
        "filename": dataset.name,
        "purpose": PURPOSE,
        "status": "processed",
        "status_details": " ".join(dataset.warnings) or None,
        "expires_at": None,
    }


def _owned_file(api_key: ApiKey, given: str) -> Dataset:
    # Malformed, missing and another owner's ids all get this one answer: ids reveal nothing.
    pk = parse_file_id(given)
    dataset = owned(Dataset, api_key.owner).filter(pk=pk).first() if pk else None
    if dataset is None:
        raise ApiError(404, f"No such File object: {given[:100]}", param="id")
    return dataset


def _purpose(value: str | None) -> None:
    if not value:
        raise bad("You must provide a purpose parameter.", "purpose")
    if value != PURPOSE:
        raise bad(
            f"Invalid value for 'purpose': {value[:100]!r}. This server keeps files for "
            f"fine-tuning only: use purpose='{PURPOSE}'.",
            "purpose",
        )


def _upload(request: HttpRequest) -> UploadedFile:
    """The one uploaded file. An upload stopped at the size limit is named before the purpose:
    the form's fields after the file were lost with it."""
    try:
        purpose, uploads = request.POST.get("purpose"), request.FILES.getlist("file")
    except (MultiPartParserError, SuspiciousOperation) as error:
        raise bad(f"We could not parse the multipart body of your request: {error}") from None
    if upload_too_large(request):  # stopped at RFT_DATASET_MAX_BYTES while arriving
        raise bad(too_large_message(request), "file")
    _purpose(purpose)
    if len(uploads) != 1:
        raise bad("You must provide exactly one file, as the multipart field 'file'.", "file")
    return uploads[0]


def free_name(api_key: ApiKey, filename: str) -> str:
    """The file's name as a dataset name: a display name (never a path), made unique for the
    owner with ` (2)`, ` (3)`… and cut to the dataset name's length."""
    printable = "".join(ch if ch.isprintable() else " " for ch in filename)  # no NUL, no newline
    stem = " ".join(printable.split())[:NAME_LENGTH] or "upload.jsonl"
    taken = set(owned(Dataset, api_key.owner).values_list("name", flat=True))
    name, number = stem, 1
    while name in taken:
        number += 1
        suffix = f" ({number})"
        name = stem[: NAME_LENGTH - len(suffix)] + suffix
    return name


def _problems(error: DatasetError) -> str:
    """The importer's message with its first line-level problems, e.g. `line 3: missing ...`."""
    report = error.report
    if report is None:
        return str(error)
    listed = [
        f"line {line}: {text}" if line else text for line, text in report.problems[:SHOWN_PROBLEMS]
    ]
    more = report.problem_count - len(listed)
    tail = f"; and {more} more" if more > 0 else ""
    return f"The file is not valid fine-tuning data: {error} Problems: " + "; ".join(listed) + tail


def _create(request: HttpRequest, api_key: ApiKey) -> dict[str, Any]:
    upload = _upload(request)
    name = free_name(api_key, upload.name or "")
    try:
        check_size(upload.size or 0)
        dataset, _ = import_lines(
            api_key.owner,
            name,
            file_lines(upload),  # plain or gzip, checked against the size limit as it inflates
            description="Uploaded through the OpenAI Files API (/v1/files).",
        )
    except DatasetError as error:
        raise ApiError(400, _problems(error), param="file", code="invalid_file_format") from None
    assert dataset is not None  # not a dry run
    return file_object(dataset)


def _listed(api_key: ApiKey, query: Any) -> dict[str, Any]:
    limit = page_limit(query.get("limit"), MAX_LIST, MAX_LIST)
    order = query.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise bad(f"Invalid value for 'order': {order[:20]!r}; use 'asc' or 'desc'.", "order")
    datasets = owned(Dataset, api_key.owner)
    purpose = query.get("purpose")
    if purpose and purpose != PURPOSE:
        datasets = datasets.none()  # only fine-tuning files are kept here
    # The pk follows creation and stays valid after its file is deleted, so it is the cursor.
    page = list(_after(datasets, query.get("after"), order)[: limit + 1])
    data = [file_object(dataset) for dataset in page[:limit]]
    return {
        "object": "list",
        "data": data,
        "has_more": len(page) > limit,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def _after(datasets: QuerySet[Dataset], after: str | None, order: str) -> QuerySet[Dataset]:
    datasets = datasets.order_by("pk" if order == "asc" else "-pk")
    if not after:
        return datasets
    pk = parse_file_id(after)
    if pk is None:
        raise bad(f"Invalid value for 'after': {after[:100]!r} is not a file id.", "after")
    return datasets.filter(pk__gt=pk) if order == "asc" else datasets.filter(pk__lt=pk)


def _deleted(api_key: ApiKey, given: str) -> dict[str, Any]:
    dataset = _owned_file(api_key, given)
    try:
        remove_dataset(dataset)  # refuses while a job uses it
    except DatasetError as error:
        message = f"File {given} is in use: {error}"
        raise ApiError(409, message, param="id", code="file_in_use") from None
    return {"id": given, "object": "file", "deleted": True}


def _opened(request: HttpRequest, api_key: ApiKey, given: str) -> tuple[Dataset, IO[bytes]]:
    dataset = _owned_file(api_key, given)
    try:
        handle = open_plain(dataset.path)  # plain JSONL even when stored encrypted
    except OSError:
        message = f"The stored data of {given} cannot be read; ask the console's administrator."
        raise ApiError(500, message, type_="server_error") from None
    audit(api_key.owner, "dataset.download", f"dataset {dataset.pk} {dataset.name}", request)
    return dataset, handle


async def _chunks(handle: IO[bytes]) -> AsyncIterator[bytes]:
    # An async iterator: Django would read a sync one (a FileResponse) whole into memory first.
    try:
        while chunk := await sync_to_async(handle.read, thread_sensitive=False)(CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()


@v1_view(("GET", "POST"))
async def files(request: HttpRequest, api_key: ApiKey) -> HttpResponse:
    """`GET /v1/files` lists (cursor pagination), `POST /v1/files` uploads (multipart)."""
    require_api_scope(api_key, "manage files: they are fine-tuning data")
    if request.method == "POST":
        return JsonResponse(await sync_to_async(_create)(request, api_key))
    return JsonResponse(await sync_to_async(_listed)(api_key, request.GET))


@v1_view(("GET", "DELETE"))
async def file(request: HttpRequest, api_key: ApiKey, file_id: str) -> HttpResponse:
    require_api_scope(api_key, "manage files: they are fine-tuning data")
    if request.method == "DELETE":
        return JsonResponse(await sync_to_async(_deleted)(api_key, file_id))
    return JsonResponse(file_object(await sync_to_async(_owned_file)(api_key, file_id)))


@v1_view(("GET",))
async def content(request: HttpRequest, api_key: ApiKey, file_id: str) -> HttpResponse:
    """The stored rows (converted to chat format) as JSONL; audited like a dataset download."""
    require_api_scope(api_key, "manage files: they are fine-tuning data")
    dataset, handle = await sync_to_async(_opened)(request, api_key, file_id)
    response = StreamingHttpResponse(_chunks(handle), content_type="application/jsonl")
    stem = dataset.name.removesuffix(".jsonl")
    name = download_filename(stem, ".jsonl", fallback=id_of(dataset))
    response["Content-Disposition"] = content_disposition_header(True, name)
    return response
