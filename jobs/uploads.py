"""Refuse an upload larger than RFT_DATASET_MAX_BYTES while it streams in, not after.

Django would otherwise write the whole body to a temporary file before the view could say no.
The handler stops the upload at the limit and reads (and discards) the rest, so the browser gets
a normal answer with a clear message instead of a reset connection.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload


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
