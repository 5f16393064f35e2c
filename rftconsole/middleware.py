"""The console's middleware: login required everywhere except the REST API (which authenticates
itself and answers 401); static files, security headers and the CSP in async mode (no thread
hops)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from csp.middleware import CSPMiddleware
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware
from rest_framework.views import APIView
from whitenoise.middleware import WhiteNoiseMiddleware


class ConsoleLoginRequiredMiddleware(LoginRequiredMiddleware):
    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponse],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        view_class = getattr(view_func, "cls", None)
        if isinstance(view_class, type) and issubclass(view_class, APIView):
            return None  # DRF's IsAuthenticated default permission guards these views
        return super().process_view(request, view_func, view_args, view_kwargs)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, able to run in async mode.

    WhiteNoise's middleware is sync only, so under ASGI Django ran every request through a thread
    hop into sync mode and back (sync_to_async, async_to_sync) before any view: ~1 ms of each
    request's latency and a turn in Django's one sync thread, for every page, API call and
    streamed chat completion. In async mode only a static file is served from a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[..., Any]) -> None:
        super().__init__(get_response)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        if self.autorefresh:
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)


class SecurityHeadersMiddleware(SecurityMiddleware):
    """Django's SecurityMiddleware, run in place in async mode: its request and response steps
    only read settings and set headers, so they need no trip to a sync thread (Django's
    MiddlewareMixin makes two per middleware and request)."""

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response = self.process_request(request) or await self.get_response(request)
        return self.process_response(request, response)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, run in place in async mode for the same reason as above: it only
    reads settings and sets a header."""

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        self.process_request(request)
        response = await self.get_response(request)
        return self.process_response(request, response)
