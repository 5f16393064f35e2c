"""Shared bits of management commands: which user a command acts as."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import CommandError

from rftconsole.ownership import owned


def first_admin() -> AbstractBaseUser:
    admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
    if admin is None:
        raise CommandError(
            "No admin account exists yet: run `manage.py up` once, or createsuperuser."
        )
    return admin


def owned_by_name(model: type, owner: AbstractBaseUser, name: object, label: str) -> Any:
    """The owner's object of that name, or a CommandError that names the option."""
    found = owned(model, owner).filter(name=name).first()
    if found is None:
        raise CommandError(f"{label}: no {model._meta.verbose_name} named {name!r}.")
    return found


def acting_user(username: str | None) -> AbstractBaseUser:
    """The user named by --user, or the first admin (the owner of the starter objects)."""
    if not username:
        return first_admin()
    try:
        return get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise CommandError(f"No user named {username!r}.") from None
