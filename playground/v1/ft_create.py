"""`POST /v1/fine_tuning/jobs`: an OpenAI reinforcement job request → an ordinary console job.

The grader becomes a reward of kind `openai_grader` (visible in Rewards, keys encrypted), the files
are the owner's datasets, the hyperparameters map through `ft_hyperparameters`, and the job goes
through `create_job`: the wizard's checks (context, batch, the reward's dry run) and the same
queue. A request this console cannot honour (another method, integrations, a response format) is
refused naming the parameter, never silently ignored.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from jobs.actions import create_job, enqueue
from jobs.models import Dataset, Job, ModelEntry
from jobs.training.preflight import JobConfigError, default_profile
from playground.models import check_metadata
from playground.v1.files import parse_file_id
from playground.v1.ft_hyperparameters import (
    OPENAI_NAME,
    PARAM_PATH,
    HyperparameterProblem,
    console_hyperparameters,
)
from playground.v1.ft_objects import FT_NAME, model_name
from playground.v1.params import ApiError, bad
from rewards.models import RewardFunction, RewardVersion
from rewards.services import RewardError, create_reward
from rftconsole.ownership import owned

FIELDS = {
    "model", "training_file", "validation_file", "suffix", "seed", "metadata", "method",
    "hyperparameters", "integrations",
}  # fmt: skip
REINFORCEMENT_FIELDS = {"grader", "hyperparameters", "response_format"}
SUFFIX_LENGTH = 64
NAME_ATTEMPTS = 5
VALIDATION_SPLIT = 0.1  # without a validation_file, as the wizard's default
# Where a console check's field came from in the request.
CHECK_PARAMS = {
    "base_model": "model",
    "train_dataset": "training_file",
    "validation_split": "training_file",
    "reward": "method.reinforcement.grader",
}


def _text(body: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise bad(f"You must provide '{name}' as a non-empty string.", name)
    return value


def _base_model(owner: AbstractBaseUser, name: str) -> ModelEntry:
    """A model of the registry by its name, or a succeeded job's `ft:` model to tune further."""
    match = FT_NAME.fullmatch(name)
    if match and match.group(2):
        raise bad(
            "Fine-tune from a job's fine_tuned_model, not from one of its checkpoints.", "model"
        )
    if match:
        job = owned(Job, owner).filter(pk=int(match.group(1))).first()
        if job is not None and job.output_model is not None and model_name(job) == name:
            return job.output_model
    else:
        entry = owned(ModelEntry, owner).filter(name=name).first()
        if entry is not None:
            if entry.status != ModelEntry.Status.READY:
                status = entry.get_status_display().lower()
                raise bad(f"The model {name[:100]!r} is {status}: {entry.status_reason}", "model")
            return entry
    raise ApiError(
        404,
        f"The model `{name[:100]}` does not exist or you do not have access to it. Use the name "
        "of a model in your Models registry (e.g. 'starter') or a fine_tuned_model of yours.",
        param="model",
        code="model_not_found",
    )


def _dataset(owner: AbstractBaseUser, given: str, param: str) -> Dataset:
    pk = parse_file_id(given)
    dataset = owned(Dataset, owner).filter(pk=pk).first() if pk else None
    if dataset is None:
        raise bad(f"Invalid file ID '{given[:100]}': no such file of yours.", param)
    return dataset


def _method(body: dict[str, Any]) -> dict[str, Any]:
    method = body.get("method")
    if method is None:
        raise bad(
            "This console fine-tunes by reinforcement only: give method={'type': "
            "'reinforcement', 'reinforcement': {'grader': …}}.",
            "method",
        )
    if not isinstance(method, dict):
        raise bad("'method' must be an object.", "method")
    kind = method.get("type")
    if kind in ("supervised", "dpo"):
        raise bad(
            f"The '{kind}' method is not supported here: this console runs reinforcement "
            "fine-tuning (GRPO) only. Use method.type='reinforcement' with a grader.",
            "method.type",
        )
    if kind != "reinforcement":
        raise bad(f"Invalid value for 'method.type': {str(kind)[:40]!r}.", "method.type")
    settings = method.get("reinforcement")
    if not isinstance(settings, dict) or "grader" not in settings:
        raise bad("'method.reinforcement' must be an object with a grader.", "method.reinforcement")
    strays = sorted(set(settings) - REINFORCEMENT_FIELDS)
    if strays:
        raise bad(f"Unknown parameter 'method.reinforcement.{strays[0][:40]}'.", "method")
    if settings.get("response_format") is not None:
        raise bad(
            "'response_format' is not supported yet: the grader reads the answer as text "
            "({{sample.output_text}}) or as JSON when it parses ({{sample.output_json}}).",
            "method.reinforcement.response_format",
        )
    return settings


def _refuse_unsupported(body: dict[str, Any]) -> None:
    strays = sorted(set(body) - FIELDS)
    if strays:
        raise bad(f"Unrecognized request argument supplied: {strays[0][:40]}", strays[0][:40])
    integrations = body.get("integrations")
    if integrations is not None and not isinstance(integrations, list):
        raise bad("'integrations' must be an array.", "integrations")
    if integrations:
        raise bad("Integrations (e.g. Weights & Biases) are not supported.", "integrations")
    if body.get("hyperparameters") is not None:
        raise bad(
            "Top-level 'hyperparameters' are for supervised jobs (and deprecated): give them as "
            f"'{PARAM_PATH}'.",
            "hyperparameters",
        )


def _suffix(body: dict[str, Any]) -> str:
    suffix = body.get("suffix")
    if suffix is None:
        return ""
    valid = isinstance(suffix, str) and len(suffix) <= SUFFIX_LENGTH
    if not valid or any(not (ch.isascii() and (ch.isalnum() or ch in "-_.")) for ch in suffix):
        raise bad(
            f"'suffix' must be up to {SUFFIX_LENGTH} characters of letters, digits, '-', '_' "
            "and '.': it becomes part of the model name.",
            "suffix",
        )
    return suffix


def _seed(body: dict[str, Any]) -> int | None:
    seed = body.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31
    ):
        raise bad("'seed' must be an integer from 0 to 2147483647.", "seed")
    return seed


def _metadata(body: dict[str, Any]) -> dict[str, str]:
    metadata = body.get("metadata")
    if metadata is None:
        return {}
    try:
        check_metadata(metadata)
    except ValueError as error:
        raise bad(str(error).replace("Request metadata", "Metadata"), "metadata") from None
    return metadata


def _free_reward_name(owner: AbstractBaseUser, stem: str) -> str:
    name, number = stem, 1
    while owned(RewardFunction, owner).filter(name=name).exists():
        number += 1
        name = f"{stem} ({number})"
    return name


def _check_error(error: JobConfigError) -> ApiError:
    """The console's first failed check, named by the request parameter it came from."""
    field, message = next(iter(error.errors.items()))
    param = CHECK_PARAMS.get(field) or (
        f"{PARAM_PATH}.{OPENAI_NAME[field]}" if field in OPENAI_NAME else PARAM_PATH
    )
    others = "; ".join(f"{f}: {m}" for f, m in list(error.errors.items())[1:])
    return bad(f"{field}: {message}" + (f" (also {others})" if others else ""), param)


def create_fine_tuning_job(owner: AbstractBaseUser, body: dict[str, Any]) -> Job:
    """Check the request, make its grader a reward, and launch the job as the wizard would."""
    _refuse_unsupported(body)
    settings = _method(body)
    model = _base_model(owner, _text(body, "model", required=True) or "")
    training = _dataset(owner, _text(body, "training_file", required=True) or "", "training_file")
    validation_id = _text(body, "validation_file")
    validation = _dataset(owner, validation_id, "validation_file") if validation_id else None
    suffix, metadata = _suffix(body), _metadata(body)
    profile = default_profile()
    try:
        given = console_hyperparameters(settings.get("hyperparameters"), profile, _seed(body))
    except HyperparameterProblem as problem:
        raise bad(str(problem), problem.param) from None
    name = (suffix or f"ft-{model.name}")[:100]
    version = _grader_reward(owner, name, settings["grader"])
    try:
        job = create_job(
            owner, name, model, training, version, validation,
            VALIDATION_SPLIT, given=given, profile=profile, launch=False,
        )  # fmt: skip
    except BaseException as error:
        version.reward.delete()  # nothing of a refused request stays behind
        if isinstance(error, JobConfigError):
            raise _check_error(error) from None
        raise
    Job.objects.filter(pk=job.pk).update(suffix=suffix, metadata=metadata)
    RewardFunction.objects.filter(pk=version.reward_id).update(
        description=f"The grader of job “{name}” (ftjob-{job.pk}), created through "
        "/v1/fine_tuning/jobs."
    )
    job.suffix, job.metadata = suffix, metadata
    _launch(job)
    return job


def _grader_reward(owner: AbstractBaseUser, name: str, grader: Any) -> RewardVersion:
    """The grader as a new reward named `<name> grader` (then ` (2)`…; a name taken by a
    concurrent request meanwhile moves on to the next number)."""
    for _ in range(NAME_ATTEMPTS):
        try:
            return create_reward(
                owner,
                _free_reward_name(owner, f"{name} grader"[:90]),
                RewardFunction.Kind.OPENAI_GRADER,
                description="The grader of a job created through /v1/fine_tuning/jobs.",
                config={"grader": grader},
            )
        except RewardError as error:
            if set(error.problems) != {"name"}:
                problems = " ".join(t for texts in error.problems.values() for t in texts)
                raise bad(f"Invalid grader: {problems}", "method.reinforcement.grader") from None
    raise ApiError(409, "Too many jobs are being created at once: try again.", code="conflict")


def _launch(job: Job) -> None:
    """Queue the job now, outside any transaction: when the queue cannot be reached the job and
    its reward are removed and the client told, so a retry does not leave duplicates."""
    try:
        enqueue(job)
    except Exception as error:  # noqa: BLE001 - any broker failure: nothing may stay behind
        reward = job.reward_version.reward
        job.delete()
        reward.delete()
        raise ApiError(
            503,
            f"The job queue cannot be reached ({type(error).__name__}); nothing was created. "
            "Try again in a moment.",
            type_="server_error",
            code="queue_unavailable",
        ) from None
