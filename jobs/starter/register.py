"""Register the starter model, the demo datasets and their rewards for one user (the admin)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser

from jobs.datasets.importer import register_dataset_file
from jobs.models import Dataset, ModelEntry
from jobs.registry.services import register_model
from jobs.starter.tasks import TASKS
from rewards.models import RewardFunction
from rewards.services import create_reward
from rftconsole.ownership import owned

STARTER_MODEL = "starter"

STARTER_REWARDS = {
    "arithmetic": ("final_answer_match", "1.0 when the number after #### equals the reference."),
    "extraction": (
        "json_fields",
        "Valid JSON, the row's schema, and values equal to the reference.",
    ),
    "support-tone": ("support_policy", "Polite, and cites the ticket number (rule version)."),
}
DATASET_DESCRIPTIONS = {
    "arithmetic": "Word problems; the answer must follow ####.",
    "extraction": "Sentences to JSON with name, age (number) and city.",
    "support-tone": "Support tickets; replies must be polite and cite the ticket number.",
}


SPLITS = ("train", "validation", "test")
SPLIT_NOTES = {
    "train": "train split",
    "validation": "validation split",
    # The demo jobs never read it, so it answers "how much better is the tuned model?" fairly.
    "test": "test split: held out, never trained on or used to choose a checkpoint; evaluate "
    "the base and the tuned model on it to compare them",
}


@dataclass
class Registered:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def starter_registered(owner: AbstractBaseUser) -> bool:
    return owned(ModelEntry, owner).filter(name=STARTER_MODEL).exists()


def register_starter(owner: AbstractBaseUser, artifacts: Path) -> Registered:
    """Create whatever is missing; existing objects with these names are left alone."""
    result = Registered()
    _register_model(owner, artifacts / "models" / STARTER_MODEL, result)
    for task in TASKS:
        for split in SPLITS:
            _register_dataset(owner, task, split, artifacts / "datasets", result)
        _register_reward(owner, task, result)
    return result


def _register_model(owner: AbstractBaseUser, path: Path, result: Registered) -> None:
    if owned(ModelEntry, owner).filter(name=STARTER_MODEL).exists():
        result.existing.append(f"model {STARTER_MODEL}")
        return
    description = (
        "Tiny Llama-architecture model trained offline on the demo tasks: "
        "often right, but in the required format only some of the time."
    )
    register_model(owner, str(path), STARTER_MODEL, description)
    result.created.append(f"model {STARTER_MODEL}")


def _register_dataset(
    owner: AbstractBaseUser, task: str, split: str, directory: Path, result: Registered
) -> None:
    name = f"{task}-{split}"
    if owned(Dataset, owner).filter(name=name).exists():
        result.existing.append(f"dataset {name}")
        return
    description = f"{DATASET_DESCRIPTIONS[task]} ({SPLIT_NOTES[split]})"
    register_dataset_file(
        owner, name, directory / f"{name}.jsonl", Dataset.Source.STARTER, description
    )
    result.created.append(f"dataset {name}")


def _register_reward(owner: AbstractBaseUser, task: str, result: Registered) -> None:
    if owned(RewardFunction, owner).filter(name=task).exists():
        result.existing.append(f"reward {task}")
        return
    grader, description = STARTER_REWARDS[task]
    create_reward(owner, task, RewardFunction.Kind.BUILTIN, description, config={"grader": grader})
    result.created.append(f"reward {task}")
