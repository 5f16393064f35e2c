"""Math with ground-truth verification (Bedrock template, Lambda style).

The model must put its final answer after "####". The reward is 1.0 when that number equals the
reference, with a small format bonus so that answers in the right shape are preferred even while
the arithmetic is still wrong.
"""

import re

FINAL_ANSWER = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")


def normalize(number):
    text = str(number).strip().lstrip("$").replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value.is_integer() else repr(value)


def reference_number(item):
    reference = item.get("reference_answer", (item.get("metadata") or {}).get("reference_answer"))
    if isinstance(reference, dict):
        reference = reference.get("final_answer", reference.get("answer"))
    if isinstance(reference, str) and "####" in reference:
        found = FINAL_ANSWER.search(reference)
        reference = found.group(1) if found else reference
    return None if reference is None else normalize(reference)


def lambda_handler(event, context):
    scores = []
    for item in event:
        messages = item.get("messages") or []
        text = messages[-1]["content"] if messages else ""
        found = FINAL_ANSWER.search(text)
        formatted = 1.0 if found else 0.0
        correct = 1.0 if found and normalize(found.group(1)) == reference_number(item) else 0.0
        scores.append(
            {
                "id": item["id"],
                "aggregate_reward_score": 0.9 * correct + 0.1 * formatted,
                "metrics_list": [
                    {"name": "correct", "value": correct, "type": "Reward"},
                    {"name": "format", "value": formatted, "type": "Reward"},
                ],
            }
        )
    return scores
