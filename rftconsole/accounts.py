"""The first admin account, created by `up` when the console has none."""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model


def ensure_admin() -> tuple[str, str | None]:
    """Create the admin account when no superuser exists.

    Returns (username, password) where password is only set when it was generated here and must be
    shown to the user once; it is None when an admin existed or RFT_ADMIN_PASSWORD was given.
    """
    User = get_user_model()
    existing = User.objects.filter(is_superuser=True).order_by("pk").first()
    if existing is not None:
        return existing.get_username(), None
    given = os.environ.get("RFT_ADMIN_PASSWORD", "")
    password = given or secrets.token_urlsafe(12)
    username = settings.RFT_ADMIN_USERNAME
    User.objects.create_superuser(username=username, email="", password=password)
    return username, None if given else password
