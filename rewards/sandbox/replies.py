"""Check what a sandbox sent back before anything else reads it.

child.py already caps what user code returns, but user code runs in that same process and could
write to the protocol pipe itself. So the parent trusts nothing: a reply line is read only up to
`MAX_REPLY_BYTES`, and it must have the exact shape, sizes and finite numbers described here, or
the worker is ended and the batch fails with a clear reason. Nothing a reward returns makes the
trainer's memory grow past these bounds.
"""

from __future__ import annotations

import math
from typing import Any

MAX_REPLY_BYTES = 16 * 1024**2
MAX_OUTPUT = 64 * 1024 + 64  # captured prints, with the truncation note
MAX_COMPONENTS = 32
MAX_NAME = 64
MAX_ERROR = 2000 + 8  # one row's error, with the "[…]" mark
MAX_BATCH_ERROR = 8000  # a failed batch's traceback


class MalformedReply(ValueError):
    pass


def _finite(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MalformedReply(f"{what} is not a finite number")
    return float(value)


def _all_finite_floats(values: list[Any]) -> bool:
    """The common case, checked at C speed: every score a float and their sum finite (a NaN or
    an infinity makes it not; a finite sum that overflows only sends us the slow way)."""
    return set(map(type, values)) <= {float} and math.isfinite(math.fsum(values))


def _text(value: object, limit: int, what: str) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise MalformedReply(f"{what} is not text of at most {limit:,} characters")
    return value


def _positions(value: object, count: int, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedReply(f"{what} is not an object")
    for key in value:
        if not (isinstance(key, str) and key.isdigit() and int(key) < count):
            raise MalformedReply(f"{what} names a row that is not in the batch")
    return value


def _component_ok(value: object) -> bool:
    """{name, value, type}: two short texts and a finite float (child.py makes every value a
    float). One predicate per metric: a batch of 64 rows can carry 2,048 of them."""
    if type(value) is not dict or len(value) != 3:
        return False
    name, number, kind = value.get("name"), value.get("value"), value.get("type")
    return (
        type(name) is str
        and type(kind) is str
        and len(name) <= MAX_NAME
        and len(kind) <= MAX_NAME
        and type(number) is float
        and math.isfinite(number)
    )


def check_reply(reply: object, count: int) -> dict[str, Any]:
    """A clean copy of a batch reply for `count` rows; raises MalformedReply."""
    if not isinstance(reply, dict):
        raise MalformedReply("the reply is not an object")
    clean: dict[str, Any] = {"stdout": _text(reply.get("stdout", ""), MAX_OUTPUT, "the output")}
    clean["s"] = _finite(reply.get("s", 0.0), "the time taken")
    if "error" in reply:
        clean["error"] = _text(reply["error"], MAX_BATCH_ERROR, "the error")
        return clean
    scores = reply.get("scores")
    if not isinstance(scores, list) or len(scores) != count:
        raise MalformedReply(f"the reply does not hold exactly {count} scores")
    errors = _positions(reply.get("errors"), count, "errors")
    clean["scores"] = (
        scores
        if _all_finite_floats(scores)
        else [None if s is None else _finite(s, "a score") for s in scores]
    )
    clean["errors"] = {k: _text(v, MAX_ERROR, "a row's error") for k, v in errors.items()}
    for position, score in enumerate(clean["scores"]):
        if score is None and str(position) not in clean["errors"]:
            clean["errors"][str(position)] = "no score for this row"
    components = _positions(reply.get("components"), count, "components")
    for found in components.values():
        if type(found) is not list or len(found) > MAX_COMPONENTS:
            raise MalformedReply(f"a row has more than {MAX_COMPONENTS} metrics")
        if not all(map(_component_ok, found)):
            raise MalformedReply("a metric is not {name, value, type} of the allowed sizes")
    clean["components"] = components  # fresh from json.loads, checked: nothing else holds it
    return clean
