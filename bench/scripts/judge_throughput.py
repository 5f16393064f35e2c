"""The judge reward's throughput on our own `/v1` endpoint: one judge reward per concurrency, each
scoring the same batch through `score_batch`, as the trainer does.

Run in the console's data dir with `manage.py shell -c "$(cat bench/scripts/judge_throughput.py)"`
(reward_throughput.py), parameters from the environment: BENCH_BATCH (answers in the batch),
BENCH_PER_PROMPT (answers per prompt), BENCH_CONCURRENCY (a JSON list of judge concurrencies),
BENCH_URL (the console's address) and BENCH_KEY (an API key for its `/v1`). Prints one JSON line:
{concurrency: [rows/s, replies without a readable score]}.
"""

import json
import os
import time

from jobs.datasets.storage import read_rows
from jobs.models import Dataset
from rewards.scoring import score_batch
from rewards.services import create_reward
from rewards.types import Sample
from rftconsole.cli import first_admin

# The judge's prompt: {{...}} are the judge's own placeholders, filled for each row.
INSTRUCTIONS = (
    "Question:\n{{prompt}}\nReply: {{response}}\nExpected: {{reference_answer}}\nScore: <0-10>"
)


def main() -> None:
    batch, per_prompt = int(os.environ["BENCH_BATCH"]), int(os.environ["BENCH_PER_PROMPT"])
    url, key = os.environ["BENCH_URL"], os.environ["BENCH_KEY"]
    admin = first_admin()
    path = Dataset.objects.get(owner=admin, name="arithmetic-validation").path
    rows = read_rows(path)[: batch // per_prompt]
    answers = ["14 + 8 = 22. #### 22", "The answer is 22.", "22 cookies", "#### 21"]
    samples = [
        Sample(str(i), answers[i % len(answers)], rows[i // per_prompt]) for i in range(batch)
    ]
    results = {}
    for concurrency in json.loads(os.environ["BENCH_CONCURRENCY"]):
        config = {
            "judge_type": "endpoint",
            "base_url": f"{url}/v1",
            "model": "starter",
            "instructions": INSTRUCTIONS,
            "concurrency": concurrency,
            "max_tokens": 48,
            "max_retries": 0,
        }
        version = create_reward(
            admin, f"judge-{concurrency}", "judge", config=config, pass_threshold=0.7, api_key=key
        )
        score_batch(version, samples[:concurrency])  # warm up: the client and connections
        started = time.perf_counter()
        scored = score_batch(version, samples)
        seconds = time.perf_counter() - started
        failed = [r.error for r in scored if r.error and "judge endpoint" in r.error]
        assert not failed, failed[:3]
        unreadable = sum(r.error is not None for r in scored)
        results[concurrency] = [len(scored) / seconds, unreadable]
    print(json.dumps(results))


main()  # `manage.py shell -c` runs this text (its __name__ is not "__main__")
