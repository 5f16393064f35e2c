"""OpenAI grader templates: `{{sample.output_text}}`, `{{sample.output_json.a.b}}`, `{{item.x.y}}`.

The sample namespace is the sampled text (and its JSON, when it parses); the item namespace is the
dataset row. A value that is not text is written as JSON, as OpenAI does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# No brace inside a placeholder, and the spaces stripped after matching: `\s*(.*?)\s*` backtracked
# in cubic time on "{{" and thousands of spaces with no closing braces (minutes of CPU a request).
PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")
_NAME = re.compile(r"(?:sample\.output_text|sample\.output_json|item)(?:\.[^.\s{}]+)*")
_NOT_JSON = object()


class TemplateError(ValueError):
    """A variable that cannot be filled in; `kind` is OpenAI's error flag for it."""

    def __init__(self, message: str, kind: str = "invalid_variable_error") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Context:
    """What templates read: the sampled text and the dataset item."""

    output_text: str
    item: dict[str, Any]
    output_json: Any = field(init=False)

    def __post_init__(self) -> None:
        try:
            self.output_json = json.loads(self.output_text)
        except (ValueError, RecursionError):
            self.output_json = _NOT_JSON


def variable_problem(name: str) -> str | None:
    """Why `{{name}}` can never be filled in, or None when it names a known namespace."""
    if name.startswith("sample.output_text.") or not _NAME.fullmatch(name):
        return (
            f"unknown template variable {{{{{name}}}}}: use {{{{sample.output_text}}}}, "
            "{{sample.output_json.KEY}} or {{item.KEY}}"
        )
    return None


def template_problems(text: str) -> list[str]:
    return [p for name in PLACEHOLDER.findall(text) if (p := variable_problem(name.strip()))]


def _walk(value: Any, path: list[str], shown: str) -> Any:
    for key in path:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise TemplateError(f"{{{{{shown}}}}}: there is no {key!r} in this sample or item")
    return value


def lookup(name: str, context: Context) -> Any:
    problem = variable_problem(name)
    if problem:
        raise TemplateError(problem)
    parts = name.split(".")
    if parts[:2] == ["sample", "output_text"]:
        return context.output_text
    if parts[0] == "item":
        return _walk(context.item, parts[1:], name)
    if context.output_json is _NOT_JSON:
        raise TemplateError(
            f"{{{{{name}}}}}: the sample is not valid JSON", kind="sample_parse_error"
        )
    return _walk(context.output_json, parts[2:], name)


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render(template: str, context: Context) -> str:
    """The template with every variable filled in, in one pass (a value that itself contains
    "{{item.x}}" stays as it is)."""
    return PLACEHOLDER.sub(lambda match: as_text(lookup(match.group(1).strip(), context)), template)
