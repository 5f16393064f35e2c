"""State changes of console-wide objects: small functions that views and the API both call."""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from rftconsole.models import API_KEY_PREFIX, ApiKey, ApiKeyScope, hash_api_key
from rftconsole.security.audit import audit

LAST_USED_PRECISION = timedelta(minutes=1)  # avoid one DB write per API request


def create_api_key(
    owner: AbstractBaseUser,
    name: str,
    scope: str = ApiKeyScope.API,
    made_with: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its raw value, which is shown once and never stored.

    `made_with` is the key that asked for it (None: the browser), kept in the audit log so a
    leaked `keys` key's offspring can be found and revoked too."""
    lookup = secrets.token_hex(6)
    raw_key = f"{API_KEY_PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        owner=owner,
        name=name.strip(),
        lookup=lookup,
        key_hash=hash_api_key(raw_key),
        scope=ApiKeyScope(scope),
    )
    made_by = made_with.lookup if made_with is not None else None
    target = f"{api_key.name} ({api_key.lookup})"
    audit(owner, "api_key.create", target, scope=str(api_key.scope), made_with_key=made_by)
    return api_key, raw_key


def revoke_api_key(api_key: ApiKey) -> None:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit(api_key.owner, "api_key.revoke", f"{api_key.name} ({api_key.lookup})")


def authenticate_api_key(raw_key: str) -> ApiKey | None:
    """Return the active key matching `raw_key`, or None; constant-time on the secret part."""
    if not raw_key.startswith(API_KEY_PREFIX):
        return None
    lookup = raw_key[len(API_KEY_PREFIX) :].split("_", 1)[0]
    try:  # get(), not first(): `lookup` is unique, and an unordered query compiles faster
        api_key: ApiKey | None = ApiKey.objects.select_related("owner").get(lookup=lookup)
    except ApiKey.DoesNotExist:
        api_key = None
    if api_key is None or not api_key.is_active or not api_key.owner.is_active:
        return None
    if not hmac.compare_digest(api_key.key_hash, hash_api_key(raw_key)):
        return None
    _touch(api_key)
    return api_key


def _touch(api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
