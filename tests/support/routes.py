"""Enumerate every installed URL pattern, so access tests pick up new routes automatically."""

from __future__ import annotations

import re
from collections.abc import Iterator

from django.urls import URLPattern, URLResolver, get_resolver

_CONVERTER = re.compile(r"<(?:(?P<conv>\w+):)?(?P<name>\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<\w+>[^)]*\)")
_SAMPLE = {
    "int": "1",
    "str": "sample",
    "slug": "sample",
    "uuid": "00000000-0000-0000-0000-000000000001",
    "path": "sample",
}


def _sample_path(route: str) -> str:
    return _CONVERTER.sub(lambda m: _SAMPLE.get(m.group("conv") or "str", "sample"), route)


def _walk(patterns: list[URLPattern | URLResolver], prefix: str) -> Iterator[str]:
    for pattern in patterns:
        route = str(pattern.pattern)
        if "(?P<format>" in route or ":format>" in route:
            continue  # the ".json" twin of a route already listed
        if route.startswith("^"):  # regex routes (DRF router): fill named groups with a sample
            route = _REGEX_GROUP.sub("1", route.lstrip("^").rstrip("$"))
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + route)
        else:
            yield "/" + _sample_path(prefix + route)


def all_paths() -> list[str]:
    return sorted(set(_walk(get_resolver().url_patterns, "")))


def _walk_templates(patterns: list[URLPattern | URLResolver], prefix: str) -> Iterator[str]:
    for pattern in patterns:
        route = str(pattern.pattern)
        if "(?P<format>" in route or ":format>" in route:
            continue
        if route.startswith("^"):  # DRF router: `(?P<pk>[^/.]+)` becomes `<pk>`
            route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", route.lstrip("^").rstrip("$"))
        if isinstance(pattern, URLResolver):
            yield from _walk_templates(pattern.url_patterns, prefix + route)
        else:
            yield "/" + prefix + route


def route_templates() -> list[str]:
    """Every route with its parameters left in: `/datasets/<int:dataset_id>/rows/`."""
    return sorted(set(_walk_templates(get_resolver().url_patterns, "")))


def parameter_names(template: str) -> list[str]:
    return [match.group("name") for match in _CONVERTER.finditer(template)]


def fill(template: str, values: dict[str, str]) -> str:
    return _CONVERTER.sub(lambda m: values[m.group("name")], template)
