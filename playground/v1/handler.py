"""The ASGI app for `/v1/`: Django with only the middleware an API-key endpoint needs.

The console's pages need sessions, CSRF, login, messages and htmx; `/v1/` uses none of them (it
authenticates by API key and is CSRF-exempt). Under ASGI each of Django's MiddlewareMixin
middleware costs two trips between the event loop and a sync thread per request, ~19 in all:
3–5 ms of every chat completion's time to first token, for nothing. `rftconsole.asgi` sends
`/v1/` here; URLs, views and settings are the same.
"""

from __future__ import annotations

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

V1_MIDDLEWARE = ["rftconsole.middleware.SecurityHeadersMiddleware"]
PREFIX = "/v1/"


class OpenAIEndpointHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds the chain from settings.MIDDLEWARE; swap it in for this handler only
        # (once, at startup, before any request).
        console_middleware = settings.MIDDLEWARE
        settings.MIDDLEWARE = V1_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = console_middleware
