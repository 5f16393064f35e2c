"""Generic reward Lambda (Bedrock template). Runs unchanged on Amazon Bedrock and here.

Bedrock sends a batch: each item has an "id", the "messages" (the conversation, the model's
answer last), and the row's other fields in "metadata" (reference_answer included; we also put
it at the item's top level, as some Lambdas expect).
Return one score per item. "metrics_list" entries of type "Reward" become their own chart curves;
type "Metric" is logged with each rollout. print() output shows up in the test bench.
"""


def score(answer, reference, metadata):
    """Replace this with your check. Return a number; higher is better (0..1 is customary)."""
    if reference is None:
        return 0.0
    return 1.0 if str(reference).strip().lower() in answer.lower() else 0.0


def lambda_handler(event, context):
    scores = []
    for item in event:
        messages = item.get("messages") or []
        answer = messages[-1]["content"] if messages else ""
        metadata = item.get("metadata") or {}
        reference = item.get("reference_answer", metadata.get("reference_answer"))
        value = score(answer, reference, metadata)
        scores.append(
            {
                "id": item["id"],
                "aggregate_reward_score": value,
                "metrics_list": [
                    {"name": "match", "value": value, "type": "Reward"},
                    {"name": "answer_chars", "value": float(len(answer)), "type": "Metric"},
                ],
            }
        )
    return scores
