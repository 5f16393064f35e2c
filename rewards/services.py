"""State changes of reward functions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from rewards.models import RewardFunction, RewardVersion


@transaction.atomic
def create_reward(
    owner: AbstractBaseUser,
    name: str,
    kind: str,
    description: str = "",
    config: dict[str, Any] | None = None,
    code: str = "",
    pass_threshold: float = 1.0,
) -> RewardVersion:
    reward = RewardFunction.objects.create(
        owner=owner, name=name, kind=kind, description=description
    )
    return RewardVersion.objects.create(
        reward=reward, number=1, config=config or {}, code=code, pass_threshold=pass_threshold
    )
