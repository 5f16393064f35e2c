"""Built-in graders: our own code, so they run in-process (user code never does).

Each grader takes the sampled answer and the training row and returns a `Grade`: an aggregate score
in [0, 1] plus named components (type "Reward" feeds the charts; "Metric" is only logged).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]


@dataclass
class Grade:
    score: float
    components: list[dict[str, Any]] = field(default_factory=list)

    def component(self, name: str, value: float, kind: str = "Reward") -> Grade:
        self.components.append({"name": name, "value": value, "type": kind})
        return self


# Not `####\s*\$?\s*…`: with the `$` absent its two `\s*` split a run of spaces every possible
# way, and "####" followed by 100,000 spaces took minutes; here each space has one place to go.
_FINAL_ANSWER = re.compile(r"####\s*(?:\$\s*)?(-?[\d,]*\.?\d+)")


def normalize_number(text: str) -> str:
    """Canonical text of a number: no thousands separators, no trailing zeros.

    >>> normalize_number("1,234.50")
    '1234.5'
    >>> normalize_number("$7")
    '7'
    """
    cleaned = text.strip().lstrip("$").replace(",", "")
    try:
        value = float(cleaned)
    except ValueError:
        return cleaned
    return str(int(value)) if value.is_integer() else repr(value)


def expected_final_answer(row: Row) -> str | None:
    """The reference number, from any of the shapes Bedrock users store it in.

    >>> expected_final_answer({"reference_answer": {"final_answer": "4"}})
    '4'
    >>> expected_final_answer({"reference_answer": "48/2 = 24\\n#### 72"})
    '72'
    >>> expected_final_answer({"reference_answer": 13, "ground_truth": "13"})
    '13'
    """
    reference = row.get("reference_answer")
    if isinstance(reference, dict):
        reference = reference.get("final_answer", reference.get("answer"))
    if isinstance(reference, str):
        match = _FINAL_ANSWER.search(reference)
        return normalize_number(match.group(1) if match else reference)
    if isinstance(reference, int | float):
        return normalize_number(str(reference))
    ground_truth = row.get("ground_truth")
    return normalize_number(str(ground_truth)) if ground_truth is not None else None


def final_answer_match(output: str, row: Row, **_: Any) -> Grade:
    """1.0 when the number after "####" equals the reference answer.

    >>> final_answer_match("3 + 4 = 7\\n#### 7", {"reference_answer": {"final_answer": "7"}}).score
    1.0
    >>> final_answer_match("The answer is 7.", {"reference_answer": {"final_answer": "7"}}).score
    0.0
    """
    match = _FINAL_ANSWER.search(output)
    expected = expected_final_answer(row)
    correct = bool(match) and expected is not None and normalize_number(match.group(1)) == expected
    grade = Grade(1.0 if correct else 0.0)
    grade.component("correct", float(correct)).component("has_final_answer", float(bool(match)))
    return grade.component("length", float(len(output)), "Metric")


def _unfenced(text: str) -> str:
    """The inside of a ```json … ``` block, else the text. String operations, not the regex
    ```(?:json)?\\s*(.*?)\\s*``` this replaces: on "```" and a few thousand spaces that one
    backtracked for seconds to minutes (2,000 spaces: 5 s), in the web process's playground."""
    if len(text) < 6 or not (text.startswith("```") and text.endswith("```")):
        return text
    inner = text[3:-3]
    return inner.removeprefix("json").strip()


def _parse_json_object(output: str) -> dict[str, Any] | None:
    text = _unfenced(output.strip())
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def _schema_ok(value: dict[str, Any], schema: dict[str, Any]) -> bool:
    if any(key not in value for key in schema.get("required", [])):
        return False
    for key, spec in schema.get("properties", {}).items():
        check = _JSON_TYPES.get(spec.get("type", ""))
        if key in value and check is not None and not check(value[key]):
            return False
    return True


def json_fields(output: str, row: Row, **_: Any) -> Grade:
    """Valid JSON (0.2) + matches the row's `schema` (0.3) + fraction of reference values (0.5).

    >>> row = {"reference_answer": {"name": "Ana", "age": 30},
    ...        "schema": {"required": ["name", "age"], "properties": {"age": {"type": "integer"}}}}
    >>> json_fields('{"name": "Ana", "age": 30}', row).score
    1.0
    >>> json_fields('{"name": "Ana", "age": "30"}', row).score
    0.45
    """
    reference = row.get("reference_answer")
    expected = reference if isinstance(reference, dict) else {}
    schema = row.get("schema") or {"required": sorted(expected)}
    value = _parse_json_object(output)
    valid = value is not None
    schema_ok = valid and _schema_ok(value, schema)  # type: ignore[arg-type]
    matched = sum(1 for k, v in expected.items() if valid and value.get(k) == v)  # type: ignore[union-attr]
    values = matched / len(expected) if expected else float(valid)
    score = round(0.2 * valid + 0.3 * schema_ok + 0.5 * values, 6)
    grade = Grade(score).component("valid_json", float(valid))
    return grade.component("schema", float(schema_ok)).component("values", values)


_POLITE = re.compile(r"\b(sorry|apologi[sz]e|thank|thanks|please|happy to help)\b", re.IGNORECASE)


def support_policy(output: str, row: Row, **_: Any) -> Grade:
    """Rule check for support replies: cites the ticket (0.5) and is polite (0.5).

    >>> row = {"reference_answer": {"ticket": "#1234"}}
    >>> support_policy("Sorry! We are on ticket #1234.", row).score
    1.0
    """
    reference = row.get("reference_answer")
    ticket = str(reference.get("ticket", "")) if isinstance(reference, dict) else str(reference)
    cites = bool(ticket) and ticket in output
    polite = bool(_POLITE.search(output))
    grade = Grade(0.5 * cites + 0.5 * polite)
    return grade.component("cites_ticket", float(cites)).component("polite", float(polite))
