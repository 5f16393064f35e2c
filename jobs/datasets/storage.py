"""Dataset files on disk: the one module that opens them, so that encryption at rest is applied
to every reader and writer (importer, preview, split, statistics, download, trainer, test bench).

With a key configured (see rftconsole/security/crypto.py), a file is a magic first line, `RFTENC1`,
then one Fernet token per line. Each token holds about 1 MiB of whole JSONL lines, so files of 100
MB are written and read in bounded memory, and a row never spans two tokens. A file without the
magic line is plain JSONL (stored before a key was set) and still reads."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from rftconsole.security import crypto

MAGIC = b"RFTENC1\n"
CHUNK_BYTES = 1024 * 1024


class TextSink(Protocol):
    def write(self, text: str, /) -> int: ...


class _EncryptingWriter:
    """Buffers text and writes one token per ~CHUNK_BYTES, cut after a newline."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.buffer = bytearray()
        handle.write(MAGIC)

    def write(self, text: str) -> int:
        self.add(text.encode("utf-8"))
        return len(text)

    def add(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= CHUNK_BYTES:
            cut = self.buffer.rfind(b"\n") + 1
            if cut:
                self._emit(bytes(self.buffer[:cut]))
                del self.buffer[:cut]

    def close(self) -> None:
        if self.buffer:
            self._emit(bytes(self.buffer))
            self.buffer.clear()

    def _emit(self, plain: bytes) -> None:
        self.handle.write(crypto.encrypt_bytes(plain) + b"\n")


@contextmanager
def open_for_write(path: str | Path) -> Iterator[TextSink]:
    """A text sink for JSONL lines: encrypted when encryption at rest is on, else plain."""
    with open(path, "wb") as handle:
        if not crypto.at_rest_enabled():
            with io.TextIOWrapper(handle, encoding="utf-8", newline="\n") as text:
                yield text
            return
        writer = _EncryptingWriter(handle)
        yield writer
        writer.close()


def is_encrypted(path: str | Path) -> bool:
    with open(path, "rb") as handle:
        return handle.readline() == MAGIC


def _plain_chunks(handle: IO[bytes], what: str) -> Iterator[bytes]:
    """The decrypted content of an encrypted file whose magic line was read, chunk by chunk."""
    for token in handle:
        token = token.strip()
        if token:
            yield crypto.decrypt_bytes(token, what)


def _split_lines(chunk: bytes) -> Iterator[bytes]:
    # Split on "\n" only: JSON text may hold U+2028 and such, which str.splitlines() would cut.
    start = 0
    while start < len(chunk):
        end = chunk.find(b"\n", start)
        end = len(chunk) if end < 0 else end + 1
        yield chunk[start:end]
        start = end


def iter_byte_lines(path: str | Path) -> Iterator[bytes]:
    """Every line of the file as plain bytes, read lazily."""
    with open(path, "rb") as handle:
        first = handle.readline()
        if first != MAGIC:
            if first:
                yield first
            yield from handle
            return
        for chunk in _plain_chunks(handle, f"Dataset file {path}"):
            yield from _split_lines(chunk)


def iter_lines(path: str | Path) -> Iterator[str]:
    for line in iter_byte_lines(path):
        yield line.decode("utf-8")


def iter_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    for line in iter_lines(path):
        if line.strip():
            yield json.loads(line)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    return list(iter_rows(path))


class _ChunkReader(io.RawIOBase):
    """A read-only binary stream over decrypted chunks, for responses that want a file."""

    def __init__(self, handle: IO[bytes], chunks: Iterator[bytes]) -> None:
        self.handle, self.chunks, self.pending = handle, chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            self.pending = next(self.chunks, b"")
            if not self.pending:
                return 0
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size

    def close(self) -> None:
        self.handle.close()
        super().close()


def open_plain(path: str | Path) -> BinaryIO:
    """The file's plain JSONL as a binary stream (downloads); the caller closes it."""
    handle = open(path, "rb")  # noqa: SIM115 - closed by the returned stream
    if handle.readline() != MAGIC:
        handle.seek(0)
        return handle
    reader = _ChunkReader(handle, _plain_chunks(handle, f"Dataset file {path}"))
    return io.BufferedReader(reader, buffer_size=CHUNK_BYTES)  # type: ignore[return-value]


def rewrite_encrypted(path: str | Path) -> bool:
    """Re-encrypt the file with the primary key (plain files get encrypted); atomic: a temporary
    file next to it replaces it only once complete. Returns whether it was plain before."""
    path = Path(path)
    temporary = path.with_name(f".rotating-{path.name}")
    plain = not is_encrypted(path)
    try:
        with open(temporary, "wb") as out:
            if plain:
                writer = _EncryptingWriter(out)
                for line in iter_byte_lines(path):
                    writer.add(line)
                writer.close()
            else:
                _rotate_tokens(path, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return plain


def _rotate_tokens(path: Path, out: IO[bytes]) -> None:
    out.write(MAGIC)
    with open(path, "rb") as handle:
        handle.readline()
        for token in handle:
            token = token.strip()
            if token:
                out.write(crypto.rotate_token(token, f"Dataset file {path}") + b"\n")


def check_readable(path: str | Path) -> None:
    """Decrypt every chunk (DecryptionError if a key is missing) without keeping anything."""
    for _ in iter_byte_lines(path):
        pass
