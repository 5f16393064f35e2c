"""What an API key's scope lets it do in the REST API (see ApiKeyScope in rftconsole/models.py).

A session (the browser) is not a key: it may do everything its user may. Only calls made with an
API key (`request.auth` is an ApiKey) are narrowed by the key's scope.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from rftconsole.models import ApiKey, ApiKeyScope

MESSAGES = {
    ApiKeyScope.API: (
        "This API key may only call /v1/ (scope 'inference'), not the REST API; create a key "
        "with the 'api' scope on the API keys page."
    ),
    ApiKeyScope.KEYS: (
        "This API key may not manage keys; create a key with the 'keys' scope on the API keys page."
    ),
}


def require_scope(api_key: ApiKey | None, scope: str) -> None:
    """Raise 403 unless the call is not by key, or its key's scope covers `scope`."""
    if api_key is not None and not api_key.covers(scope):
        raise PermissionDenied(MESSAGES[ApiKeyScope(scope)])


def require_mintable(api_key: ApiKey | None, scope: str) -> None:
    """A key may only make keys no wider than itself: otherwise a narrow key that leaked could
    outlive its revocation through a wider one it made."""
    if api_key is not None and not api_key.covers(scope):
        raise PermissionDenied(
            f"This API key (scope '{api_key.scope}') may not create a key with the wider scope "
            f"'{scope}'."
        )


def _key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


class ManagesKeys(BasePermission):
    """Listing, creating and revoking keys needs a session or a key with the `keys` scope."""

    message = MESSAGES[ApiKeyScope.KEYS]

    def has_permission(self, request: Request, view: Any) -> bool:
        api_key = _key(request)
        return api_key is None or api_key.covers(ApiKeyScope.KEYS)
