"""Accounts: the first admin account `up` creates, and what sign-in throttling (django-axes)
needs from the console: the client's address and the lockout page."""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

# Too Many Requests: the sign-in was refused for its rate, not for its credentials.
LOCKOUT_STATUS = 429


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


def client_address(request: HttpRequest) -> str | None:
    """The address a request came from, for throttling and the audit log.

    REMOTE_ADDR unless RFT_TRUSTED_PROXY_COUNT proxies are in front: each appends the address it
    was connected from to X-Forwarded-For, so the client is the entry that many from the right.
    Everything left of it is whatever the client wrote, and is never trusted.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = settings.RFT_TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    # Fewer entries than proxies: the request did not come through them all; its peer is the client.
    if len(forwarded) < proxies:
        return remote
    return forwarded[-proxies] if _is_ip(forwarded[-proxies]) else remote


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def lockout_message() -> str:
    minutes = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many failed sign-ins for this account or address; try again in {minutes} {unit}."


def lockout_response(request: HttpRequest, *_: Any, **__: Any) -> HttpResponse:
    """The sign-in page again, saying why, instead of axes' bare 403 (AXES_LOCKOUT_CALLABLE).

    Axes passes (request, response, credentials) in sync mode but (request, credentials) in async
    mode (axes 8.3 AxesMiddleware.__acall__), so read nothing but the request."""
    form = AuthenticationForm(request, initial={"username": request.POST.get("username", "")})
    context = {"form": form, "next": _safe_next(request), "lockout": lockout_message()}
    return render(request, "registration/login.html", context, status=LOCKOUT_STATUS)


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if allowed else ""
