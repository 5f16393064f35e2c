"""The job wizard's steps: what each asks, how its answers are checked, and the final launch.

Answers live in a `JobDraft` (ids and plain values), so a user can leave and come back; every step
is checked on the server with a message per field, and the last step runs the same pre-flight
checks as the API before anything is queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import QueryDict

from jobs.actions import create_job
from jobs.datasets.storage import iter_rows
from jobs.models import Dataset, Job, JobDraft, MetricPoint, ModelEntry
from jobs.registry.loading import load_tokenizer, tokenizer_dir
from jobs.training import hyperparameters
from jobs.training.preflight import JobConfigError, default_profile
from jobs.training.schedule import held_out, prompts_per_step, total_steps, usable_rows
from rewards.models import RewardFunction, RewardVersion
from rftconsole.ownership import owned


@dataclass(frozen=True)
class Step:
    slug: str
    title: str


STEPS = [
    Step("basics", "Name and base model"),
    Step("data", "Training data"),
    Step("reward", "Reward"),
    Step("hyperparameters", "Hyperparameters"),
    Step("security", "Security"),
    Step("review", "Review and create"),
]
SLUGS = [step.slug for step in STEPS]
# Which step fixes a problem that the final checks report for a field.
FIELD_STEP = {
    "name": "basics",
    "base_model": "basics",
    "train_dataset": "data",
    "validation_dataset": "data",
    "validation_split": "data",
    "reward": "reward",
}
Errors = dict[str, str]


def _owned_pk(model: type, owner: AbstractBaseUser, value: str | None) -> Any:
    try:
        return owned(model, owner).filter(pk=int(value or "")).first()
    except ValueError:
        return None


def check_step(draft: JobDraft, slug: str, post: QueryDict) -> Errors:
    """Check one step's answers; on success they are saved into the draft."""
    checker = {
        "basics": _basics,
        "data": _data,
        "reward": _reward,
        "hyperparameters": _hyperparameters,
        "security": lambda draft, post: ({}, {}),
    }[slug]
    answers, errors = checker(draft, post)
    if not errors:
        draft.data.update(answers)
        draft.name = draft.data.get("name", draft.name)
        if slug not in draft.completed:
            draft.completed.append(slug)
        draft.save()
    return errors


def _basics(draft: JobDraft, post: QueryDict) -> tuple[dict, Errors]:
    name, errors = post.get("name", "").strip(), {}
    if not name or len(name) > 100:
        errors["name"] = "Give the job a name of 1 to 100 characters."
    base = _owned_pk(ModelEntry, draft.owner, post.get("base_model"))
    if base is None:
        errors["base_model"] = "Choose one of your models."
    elif base.status != ModelEntry.Status.READY:
        errors["base_model"] = f"{base.name} is {base.get_status_display().lower()}."
    return {"name": name, "base_model": base.pk if base else None}, errors


def _data(draft: JobDraft, post: QueryDict) -> tuple[dict, Errors]:
    errors: Errors = {}
    train = _owned_pk(Dataset, draft.owner, post.get("train_dataset"))
    if train is None:
        errors["train_dataset"] = "Choose a training dataset (upload one first if you need to)."
    answers: dict[str, Any] = {"train_dataset": train.pk if train else None}
    mode = post.get("validation_mode", "split")
    answers["validation_mode"] = mode
    if mode == "dataset":
        validation = _owned_pk(Dataset, draft.owner, post.get("validation_dataset"))
        if validation is None:
            errors["validation_dataset"] = "Choose a validation dataset, or hold out a fraction."
        elif train is not None and validation.pk == train.pk:
            errors["validation_dataset"] = "Validate on other rows than the ones you train on."
        answers["validation_dataset"] = validation.pk if validation else None
    else:
        try:
            split = float(post.get("validation_split", "0.1"))
        except ValueError:
            split = -1.0
        if not 0 < split < 0.5:
            errors["validation_split"] = "Hold out a fraction between 0 and 0.5, e.g. 0.1."
        answers.update(validation_split=split, validation_dataset=None)
    return answers, errors


def _reward(draft: JobDraft, post: QueryDict) -> tuple[dict, Errors]:
    reward = _owned_pk(RewardFunction, draft.owner, post.get("reward"))
    if reward is None:
        return {}, {"reward": "Choose a reward function, or create one from a template."}
    number = post.get("reward_version") or None
    try:
        version = reward.version(int(number) if number else None)
    except (ValueError, RewardVersion.DoesNotExist):
        return {}, {"reward_version": f"{reward.name} has no version {number}."}
    return {"reward": reward.pk, "reward_version": version.number}, {}


def _hyperparameters(draft: JobDraft, post: QueryDict) -> tuple[dict, Errors]:
    given = {p.name: post[p.name] for p in hyperparameters.PARAMS if post.get(p.name, "") != ""}
    _, errors = hyperparameters.resolve(given, default_profile())
    return {"hyperparameters": given}, errors


@dataclass
class Plan:
    """The draft's objects and resolved values, as the review step shows them."""

    name: str
    base: ModelEntry
    train: Dataset
    validation: Dataset | None
    split: float
    version: RewardVersion
    hp: hyperparameters.Hyperparameters
    given: dict[str, Any]
    profile: str

    @property
    def values(self) -> dict[str, Any]:
        """Bedrock-named, as the review page shows them (the UI speaks Bedrock's names)."""
        return self.hp.to_bedrock()

    @cached_property
    def training_rows(self) -> tuple[int, int]:
        """(rows training keeps, rows skipped as too long): the engine's split and length rule."""
        rows = list(iter_rows(self.train.path))
        if self.validation is None:
            out = held_out(len(rows), self.split, self.hp.seed)
            rows = [row for i, row in enumerate(rows) if i not in out]
        tokenizer = load_tokenizer(tokenizer_dir(self.base))
        return usable_rows(tokenizer, rows, self.hp.max_prompt_length)

    def estimate(self) -> dict[str, Any]:
        rows, skipped = self.training_rows
        steps = total_steps(rows, self.hp)  # the same function sets the running job's total
        per_step = seconds_per_step(self.base)
        return {
            "rows": rows,
            "skipped_long": skipped,
            "prompts_per_step": prompts_per_step(self.hp),
            "steps": steps,
            "validations": steps // self.hp.eval_interval + 2,
            "seconds_per_step": per_step,
            "minutes": round(steps * per_step / 60, 1) if per_step else None,
        }


def plan(draft: JobDraft) -> Plan | None:
    """Everything the draft names, or None while a step is missing."""
    data, owner = draft.data, draft.owner
    base = _owned_pk(ModelEntry, owner, str(data.get("base_model") or ""))
    train = _owned_pk(Dataset, owner, str(data.get("train_dataset") or ""))
    reward = _owned_pk(RewardFunction, owner, str(data.get("reward") or ""))
    if base is None or train is None or reward is None:
        return None
    validation = _owned_pk(Dataset, owner, str(data.get("validation_dataset") or ""))
    version = reward.versions.filter(number=data.get("reward_version")).first()
    if version is None:
        return None
    given = data.get("hyperparameters") or {}
    profile = default_profile()
    values, _ = hyperparameters.resolve(given, profile)  # errors show on the step that has them
    hp = hyperparameters.Hyperparameters.from_bedrock(values)
    split = float(data.get("validation_split") or 0.1)
    name = data.get("name", "")
    return Plan(name, base, train, validation, split, version, hp, given, profile)


def seconds_per_step(base: ModelEntry) -> float | None:
    """Median step time of this base model's earlier jobs: the honest estimate we have."""
    times = sorted(
        point["step_seconds"]
        for point in MetricPoint.objects.filter(job__base_model=base, kind="train")
        .order_by("-pk")
        .values_list("values", flat=True)[:500]
        if isinstance(point, dict) and "step_seconds" in point
    )
    return round(times[len(times) // 2], 2) if times else None


def launch(draft: JobDraft) -> tuple[Job | None, dict[str, str]]:
    """Create and queue the job, or return the pre-flight problems by field."""
    planned = plan(draft)
    if planned is None:
        return None, {"review": "Some steps are not finished yet."}
    try:
        job = create_job(
            draft.owner,
            planned.name,
            planned.base,
            planned.train,
            planned.version,
            planned.validation,
            planned.split,
            planned.given,
            planned.profile,
        )
    except JobConfigError as error:
        return None, {field: str(message) for field, message in error.errors.items()}
    draft.delete()
    return job, {}


def draft_from_job(owner: AbstractBaseUser, job: Job) -> JobDraft:
    """A new draft with a job's choices (the wizard's "Clone")."""
    data = {
        "name": f"{job.name}-copy",
        "base_model": job.base_model_id,
        "train_dataset": job.train_dataset_id,
        "validation_mode": "dataset" if job.validation_dataset_id else "split",
        "validation_dataset": job.validation_dataset_id,
        "validation_split": job.validation_split or 0.1,
        "reward": job.reward_version.reward_id,
        "reward_version": job.reward_version.number,
        "hyperparameters": {k: str(v) for k, v in (job.hyperparameters or {}).items()},
    }
    return JobDraft.objects.create(owner=owner, name=data["name"], data=data, completed=SLUGS[:-1])
