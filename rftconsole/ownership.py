"""One place that scopes every query of an owned object to its owner.

Views and API endpoints never call `Model.objects` for owned data directly: they call `owned()` or
`get_owned_or_404()`, so a missing filter cannot leak another user's rows. Another owner's object
answers 404, exactly like one that does not exist, so ids reveal nothing.
"""

from __future__ import annotations

from typing import TypeVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models
from django.http import Http404

M = TypeVar("M", bound="OwnedModel")


class OwnedModel(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True


def owned(model: type[M], user: AbstractBaseUser | AnonymousUser) -> models.QuerySet[M]:
    if not user.is_authenticated:
        return model.objects.none()
    return model.objects.filter(owner=user)


def get_owned_or_404(model: type[M], user: AbstractBaseUser | AnonymousUser, **lookup: object) -> M:
    try:
        return owned(model, user).get(**lookup)
    except model.DoesNotExist:
        raise Http404(f"No {model._meta.verbose_name} matches the given query.") from None
