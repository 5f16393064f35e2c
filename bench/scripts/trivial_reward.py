"""The trivial reward of reward_throughput.py: a Bedrock Lambda handler that gives every answer
1.0, so that the bench measures the transport, not the reward.

Not run as a script: reward_throughput.py reads this text (`common.script("trivial_reward")`) and
gives it as user reward code both to the sandbox and to its in-process baseline. Prints nothing.
"""


def lambda_handler(event, context):
    return [{"id": item["id"], "aggregate_reward_score": 1.0} for item in event]
