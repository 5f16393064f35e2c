"""Strict JSON for everything the console accepts: request bodies and dataset lines.

Python's `json` accepts what JSON forbids, and fails on what it cannot hold in ways nobody caught:
- `NaN`, `Infinity`, `-Infinity` are read as floats; `1e400` becomes infinity;
- `1` and 400 zeros becomes an integer that no float() or database column can hold;
- 100,000 nested `[` raise RecursionError, not ValueError;
- `"\\ud800"` (half a surrogate pair) is read as a string that cannot be encoded as UTF-8, and
  `"\\u0000"` as a NUL that PostgreSQL cannot store.
Each used to end as a 500: DRF turns only ValueError into a 400, and a non-finite number stored in
a row or a config breaks every strict JSON answer that shows it later. `strict_loads` refuses them
all with a `JSONInputError` saying which; `StrictJSONParser` makes the REST API answer it as a 400.

`parse_int` is the one reader of whole numbers typed in query strings and form fields.
"""

from __future__ import annotations

import codecs
import json
import math
import re
import sys
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding

# Far deeper than any real row or config (a chat row is ~5 levels), far below Python's recursion
# limit: a value this deep can still be stored, copied and rendered without a RecursionError.
MAX_DEPTH = 100
_MAX_INT_CHARS = 320  # a sign and 309 digits reach past sys.float_info.max


# ASCII digits only: int() also takes "٣", "1_000" and " 7 ", and str.isdigit() passes "²", which
# int() then refuses. 18 digits stay within a 64-bit database column.
_TYPED_INT = re.compile(r"[+-]?[0-9]{1,18}")


def parse_int(text: str | None, default: int | None = None) -> int | None:
    """A whole number as typed in a query string or form field, else `default` (missing, blank,
    or not a whole number of at most 18 digits). Callers decide what a bad value means to them."""
    if text is None or not _TYPED_INT.fullmatch(text.strip()):
        return default
    return int(text)


class JSONInputError(ValueError):
    """Parseable text that is still not JSON we accept; the message says why."""


def _no_constant(name: str) -> Any:
    raise JSONInputError("NaN and Infinity are not valid JSON numbers")


def _too_deep() -> JSONInputError:
    return JSONInputError(f"nested too deeply (more than {MAX_DEPTH} levels)")


def _too_large(text: str) -> JSONInputError:
    shown = text if len(text) <= 20 else f"{text[:12]}… ({len(text)} digits)"
    return JSONInputError(f"the number {shown} is too large")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: legal JSON syntax, but no finite number
        raise _too_large(text)
    return value


def _bounded_int(text: str) -> int:
    # Past a double's range an integer breaks every float() and database column it meets
    # (OverflowError, a 500); the length check also spares int() its 4300-digit ValueError.
    if len(text) > _MAX_INT_CHARS or abs(value := int(text)) > sys.float_info.max:
        raise _too_large(text)
    return value


def depth_of(value: Any) -> int:
    """How deeply lists and objects nest (a scalar is 0); iterative, so it cannot recurse."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if not isinstance(item, dict | list):
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, level + 1) for child in children)
    return deepest


def strict_loads(text: str | bytes) -> Any:
    """`json.loads`, refusing NaN/Infinity, numbers past a double's range and nesting deeper
    than MAX_DEPTH.

    Malformed text raises `json.JSONDecodeError` as usual (a ValueError too).
    """
    try:
        value = json.loads(
            text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int
        )
    except RecursionError:
        raise _too_deep() from None
    if depth_of(value) > MAX_DEPTH:
        raise _too_deep()
    problem = text_problem(value)
    if problem:
        raise JSONInputError(problem)
    return value


def text_problem(value: Any) -> str | None:
    """What makes a key or string unusable as text, or None.

    - Half a surrogate pair: JSON's `\\ud800` escape parses, but the text cannot be encoded
      (UTF-8 for the database, RE2, files), a 500 wherever it went.
    - A NUL character (`\\u0000`): PostgreSQL cannot store it in text or JSON columns, so the
      same request that works on SQLite was a 500 on the production database."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a string holds a NUL character (\\u0000), which is not allowed in text"
            try:
                item.encode()
            except UnicodeEncodeError:
                return (
                    "a string holds a lone surrogate (an unpaired \\ud800-\\udfff escape), "
                    "which is not Unicode text"
                )
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` as strict JSON can carry it, for rows stored before strict_loads guarded imports:
    NaN and ±Infinity become null (as in JavaScript's JSON.stringify), and so does anything
    nested deeper than MAX_DEPTH. The answer is then valid JSON, never a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not isinstance(value, dict | list):
        return value
    if depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {key: json_safe(item, depth + 1) for key, item in value.items()}
    return [json_safe(item, depth + 1) for item in value]


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, but every bad body is a 400 ParseError, never a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = get_encoding(parser_context or {})  # refuses bz2_codec & co (a zip bomb)
        try:
            return strict_loads(codecs.getreader(encoding)(stream).read())
        except JSONInputError as error:
            raise ParseError(f"JSON parse error - {error}.") from None
        except ValueError as error:  # malformed JSON, or bytes that are not UTF-8
            raise ParseError(f"JSON parse error - {error}") from None
