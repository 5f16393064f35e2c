"""Names are data, never paths: every file the console writes gets a server-made name.

User-facing names (jobs, models, datasets) may hold any text, `a/../../tmp/x` included, and stay
display names. What reaches the filesystem is built here from ids and slugs in a small alphabet,
and is checked to resolve inside the directory it belongs to, symlinks followed.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from django.conf import settings

MAX_PART = 128  # well under NAME_MAX (255 bytes) once a suffix or counter is added
PART = re.compile(r"[A-Za-z0-9_.-]+")
NOT_SLUG = re.compile(r"[^A-Za-z0-9_]+")
FILENAME_DROP = re.compile(r"[^\w .()-]+")  # \w is Unicode: accents stay, controls do not


class UnsafePath(ValueError):
    """A path part that could leave its directory; a bug in the caller, never user input."""


def check_part(part: str) -> str:
    """`part` itself when it is one plain file name in the safe alphabet, else UnsafePath."""
    if not isinstance(part, str) or not part or len(part) > MAX_PART:
        raise UnsafePath(f"Path part {part!r} is empty or longer than {MAX_PART} characters.")
    if part in (".", "..") or not PART.fullmatch(part):
        raise UnsafePath(f"Path part {part!r} is not a plain name (letters, digits, . _ -).")
    return part


def inside(path: Path, base: Path) -> bool:
    """Whether `path` resolves (symlinks followed) to `base` or somewhere below it."""
    return Path(path).resolve().is_relative_to(Path(base).resolve())


def safe_child(base: Path, *parts: str) -> Path:
    """`base/part/...`, resolved; UnsafePath unless every part is plain and it stays in `base`."""
    if not parts:
        raise UnsafePath("safe_child needs at least one path part.")
    root = Path(base).resolve()
    target = root.joinpath(*(check_part(part) for part in parts)).resolve()
    if target == root or not target.is_relative_to(root):  # a symlink on the way led out
        raise UnsafePath(f"{'/'.join(parts)!r} leaves {root}.")
    return target


def slug(text: str, fallback: str = "item", limit: int = 60) -> str:
    """A path-safe rendering of a display name: ASCII letters, digits, `_` and single `-`."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = NOT_SLUG.sub("-", ascii_text).strip("-_")[:limit].strip("-_")
    return cleaned or fallback


def download_filename(name: str, suffix: str, fallback: str = "download") -> str:
    """A Content-Disposition file name from a display name: no quotes, slashes or newlines."""
    text = FILENAME_DROP.sub("-", unicodedata.normalize("NFKC", name))
    text = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", "", text)).strip(" .-")[:100].strip(" .-")
    return f"{text or fallback}{suffix}"


def data_dir() -> Path:
    return Path(settings.DATA_DIR).resolve()


def models_dir() -> Path:
    """Where the console writes model weights (job outputs, merged exports)."""
    return safe_child(data_dir(), "models")


def fresh_dir(base: Path, stem: str) -> Path:
    """A new, empty directory `base/stem` (or `stem-2`, `stem-3`…), created so no one shares it."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    for number in range(1, 1000):
        target = safe_child(base, stem if number == 1 else f"{stem}-{number}")
        try:
            target.mkdir()
        except FileExistsError:
            continue
        return target
    raise UnsafePath(f"No free directory name for {stem!r} in {base}.")
