"""`manage.py train CONFIG.(json|yaml)`: run a job headless, through the same task as the workers.

Prints one JSON line last: {"job", "status", "base", "final", "steps", "seconds"}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.actions import create_job
from jobs.models import Dataset, Job, MetricPoint, ModelEntry
from jobs.tasks import train_job
from jobs.training.preflight import JobConfigError
from rewards.models import RewardFunction
from rftconsole.cli import acting_user, owned_by_name

KNOWN_KEYS = {
    "name",
    "base_model",
    "train_dataset",
    "validation_dataset",
    "validation_split",
    "reward",
    "hyperparameters",
}


def load_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as error:
        raise CommandError(f"Cannot read {path}: {error.strerror}") from None
    try:
        config = yaml.safe_load(text) if path.suffix in {".yaml", ".yml"} else json.loads(text)
    except (yaml.YAMLError, ValueError) as error:
        raise CommandError(f"{path} is not valid {path.suffix[1:].upper()}: {error}") from None
    if not isinstance(config, dict):
        raise CommandError(f"{path} must hold a mapping of settings.")
    unknown = set(config) - KNOWN_KEYS
    if unknown:
        raise CommandError(f"Unknown keys in {path}: {', '.join(sorted(unknown))}.")
    return config


def eval_point(job: Job, step: int | None) -> dict[str, Any] | None:
    """Validation metrics at `step` (None: no output was published, so the last evaluation)."""
    points = MetricPoint.objects.filter(job=job, kind="eval")
    point = (
        points.filter(step=step).first() if step is not None else points.order_by("-step").first()
    )
    return {k: point.values[k] for k in ("accuracy", "mean_reward")} if point else None


class Command(BaseCommand):
    help = "Run a training job headless from a JSON or YAML config (see examples/)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("config", type=Path)
        parser.add_argument(
            "--user", help="Owner of the job and the named objects (default: first admin)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        owner = acting_user(options["user"])
        config = load_config(options["config"])
        for key in ("base_model", "train_dataset", "reward"):
            if key not in config:
                raise CommandError(f"{options['config']} needs `{key}`.")
        reward = owned_by_name(RewardFunction, owner, config["reward"], "reward")
        validation = config.get("validation_dataset")
        try:
            job = create_job(
                owner,
                str(config.get("name", options["config"].stem)),
                owned_by_name(ModelEntry, owner, config["base_model"], "base_model"),
                owned_by_name(Dataset, owner, config["train_dataset"], "train_dataset"),
                reward.latest_version(),
                owned_by_name(Dataset, owner, validation, "validation_dataset")
                if validation
                else None,
                float(config.get("validation_split", 0.1)),
                config.get("hyperparameters") or {},
                launch=False,
            )
        except JobConfigError as error:
            raise CommandError(
                "The config is invalid:\n"
                + "\n".join(f"  {k}: {v}" for k, v in error.errors.items())
            ) from None
        self.stdout.write(f"Job {job.pk} ({job.name}) running here; follow it in the console too.")
        train_job.apply(args=[job.pk])  # the workers' task, run in this process
        job.refresh_from_db()
        if job.status_reason:
            self.stdout.write(f"{job.get_status_display()}: {job.status_reason}")
        summary = {
            "job": job.pk,
            "status": job.status,
            "base": eval_point(job, 0),
            "final": eval_point(job, job.output_step),  # the published (best) checkpoint
            "steps": job.current_step,
            "seconds": round(job.training_seconds, 1),
        }
        self.stdout.write(json.dumps(summary))
