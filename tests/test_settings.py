"""Settings are read from the environment by small typed helpers that fail loudly."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from rftconsole.env import database_from_url, env_bool, env_int, env_list, read_or_create_secret


def test_it_reads_booleans_and_rejects_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAG", "yes")
    assert env_bool("FLAG") is True
    monkeypatch.setenv("FLAG", "0")
    assert env_bool("FLAG", True) is False
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG='maybe' is not a boolean"):
        env_bool("FLAG")


def test_it_rejects_a_non_integer_and_a_value_below_the_minimum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("N", "ten")
    with pytest.raises(ImproperlyConfigured, match="N='ten' is not an integer"):
        env_int("N", 1)
    monkeypatch.setenv("N", "0")
    with pytest.raises(ImproperlyConfigured, match="below the minimum of 1"):
        env_int("N", 5, minimum=1)


def test_it_splits_lists_on_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTS", "console.example.com, 10.0.0.5 ,")
    assert env_list("HOSTS", []) == ["console.example.com", "10.0.0.5"]


def test_it_parses_a_postgres_url() -> None:
    db = database_from_url("postgres://rft:p%40ss@db.internal:5433/console")
    assert db["ENGINE"] == "rftconsole.postgresql"  # Django's, storing NUL as U+FFFD
    assert (db["NAME"], db["USER"], db["PASSWORD"]) == ("console", "rft", "p@ss")
    assert (db["HOST"], db["PORT"]) == ("db.internal", "5433")


def test_it_parses_a_sqlite_url_with_concurrent_writers_in_mind() -> None:
    db = database_from_url("sqlite:////srv/rft/console.sqlite3")
    assert db["NAME"] == "/srv/rft/console.sqlite3"
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x@y/z", "scheme 'mysql' is not supported"),
        ("postgres://x@y/", "names no database"),
        ("sqlite:///", "names no SQLite file"),
    ],
)
def test_it_rejects_a_database_url_it_cannot_use(url: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        database_from_url(url)


def test_it_generates_the_secret_key_once_into_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret_key"
    first = read_or_create_secret(path)
    assert len(first) >= 50
    assert read_or_create_secret(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
