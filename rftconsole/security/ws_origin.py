"""Websockets accept only the exact origins the console is served from: scheme, host and port.

Browsers attach cookies to a websocket handshake from any page, so without this check a page on
another local port (or scheme) could open `ws/jobs/<id>/` with a signed-in user's session. Channels'
OriginValidator matches host patterns only, ignoring scheme and port; this is Django's CSRF origin
rule instead: the Origin must be `<http|https>://<Host>` of the handshake itself (Host in
ALLOWED_HOSTS), or be listed exactly in CSRF_TRUSTED_ORIGINS. A handshake without an Origin is
refused: browsers always send one, so only a non-browser client can omit it, and it must add one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class ExactOriginMiddleware:
    """Refuse a websocket handshake whose Origin is not one the console is served from."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            await WebsocketDenier()(scope, receive, send)
            return
        await self.app(scope, receive, send)


def origin_allowed(scope: Scope) -> bool:
    origin = _single_header(scope, b"origin")
    if not origin:
        return False
    if settings.RFT_HTTPS and not origin.startswith("https://"):
        return False  # served over HTTPS only: a plain-HTTP page is not the console's
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    host = _single_header(scope, b"host")
    if not host or not _host_allowed(host):
        return False
    return origin == f"{_http_scheme(scope)}://{host}"


def _single_header(scope: Scope, name: bytes) -> str | None:
    # Two Origin (or Host) headers are ambiguous: an intermediary may read the other one.
    values = [value for key, value in _headers(scope) if key.lower() == name]
    return values[0].decode("latin1") if len(values) == 1 else None


def _headers(scope: Scope) -> Iterable[tuple[bytes, bytes]]:
    return scope.get("headers") or []


def _host_allowed(host: str) -> bool:
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:  # what Django's get_host() allows in that case
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


def _http_scheme(scope: Scope) -> str:
    """The page scheme a browser on this connection has: ws→http, wss→https, unless the proxy
    named in SECURE_PROXY_SSL_HEADER says otherwise (as Django's request.is_secure())."""
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        meta_name, secure_value = proxy_header
        name = meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin1")
        value = _single_header(scope, name)
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme", "ws") in ("wss", "https") else "http"
