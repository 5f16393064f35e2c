"""JSON Schema validation that never fetches anything and never runs a regex on Python's `re`.

`jsonschema.validate` resolves a `$ref` it does not hold by fetching it with urllib (deprecated,
but still the default): a schema from a reward config or a dataset row could make a worker or the
web process request any URL, and the score would tell reachable from unreachable. Here every
validator gets a registry whose `retrieve` refuses, so only refs inside the schema itself
(`#/$defs/...`, the drafts' own meta-schemas) resolve.

jsonschema also runs `pattern` and `patternProperties` with `re.search`: those keywords are
replaced by RE2 versions (see `rewards.graders.safe_regex`).

Local refs alone can still make validation exponential (each level of `anyOf` over two refs to the
next level doubles the work: 30 levels would take days), or endless (`{"$ref": "#"}`). So every
keyword checked counts against a budget of MAX_SCHEMA_STEPS per validation, and running past it,
or recursing without end, is a SchemaProblem (that row's error), never a blocked process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import jsonschema
import referencing
import referencing.exceptions
from jsonschema import ValidationError
from jsonschema.validators import extend, validator_for

from rewards.graders import safe_regex

Schema = dict[str, Any] | bool
Keyword = Callable[[Any, Any, Any, Any], Any]

# Keyword checks one validation may make: a real schema on a real answer needs tens to a few
# thousand (300 objects of two fields: 1,500). Following a $ref costs ten (it is that much slower).
# The budget is spent within about a tenth of a second, so no schema holds a process longer.
MAX_SCHEMA_STEPS = 10_000
_REF_COST = 10
_steps_left: ContextVar[list[int]] = ContextVar("schema_steps_left")
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


class SchemaProblem(ValueError):
    """A schema this console will not use (remote `$ref`, invalid, unsupported); says why."""


def _refuse_remote(uri: str) -> referencing.Resource[Any]:
    raise SchemaProblem(f"remote $ref is not allowed: {uri}")


# The drafts' meta-schemas are added by jsonschema itself (SPECIFICATIONS.combine); nothing else.
NO_FETCH = referencing.Registry(retrieve=_refuse_remote)  # type: ignore[call-arg]


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not safe_regex.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _matched(patterns: Any, name: str) -> bool:
    return any(safe_regex.search(pattern, name) for pattern in patterns)


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if safe_regex.search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, allowed: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    """jsonschema's own, with its `re.search` over patternProperties done on RE2."""
    if not validator.is_type(instance, "object"):
        return
    known, patterns = schema.get("properties", {}), schema.get("patternProperties", {})
    extras = [k for k in instance if k not in known and not _matched(patterns, k)]
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        listed = ", ".join(repr(extra) for extra in sorted(extras))
        yield ValidationError(f"Additional properties are not allowed ({listed} unexpected)")


_SAFE_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}


def _counted(keyword: Keyword, cost: int) -> Keyword:
    """The keyword's check, spending its cost from this validation's budget first."""

    def check(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        left = _steps_left.get()
        left[0] -= cost
        if left[0] < 0:
            raise SchemaProblem(
                f"the JSON Schema needs more than {MAX_SCHEMA_STEPS:,} checks for this answer "
                "(nested anyOf/oneOf over $refs multiply the work): simplify it."
            )
        return keyword(validator, value, instance, schema)

    return check


def _checker_class(schema: Schema) -> Any:
    base = validator_for(schema)
    keywords = {**base.VALIDATORS, **_SAFE_KEYWORDS}
    counted = {
        name: _counted(check, _REF_COST if name in _REF_KEYWORDS else 1)
        for name, check in keywords.items()
    }
    return extend(base, validators=counted)


def _subschemas(schema: Any) -> Iterator[dict[str, Any]]:
    """Every object in the schema (values of any keyword), depth first."""
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _subschemas(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _subschemas(value)


def schema_problems(schema: Any) -> list[str]:
    """What makes a schema unusable here, without validating anything against it."""
    if not isinstance(schema, dict | bool):
        return ["the JSON Schema must be an object."]
    problems: list[str] = []
    uses_pattern_properties = False
    for part in _subschemas(schema):
        for keyword in _REF_KEYWORDS:
            ref = part.get(keyword)
            if isinstance(ref, str) and not ref.startswith("#"):
                problems.append(f"remote {keyword} is not allowed: {ref} (use #/$defs/...).")
        if isinstance(part.get("pattern"), str):
            problems.append(safe_regex.pattern_problem(part["pattern"]) or "")
        if isinstance(part.get("patternProperties"), dict):
            uses_pattern_properties = True
            problems += [safe_regex.pattern_problem(p) or "" for p in part["patternProperties"]]
    if uses_pattern_properties and any("unevaluatedProperties" in p for p in _subschemas(schema)):
        problems.append("unevaluatedProperties cannot be combined with patternProperties here.")
    try:
        validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as error:
        problems.append(f"the JSON Schema is invalid: {error.message}")
    return [problem for problem in problems if problem]


def _refusal_in(error: BaseException) -> SchemaProblem:
    """Our refusal, from under referencing's and jsonschema's wrappers, else a plain one."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, SchemaProblem):
            return cause
        cause = cause.__cause__
    return SchemaProblem(f"cannot resolve $ref: {error}")


def validate(instance: Any, schema: Schema) -> bool:
    """Whether the instance satisfies the schema; SchemaProblem when the schema cannot be used."""
    problems = schema_problems(schema)
    if problems:  # remote refs are caught here, and by the registry should this walk miss one
        raise SchemaProblem(problems[0])
    checker = _checker_class(schema)(schema, registry=NO_FETCH)
    budget = _steps_left.set([MAX_SCHEMA_STEPS])
    try:
        return checker.is_valid(instance)
    except referencing.exceptions.Unresolvable as error:
        raise _refusal_in(error) from None
    except safe_regex.RegexError as error:
        raise SchemaProblem(str(error)) from None
    except RecursionError:
        raise SchemaProblem("the JSON Schema refers to itself without end ($ref loop).") from None
    finally:
        _steps_left.reset(budget)
