"""State changes of reward functions: create, edit (a new version), create from a template.

Judge API keys arrive in plain text and are stored only encrypted (`api_key_encrypted` in the
version's config; a model grader's inside its grader, see rewards.openai_graders.storage);
`public_config` is what pages and the API may show.
"""

from __future__ import annotations

import math
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from rewards.library import get_template
from rewards.models import RewardFunction, RewardVersion
from rewards.openai_graders.storage import shown_config, stored_config
from rewards.openai_graders.validation import Checking, GraderProblem
from rewards.validation import Problems, validate_reward
from rftconsole.security.crypto import encrypt_text

SECRET_KEY_FIELD = "api_key_encrypted"  # noqa: S105 - a field name, not a secret
CONFIG_NOT_OBJECT = 'Must be a JSON object, e.g. {"grader": "string_check"}.'
API_KEY_NOT_USED = "api_key is only used by an endpoint judge (judge_type: endpoint)."
GRADER_KEY_INSIDE = (
    "A model grader's key goes inside the grader, as its api_key (with base_url), as OpenAI's "
    "grader objects have it."
)


class RewardError(ValueError):
    """The reward cannot be saved; `problems` maps each field to what is wrong with it."""

    def __init__(self, problems: dict[str, list[str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in problems.items()))


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config without secrets; says whether a judge key is stored."""
    shown = {key: value for key, value in shown_config(config).items() if key != SECRET_KEY_FIELD}
    if config.get("judge_type") == "endpoint":
        shown["has_api_key"] = bool(config.get(SECRET_KEY_FIELD))
    return shown


def _checked_config(
    owner: AbstractBaseUser,
    kind: str,
    config: dict[str, Any],
    code: str,
    pass_threshold: float,
    api_key: str | None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate, then swap a plain API key for its encrypted form (or keep the stored one)."""
    if not isinstance(config, dict):
        raise RewardError({"config": [CONFIG_NOT_OBJECT]})
    if kind == RewardFunction.Kind.OPENAI_GRADER:
        return _checked_grader(owner, config, pass_threshold, api_key, previous)
    config = {k: v for k, v in config.items() if k not in {SECRET_KEY_FIELD, "has_api_key"}}
    problems = validate_reward(kind, config, code)
    for field, problem in _key_problems(kind, config, api_key):
        problems.setdefault(field, []).append(problem)
    problems.update(_threshold_problems(pass_threshold))
    if problems:
        raise RewardError(problems)
    if kind == RewardFunction.Kind.JUDGE and config.get("judge_type") == "endpoint":
        if api_key:
            config[SECRET_KEY_FIELD] = encrypt_text(api_key)
        elif previous and previous.get(SECRET_KEY_FIELD) and api_key is None:
            config[SECRET_KEY_FIELD] = previous[SECRET_KEY_FIELD]
    return config


def _threshold_problems(pass_threshold: Any) -> Problems:
    if not isinstance(pass_threshold, int | float) or not math.isfinite(pass_threshold):
        return {"pass_threshold": ["Must be a finite number."]}
    return {}


def _checked_grader(
    owner: AbstractBaseUser,
    config: dict[str, Any],
    pass_threshold: float,
    api_key: str | None,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    """An OpenAI grader, validated as /v1/…/graders/validate does (strict), keys encrypted."""
    problems = _threshold_problems(pass_threshold)
    if api_key:
        problems["api_key"] = [GRADER_KEY_INSIDE]
    try:
        checked = stored_config(config, Checking(owner), previous)
    except GraderProblem as problem:
        problems["config"] = [str(problem)]
    if problems:
        raise RewardError(problems)
    return checked


def reward_problems(
    owner: AbstractBaseUser, kind: str, config: dict[str, Any], code: str
) -> Problems:
    """What is wrong with a reward definition, without saving it (empty when it would save)."""
    if kind != RewardFunction.Kind.OPENAI_GRADER:
        return validate_reward(kind, config, code)
    try:
        stored_config(config, Checking(owner))
    except GraderProblem as problem:
        return {"config": [str(problem)]}
    return {}


def _key_problems(kind: str, config: dict[str, Any], api_key: str | None) -> list[tuple[str, str]]:
    """A key that would be dropped (not an endpoint judge) or stored in the clear (inside the
    config) is refused: saying nothing let a user believe the judge was authenticated."""
    problems = []
    if "api_key" in config:
        problems.append(("config", "Give the judge's key as api_key beside config, not inside it."))
    endpoint = kind == RewardFunction.Kind.JUDGE and config.get("judge_type") == "endpoint"
    if api_key and not endpoint:
        problems.append(("api_key", API_KEY_NOT_USED))
    return problems


@transaction.atomic
def create_reward(
    owner: AbstractBaseUser,
    name: str,
    kind: str,
    description: str = "",
    config: dict[str, Any] | None = None,
    code: str = "",
    pass_threshold: float = 1.0,
    api_key: str | None = None,
) -> RewardVersion:
    if kind not in RewardFunction.Kind.values:
        raise RewardError({"kind": [f"Must be one of {', '.join(RewardFunction.Kind.values)}."]})
    name = name.strip()
    if not name:
        raise RewardError({"name": ["Give the reward a name."]})
    if RewardFunction.objects.filter(owner=owner, name=name).exists():
        raise RewardError({"name": [f"You already have a reward named {name!r}."]})
    config = _checked_config(owner, kind, config or {}, code, pass_threshold, api_key)
    try:
        reward = RewardFunction.objects.create(
            owner=owner, name=name, kind=kind, description=description
        )
    except IntegrityError:  # a concurrent create with the same name
        raise RewardError({"name": [f"You already have a reward named {name!r}."]}) from None
    return RewardVersion.objects.create(
        reward=reward, number=1, config=config, code=code, pass_threshold=pass_threshold
    )


@transaction.atomic
def new_version(
    reward: RewardFunction,
    config: dict[str, Any] | None = None,
    code: str | None = None,
    pass_threshold: float | None = None,
    api_key: str | None = None,
    description: str | None = None,
) -> RewardVersion:
    """Editing never changes a version that a job may have pinned: it adds the next one.

    Omitted fields carry over from the latest version; `api_key=""` removes a stored key.
    """
    reward = RewardFunction.objects.select_for_update().get(pk=reward.pk)
    latest = reward.latest_version()
    config = latest.config if config is None else config
    code = latest.code if code is None else code
    threshold = latest.pass_threshold if pass_threshold is None else pass_threshold
    checked = _checked_config(
        reward.owner, reward.kind, config, code, threshold, api_key, latest.config
    )
    if description is not None and description != reward.description:
        reward.description = description
        reward.save(update_fields=["description"])
    return RewardVersion.objects.create(
        reward=reward,
        number=latest.number + 1,
        config=checked,
        code=code,
        pass_threshold=threshold,
    )


def create_from_template(
    owner: AbstractBaseUser,
    slug: str,
    name: str = "",
    overrides: dict[str, Any] | None = None,
    api_key: str | None = None,
) -> RewardVersion:
    """A new reward from a template; `overrides` changes config keys (e.g. the judge model)."""
    template = get_template(slug)
    return create_reward(
        owner,
        name or template.slug,
        template.kind,
        template.description,
        config={**template.config, **(overrides or {})},
        code=template.code,
        pass_threshold=template.pass_threshold,
        api_key=api_key,
    )


def create_from_openai_grader(
    owner: AbstractBaseUser, name: str, grader: Any, description: str = ""
) -> RewardVersion:
    """A reward whose version runs an OpenAI grader (as a reinforcement job's `grader` is);
    `RewardError` naming the grader's field (`config: grader.graders.x.operation: …`)."""
    return create_reward(
        owner, name, RewardFunction.Kind.OPENAI_GRADER, description, config={"grader": grader}
    )
