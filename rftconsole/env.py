"""Small typed readers for environment variables.

Each helper fails loudly with the variable's name when a value cannot be parsed, so a typo in
production configuration stops the process at start instead of surfacing later as odd behaviour.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no).")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    path = Path(raw).expanduser() if raw else default
    return path.resolve()


def database_from_url(url: str) -> dict[str, object]:
    """Turn `postgres://user:pass@host:port/name` or `sqlite:////abs/file.db` into settings."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # sqlite:////abs/file.db is absolute, sqlite:///file.db relative (dj-database-url's rule).
        path = unquote(parsed.path)[1:]
        if not path:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no SQLite file.")
        return sqlite_database(Path(path))
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parsed.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no database.")
        return {
            "ENGINE": "rftconsole.postgresql",  # Django's, accepting NUL (see its base.py)
            "NAME": name,
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            # No persistent connections: under ASGI every request runs in a thread of its own, so a
            # connection kept per thread outlives its request; 50 concurrent page loads then ran
            # PostgreSQL out of connection slots (tests/test_load.py). Django's advice for ASGI.
            "CONN_MAX_AGE": 0,
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {parsed.scheme!r} is not supported (use postgres:// or sqlite:///)."
    )


def sqlite_database(path: Path) -> dict[str, object]:
    # WAL + IMMEDIATE transactions let the web process and the workers write concurrently
    # without "database is locked" errors on the embedded default.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


def read_or_create_secret(path: Path) -> str:
    """Return the secret stored at `path`, creating it (mode 0600) on first use."""
    from django.core.management.utils import get_random_secret_key

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _wait_for_content(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(get_random_secret_key())
    return path.read_text().strip()


def _wait_for_content(path: Path) -> str:
    # Another process may have created the file a moment ago and still be writing it.
    for _ in range(100):
        content = path.read_text().strip()
        if content:
            return content
        time.sleep(0.05)
    raise ImproperlyConfigured(f"{path} is empty: delete it to generate a new secret.")
