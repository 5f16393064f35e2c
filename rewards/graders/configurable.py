"""Configurable built-in graders (OpenAI-grader-like): string check, number match, JSON Schema,
text similarity, and a multi-grader that combines named graders with a formula.

Options come from the reward version's config; `reference` defaults to the row's reference answer.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import operator
import re
from collections import Counter
from typing import Any

from rewards.graders import safe_regex, safe_schema
from rewards.graders.simple import (
    _FINAL_ANSWER,
    Grade,
    Row,
    _parse_json_object,
    expected_final_answer,
    normalize_number,
)

_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


def _reference_text(row: Row, options: dict[str, Any]) -> str:
    reference = options.get("reference", row.get("reference_answer", ""))
    return reference if isinstance(reference, str) else json.dumps(reference)


def string_check(output: str, row: Row, **options: Any) -> Grade:
    """eq / ne / contains / regex against the reference, case-sensitive unless told otherwise.

    `regex` runs on RE2 (see `rewards.graders.safe_regex`): the pattern searches the first 100,000
    characters of the raw output; a pattern RE2 refuses is a per-row error.

    >>> string_check("Paris", {"reference_answer": "paris"}, operation="eq").score
    1.0
    >>> string_check("Paris", {"reference_answer": "paris"}, case_sensitive=True).score
    0.0
    """
    operation = options.get("operation", "eq")
    reference, text = _reference_text(row, options), output.strip()
    if not options.get("case_sensitive", False):
        reference, text = reference.lower(), text.lower()
    checks = {
        "eq": lambda: text == reference.strip(),
        "ne": lambda: text != reference.strip(),
        "contains": lambda: reference in text,
        "regex": lambda: safe_regex.search(options.get("pattern", reference), output),
    }
    if operation not in checks:
        raise ValueError(f"operation must be one of {', '.join(checks)}")
    passed = bool(checks[operation]())
    return Grade(float(passed)).component(operation, float(passed))


def number_match(output: str, row: Row, **options: Any) -> Grade:
    """The answer's number (after ####, else the last number) within a tolerance of the reference.

    >>> number_match("about 3.14", {"reference_answer": "3.1416"}, tolerance=0.01).score
    1.0
    """
    final = _FINAL_ANSWER.search(output)
    numbers = _NUMBER.findall(output)
    found = final.group(1) if final else (numbers[-1] if numbers else None)
    expected = (
        expected_final_answer(row) if "reference" not in options else str(options["reference"])
    )
    if found is None or expected is None:
        return Grade(0.0).component("match", 0.0)
    try:
        got, want = float(normalize_number(found)), float(normalize_number(expected))
    except ValueError:
        return Grade(0.0).component("match", 0.0)
    tolerance = float(options.get("tolerance", 0.0))
    relative = float(options.get("relative_tolerance", 0.0))
    passed = math.isclose(got, want, abs_tol=tolerance, rel_tol=relative) or got == want
    return (
        Grade(float(passed))
        .component("match", float(passed))
        .component("error", abs(got - want), "Metric")
    )


def json_schema(output: str, row: Row, **options: Any) -> Grade:
    """Valid JSON that satisfies a JSON Schema (from the options or the row's `schema`).

    Nothing is fetched: a `$ref` outside the schema (e.g. an http URL) raises SchemaProblem, a
    ValueError, so that row scores 0 with the reason as its error.
    """
    schema = options.get("schema") or row.get("schema") or {}
    value = _parse_json_object(output)
    if value is None:
        return Grade(0.0).component("valid_json", 0.0).component("schema", 0.0)
    if not safe_schema.validate(value, schema):
        return Grade(0.3).component("valid_json", 1.0).component("schema", 0.0)
    return Grade(1.0).component("valid_json", 1.0).component("schema", 1.0)


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(candidate: str, reference: str) -> float:
    """Sentence BLEU-4 with add-one smoothing and a brevity penalty.

    >>> bleu("the cat sat on the mat", "the cat sat on the mat")
    1.0
    """
    cand, ref = candidate.split(), reference.split()
    if not cand or not ref:
        return 0.0
    precisions = []
    for n in range(1, 5):
        overlap = sum((_ngrams(cand, n) & _ngrams(ref, n)).values())
        total = max(len(cand) - n + 1, 0)
        precisions.append((overlap + 1) / (total + 1) if n > 1 else overlap / len(cand))
    if min(precisions) == 0:
        return 0.0
    brevity = 1.0 if len(cand) > len(ref) else math.exp(1 - len(ref) / len(cand))
    return round(brevity * math.exp(sum(math.log(p) for p in precisions) / 4), 6)


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over words (longest common subsequence)."""
    cand, ref = candidate.split(), reference.split()
    if not cand or not ref:
        return 0.0
    lcs = sum(
        block.size
        for block in difflib.SequenceMatcher(a=cand, b=ref, autojunk=False).get_matching_blocks()
    )
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 0.0 if lcs == 0 else round(2 * precision * recall / (precision + recall), 6)


def text_similarity(output: str, row: Row, **options: Any) -> Grade:
    """fuzzy (character ratio), bleu, rouge_l, or cosine (sentence embeddings) vs the reference."""
    metric = options.get("metric", "fuzzy")
    reference = _reference_text(row, options)
    measures = {
        "fuzzy": lambda: difflib.SequenceMatcher(a=output.strip(), b=reference.strip()).ratio(),
        "bleu": lambda: bleu(output, reference),
        "rouge_l": lambda: rouge_l(output, reference),
        "cosine": lambda: _cosine(output, reference),
    }
    if metric not in measures:
        raise ValueError(f"metric must be one of {', '.join(measures)}")
    value = float(measures[metric]())
    return Grade(round(value, 6)).component(metric, value)


def _cosine(output: str, reference: str) -> float:
    from rewards.graders.embeddings import cosine_similarity  # loads torch weights: only when asked

    return cosine_similarity(output, reference)


_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_FUNCTIONS = {"min": min, "max": max, "abs": abs}


def evaluate_formula(formula: str, values: dict[str, float]) -> float:
    """Arithmetic on named scores: + - * / min max abs, numbers and names only.

    >>> evaluate_formula("0.5 * format + 0.5 * max(correct, 0)", {"format": 1, "correct": 0})
    0.5
    """

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id in values:
            return float(values[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS
        ):
            return float(_FUNCTIONS[node.func.id](*(walk(arg) for arg in node.args)))
        raise ValueError(f"not allowed in a formula: {ast.unparse(node)!r}")

    return walk(ast.parse(formula, mode="eval"))
