"""Lines of an uploaded or local file, plain or gzip-compressed (as Bedrock exports logs to S3).

A gzip file is recognised by its magic bytes, not its name, and decompressed while it is read, a
bounded chunk at a time: RFT_DATASET_MAX_BYTES applies to the decompressed data too, so a small
file that inflates to gigabytes (a "gzip bomb") is refused before it can fill memory or disk.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from typing import IO

from django.conf import settings

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 1024**2


class StreamError(ValueError):
    """The file cannot be read as lines; the message says why, in words a user can act on."""


def is_gzip(handle: IO[bytes]) -> bool:
    """Whether the file starts with gzip's magic bytes; the read position is left at the start."""
    start = handle.read(len(GZIP_MAGIC))
    handle.seek(0)
    return start == GZIP_MAGIC


def file_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """The file's lines (with their newlines), decompressed when it is gzip."""
    if not is_gzip(handle):
        yield from handle
        return
    yield from _split(_inflated(handle))


def _inflated(handle: IO[bytes]) -> Iterator[bytes]:
    limit = settings.RFT_DATASET_MAX_BYTES
    total = 0
    try:
        with gzip.GzipFile(fileobj=handle, mode="rb") as unzipped:
            # read(n) never returns more than n bytes, however well the data compresses.
            while chunk := unzipped.read(CHUNK_BYTES):
                total += len(chunk)
                if total > limit:
                    raise StreamError(
                        f"The .gz file decompresses to more than {limit / 1024**2:,.0f} MB, the "
                        "limit on the uncompressed data (RFT_DATASET_MAX_BYTES). Split it, or "
                        "raise the limit."
                    )
                yield chunk
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError
        raise StreamError(f"The .gz file is damaged or incomplete ({error}).") from None


def _split(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Chunks → lines. A line's parts are joined once, so a long line costs no repeated copying;
    it stays under the size limit, as the whole data does."""
    parts: list[bytes] = []
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            parts.append(chunk[start : end + 1])
            yield b"".join(parts)
            parts, start = [], end + 1
        if start < len(chunk):
            parts.append(chunk[start:])
    if parts:
        yield b"".join(parts)
