"""Math answer, checked with SymPy (Lambda style): equal in value, not just in spelling.

The final answer (after "####", or the last line) is compared with the reference answer as
mathematics: "1/2" equals "0.5", "2*(x + 2)" equals "2*x + 4", "sqrt(8)" equals "2*sqrt(2)".
SymPy is one of the curated libraries the sandbox offers; anything it cannot parse scores 0 with
the reason in the row's metrics output.
"""

import re

from sympy import nsimplify, simplify
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

FINAL_ANSWER = re.compile(r"####\s*(.+)")
TRANSFORMS = (*standard_transformations, implicit_multiplication_application, convert_xor)


def final_answer(text):
    found = FINAL_ANSWER.search(text or "")
    answer = found.group(1) if found else (text or "").strip().splitlines()[-1:] or [""]
    answer = answer if isinstance(answer, str) else answer[0]
    return answer.strip().rstrip(".").replace("$", "").replace(",", "")


def reference_of(item):
    reference = item.get("reference_answer", (item.get("metadata") or {}).get("reference_answer"))
    if isinstance(reference, dict):
        reference = reference.get("final_answer", reference.get("answer"))
    return final_answer(str(reference)) if reference is not None else None


def parse(text):
    if len(text) > 200:  # parsing is not linear in length; long answers are not final answers
        raise ValueError("answer longer than 200 characters")
    return nsimplify(parse_expr(text, transformations=TRANSFORMS, evaluate=True), rational=True)


def equivalent(answer, reference):
    return simplify(parse(answer) - parse(reference)) == 0


def lambda_handler(event, context):
    results = []
    for item in event:
        messages = item.get("messages") or []
        answer = final_answer(messages[-1]["content"] if messages else "")
        reference = reference_of(item)
        try:
            correct = 1.0 if reference is not None and equivalent(answer, reference) else 0.0
            parsed = 1.0
        except Exception as error:  # an unparsable answer scores 0; say why
            print(f"{item['id']}: could not compare {answer!r}: {type(error).__name__}")
            correct, parsed = 0.0, 0.0
        results.append(
            {
                "id": item["id"],
                "aggregate_reward_score": correct,
                "metrics_list": [
                    {"name": "equivalent", "value": correct, "type": "Reward"},
                    {"name": "parsable", "value": parsed, "type": "Metric"},
                ],
            }
        )
    return results
