"""Dataset files over HTTP, for the pages and the API alike: an upload run through the importer,
a download as JSONL (audited).

An upload larger than RFT_DATASET_MAX_BYTES is refused while it streams in, not after: Django
would otherwise write the whole body to a temporary file before the view could say no.
The handler stops the upload at the limit and reads (and discards) the rest, so the browser gets
a normal answer with a clear message instead of a reset connection.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import FileResponse, HttpRequest

from jobs.datasets.importer import DatasetError, check_size, import_lines
from jobs.datasets.storage import open_plain
from jobs.datasets.streams import file_lines
from jobs.models import Dataset
from rftconsole.paths import download_filename
from rftconsole.security.audit import audit


class SizeLimitUploadHandler(FileUploadHandler):
    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.RFT_DATASET_MAX_BYTES:
            if self.request is not None:
                self.request.upload_too_large = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def upload_too_large(request: Any) -> bool:
    return bool(getattr(request, "upload_too_large", False))


def too_large_message(request: Any) -> str:
    limit = settings.RFT_DATASET_MAX_BYTES / 1024**2
    size = int(request.META.get("CONTENT_LENGTH") or 0) / 1024**2
    about = f"The upload is {size:,.1f} MB; " if size else "The file is larger than allowed; "
    return (
        about
        + f"the limit is {limit:,.0f} MB (RFT_DATASET_MAX_BYTES). Split it, or raise the limit."
    )


def imported(request: HttpRequest, given: dict[str, Any]) -> tuple[Dataset | None, dict[str, Any]]:
    """Run an uploaded file through the importer: the page and the API share this."""
    if upload_too_large(request):  # the file was stopped at the limit while arriving
        raise DatasetError(too_large_message(request))
    upload = given.get("file")
    if upload is None:
        raise DatasetError("Choose a JSONL file (or a .gz of one) to upload.")
    check_size(upload.size)
    dataset, report = import_lines(
        request.user,
        given["name"],
        file_lines(upload),  # plain or gzip, as Bedrock exports logs to S3
        description=given.get("description", ""),
        dry_run=given.get("dry_run", False),
    )
    return dataset, report.as_dict()


def download_response(request: HttpRequest, dataset: Dataset) -> FileResponse:
    """The stored rows (chat format) as a JSONL file; downloads are audited."""
    audit(request.user, "dataset.download", f"dataset {dataset.pk} {dataset.name}", request)
    return FileResponse(
        open_plain(dataset.path),  # plain JSONL even when stored encrypted; FileResponse closes it
        as_attachment=True,
        filename=download_filename(dataset.name, ".jsonl", fallback=f"dataset-{dataset.pk}"),
        content_type="application/jsonl",
    )
