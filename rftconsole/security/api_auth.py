"""REST API authentication by `Authorization: Bearer <api key>`, refusing `inference` keys."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from rftconsole.models import ApiKey, ApiKeyScope
from rftconsole.security.api_scopes import require_scope
from rftconsole.services import authenticate_api_key


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[object, ApiKey] | None:
        header = get_authorization_header(request).decode("latin-1")
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        api_key = authenticate_api_key(raw_key.strip())
        if api_key is None:
            raise AuthenticationFailed("Invalid or revoked API key.")
        # Checked here, not in a permission class: every REST view authenticates through this
        # class, so an `inference` key gets 403 on every route, including ones added later or
        # ones that set their own permission_classes. Narrower checks (keys) are permissions.
        require_scope(api_key, ApiKeyScope.API)
        return api_key.owner, api_key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated calls.
        return f'{self.keyword} realm="api"'
