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
from collections.abc import Callable
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


# difflib's matching is quadratic (worse for fuzzy on text of few repeated characters), so these
# two read a bounded prefix: a request- or answer-sized text could otherwise pin a core for minutes.
ROUGE_L_MAX_WORDS = 2_000
FUZZY_MAX_CHARS = 2_000


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over words (longest common subsequence), over the first ROUGE_L_MAX_WORDS
    words of each side."""
    cand = candidate.split()[:ROUGE_L_MAX_WORDS]
    ref = reference.split()[:ROUGE_L_MAX_WORDS]
    if not cand or not ref:
        return 0.0
    lcs = sum(
        block.size
        for block in difflib.SequenceMatcher(a=cand, b=ref, autojunk=False).get_matching_blocks()
    )
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 0.0 if lcs == 0 else round(2 * precision * recall / (precision + recall), 6)


def gleu(candidate: str, reference: str) -> float:
    """Sentence GLEU (Google BLEU, Wu et al. 2016): of all 1- to 4-grams, the lower of the
    matched share of the candidate's and of the reference's.

    >>> gleu("the cat sat", "the cat sat")
    1.0
    """
    cand, ref = candidate.split(), reference.split()
    found = sum((_ngrams(cand, n) for n in range(1, 5)), Counter())
    wanted = sum((_ngrams(ref, n) for n in range(1, 5)), Counter())
    if not found or not wanted:
        return 0.0
    matched = sum((found & wanted).values())
    return round(min(matched / sum(found.values()), matched / sum(wanted.values())), 6)


def rouge_n(candidate: str, reference: str, n: int) -> float:
    """ROUGE-N F1 over words: n-gram overlap with the reference.

    >>> rouge_n("the cat sat", "the cat ran", 1)
    0.666667
    """
    found, wanted = _ngrams(candidate.split(), n), _ngrams(reference.split(), n)
    overlap = sum((found & wanted).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(found.values()), overlap / sum(wanted.values())
    return round(2 * precision * recall / (precision + recall), 6)


def _rouge(n: int) -> Callable[[str, str], float]:
    return lambda candidate, reference: rouge_n(candidate, reference, n)


SIMILARITY: dict[str, Callable[[str, str], float]] = {
    "fuzzy": lambda output, reference: difflib.SequenceMatcher(
        a=output.strip()[:FUZZY_MAX_CHARS], b=reference.strip()[:FUZZY_MAX_CHARS]
    ).ratio(),
    "bleu": bleu,
    "gleu": gleu,
    **{f"rouge_{n}": _rouge(n) for n in range(1, 6)},
    "rouge_l": rouge_l,
    "cosine": lambda output, reference: _cosine(output, reference),
}


def text_similarity(output: str, row: Row, **options: Any) -> Grade:
    """One of SIMILARITY's measures (fuzzy character ratio, BLEU, GLEU, ROUGE-1…5, ROUGE-L, or
    cosine of sentence embeddings) of the answer against the reference."""
    metric = options.get("metric", "fuzzy")
    reference = _reference_text(row, options)
    if metric not in SIMILARITY:
        raise ValueError(f"metric must be one of {', '.join(SIMILARITY)}")
    value = float(SIMILARITY[metric](output, reference))
    return Grade(round(value, 6)).component(metric, value)


def _cosine(output: str, reference: str) -> float:
    from rewards.graders.embeddings import cosine_similarity  # loads torch weights: only when asked

    return cosine_similarity(output, reference)


_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
# OpenAI's calculate_output functions; outside its domain each raises ValueError or OverflowError.
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil,
    "exp": math.exp, "sqrt": math.sqrt, "log": math.log,
}  # fmt: skip


MAX_FORMULA_CHARS = 1_000
MAX_FORMULA_NODES = 300


def evaluate_formula(formula: str, values: dict[str, float]) -> float:
    """Arithmetic on named scores: + - * / ** and min max abs floor ceil exp sqrt log, numbers
    and names only. A result that is not a real number (e.g. (-8) ** 0.5) is a ValueError.

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

    if len(formula) > MAX_FORMULA_CHARS:
        raise ValueError(
            f"the formula is {len(formula):,} characters; at most {MAX_FORMULA_CHARS:,}"
        )
    tree = ast.parse(formula, mode="eval")
    # `walk` recurses once per node: a bound on the nodes keeps `-` × 900 off Python's stack.
    if sum(1 for _ in ast.walk(tree)) > MAX_FORMULA_NODES:
        raise ValueError(f"the formula has more than {MAX_FORMULA_NODES} parts")
    try:
        value = walk(tree)
    except ArithmeticError as error:  # x / 0, exp(1000): that row's error, as a ValueError
        raise ValueError(f"the formula cannot be computed: {error}") from None
    if not isinstance(value, float | int):  # a negative base to a fractional power is complex
        raise ValueError(f"the formula's value {value!r} is not a real number")
    return float(value)
