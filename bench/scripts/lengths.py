"""Answer lengths before and after training: the newest job's base model and its published model
answer the validation prompts as the job's validation does (same sampling settings and seed).

Run in the task's data dir with `manage.py shell -c "$(cat bench/scripts/lengths.py)"`
(effectiveness.py), after `manage.py train`; no parameters. Prints one JSON line:
{"base": mean answer tokens, "tuned": mean answer tokens}.
"""

import json

from jobs.datasets.formats import prompt_messages
from jobs.datasets.storage import read_rows
from jobs.models import Job
from jobs.registry.loading import SamplingSettings, generate_answers, load_for_inference
from jobs.training.hyperparameters import Hyperparameters


def main() -> None:
    job = Job.objects.order_by("-pk").first()
    hp = Hyperparameters.of_snapshot(job.config)
    sampling = SamplingSettings(
        temperature=hp.temperature, max_new_tokens=hp.inference_max_tokens, seed=hp.seed
    )
    prompts = [prompt_messages(row) for row in read_rows(job.validation_dataset.path)]
    lengths = {}
    for side, entry in (("base", job.base_model), ("tuned", job.output_model)):
        model, tokenizer = load_for_inference(entry)
        answers = generate_answers(model, tokenizer, prompts, sampling)
        tokens = [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]
        lengths[side] = sum(tokens) / len(tokens)
    print(json.dumps(lengths))


main()  # `manage.py shell -c` runs this text (its __name__ is not "__main__")
