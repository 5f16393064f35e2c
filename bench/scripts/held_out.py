"""Held-out accuracy of the newest job: its base model, its published model (the checkpoint the job
chose by validation reward) and its last checkpoint answer the rows of a dataset the job never
read, with the job's own sampling settings and seed (`engine.sampling`: what its validation uses),
through the function jobs and `manage.py evaluate` share (`evaluate_loaded`), scored with the
job's reward version. The last checkpoint becomes a model as "Use as model" makes it.

Run in the job's data dir with `manage.py shell -c "$(cat bench/scripts/held_out.py)"`
(effectiveness.py), after `manage.py train`; BENCH_DATASET names the dataset (`arithmetic-test`).
Prints one JSON line: {"base" | "published" | "last": {"accuracy", "mean_reward", "rows",
"answer_tokens", "step", ...}}.
"""

import json
import os

from jobs.datasets.storage import read_rows
from jobs.models import Checkpoint, Dataset, Job, ModelEntry
from jobs.registry.checkpoints import checkpoint_as_model
from jobs.registry.loading import SamplingSettings, load_for_inference
from jobs.training.engine import sampling
from jobs.training.evaluation import evaluate_loaded
from jobs.training.hyperparameters import Hyperparameters


def score(entry: ModelEntry, job: Job, rows: list[dict], settings: SamplingSettings) -> dict:
    """evaluate()'s work on every row, plus the answers' mean length in tokens."""
    model, tokenizer = load_for_inference(entry)
    tokens: list[int] = []

    def measure(rows: list[dict], answers: list[str], results: list) -> None:
        tokens.extend(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)

    result = evaluate_loaded(model, tokenizer, rows, job.reward_version, settings, measure)
    return {**result.summary(), "answer_tokens": round(sum(tokens) / len(tokens), 2)}


def main() -> None:
    job = Job.objects.order_by("-pk").first()
    dataset = Dataset.objects.get(owner=job.owner, name=os.environ["BENCH_DATASET"])
    rows = read_rows(dataset.path)
    settings = sampling(Hyperparameters.of_snapshot(job.config))
    last = Checkpoint.objects.filter(job=job).order_by("-step").first()  # never pruned
    sides = {
        "base": (job.base_model, 0),
        "published": (job.output_model, job.output_step),
        "last": (checkpoint_as_model(job.owner, last), last.step),
    }
    print(
        json.dumps(
            {
                side: {**score(entry, job, rows, settings), "step": step}
                for side, (entry, step) in sides.items()
            }
        )
    )


main()  # `manage.py shell -c` runs this text (its __name__ is not "__main__")
