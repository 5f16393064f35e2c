"""Format validation and constraint checking (Bedrock template, Lambda style).

Checks the shape of an answer, not its truth. Each row may carry its own constraints as extra
fields (they reach the reward as metadata); the defaults below apply otherwise:
  max_words      upper bound on the answer's length in words
  must_include   list of strings the answer must contain
  must_not       list of strings the answer must not contain
  pattern        a regular expression the whole answer must match
The score is the share of constraints met, so partial progress still counts.
"""

import re

DEFAULTS = {"max_words": 120, "must_include": [], "must_not": [], "pattern": None}


def check(text, rules):
    results = {"length": len(text.split()) <= rules["max_words"]}
    lowered = text.lower()
    for phrase in rules["must_include"]:
        results[f"includes {phrase}"] = phrase.lower() in lowered
    for phrase in rules["must_not"]:
        results[f"avoids {phrase}"] = phrase.lower() not in lowered
    if rules["pattern"]:
        results["pattern"] = re.fullmatch(rules["pattern"], text.strip(), re.DOTALL) is not None
    return results


def lambda_handler(event, context):
    scores = []
    for item in event:
        messages = item.get("messages") or []
        text = messages[-1]["content"] if messages else ""
        metadata = item.get("metadata") or {}
        rules = {key: metadata.get(key, default) for key, default in DEFAULTS.items()}
        results = check(text, rules)
        met = sum(results.values())
        scores.append(
            {
                "id": item["id"],
                "aggregate_reward_score": met / len(results),
                "metrics_list": [
                    {"name": "constraints_met", "value": float(met), "type": "Metric"},
                    {"name": "length_ok", "value": float(results["length"]), "type": "Reward"},
                ],
            }
        )
    return scores
