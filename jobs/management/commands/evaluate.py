"""`manage.py evaluate --model NAME --dataset NAME --reward NAME [--samples N]`.

Prints one JSON line last: {"accuracy": ..., "mean_reward": ..., "rows": ..., "seconds": ...}.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.models import Dataset, ModelEntry
from jobs.registry.loading import ModelLoadError, SamplingSettings
from jobs.training.evaluation import evaluate
from rewards.models import RewardFunction, RewardVersion
from rewards.types import RewardConfigError
from rftconsole.cli import acting_user, owned_by_name


class Command(BaseCommand):
    help = "Sample answers from a model on a dataset and score them with a reward."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True)
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--reward", required=True)
        parser.add_argument(
            "--samples", type=int, help="Evaluate a seeded random subset of N rows (default: all)."
        )
        parser.add_argument("--temperature", type=float, default=SamplingSettings.temperature)
        parser.add_argument("--max-tokens", type=int, default=SamplingSettings.max_new_tokens)
        parser.add_argument("--seed", type=int, default=SamplingSettings.seed)
        parser.add_argument(
            "--user", help="Whose objects the names refer to (default: first admin)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        owner = acting_user(options["user"])
        entry: ModelEntry = owned_by_name(ModelEntry, owner, options["model"], "--model")
        dataset: Dataset = owned_by_name(Dataset, owner, options["dataset"], "--dataset")
        reward: RewardFunction = owned_by_name(RewardFunction, owner, options["reward"], "--reward")
        if options["samples"] is not None and options["samples"] < 1:
            raise CommandError("--samples must be at least 1.")
        sampling = SamplingSettings(
            temperature=options["temperature"],
            max_new_tokens=options["max_tokens"],
            seed=options["seed"],
        )
        try:
            version: RewardVersion = reward.latest_version()
            result = evaluate(entry, dataset, version, options["samples"], sampling)
        except (ModelLoadError, RewardConfigError, RewardVersion.DoesNotExist) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(json.dumps(result.summary()))
