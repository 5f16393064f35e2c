"""Django's PostgreSQL backend with one difference: text holding NUL (U+0000) is stored with each
NUL replaced by U+FFFD instead of failing the write.

PostgreSQL's text and jsonb cannot hold NUL ("\\u0000 cannot be converted to text"), while
SQLite, Python and JSON can, and NUL reaches us from outside: a model may sample the NUL token, a
dataset row or an API request may carry "\\u0000", reward code may print it. Without this, each of
those is a DataError in the middle of a job or a request, on the production path only. Replacing
(rather than dropping) keeps lengths and shows where a NUL was. Every write goes through here, so
no caller has to remember it; SQLite stores NUL as given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db.backends.postgresql import base, operations

NUL = "\x00"
REPLACEMENT = "\ufffd"


def without_nul(value: Any) -> Any:
    """`value` with NUL replaced in every string in it, keys included; other values as they are."""
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT) if NUL in value else value
    if isinstance(value, Mapping):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(without_nul(item) for item in value)
    return value


class DatabaseOperations(operations.DatabaseOperations):
    def adapt_json_value(self, value: Any, encoder: Any) -> Any:
        return super().adapt_json_value(without_nul(value), encoder)


class Cursor(base.Cursor):
    """The cursor Django uses (client-side binding), with NUL replaced in string parameters."""

    def execute(self, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        return super().execute(query, without_nul(params), *args, **kwargs)

    def executemany(self, query: Any, params_seq: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        return super().executemany(query, [without_nul(p) for p in params_seq], *args, **kwargs)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        # Only the default cursor: server-side binding (an opt-in OPTION) keeps Django's own.
        if params.get("cursor_factory") is base.Cursor:
            params["cursor_factory"] = Cursor
        return params
