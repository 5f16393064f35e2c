"""The REST API's pagination: DRF's limit/offset, with the page size capped.

Without a cap `?limit=99999999999999999999999` reaches the database as an integer SQLite cannot
hold (a 500), and `?limit=10000000` asks one request to serialize a whole table.
"""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination


class ConsolePagination(LimitOffsetPagination):
    max_limit = 1000  # a larger ?limit= is read as this
