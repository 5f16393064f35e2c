"""The one helper that records security-relevant actions, and the login signals that use it.

Actions: login, login_failed, login_locked_out (a sign-in refused by throttling, see
rftconsole/security/accounts.py), logout, api_key.create, api_key.revoke, job.create, job.stop,
deployment.create, deployment.delete, dataset.download. Read them in the admin (Audit events).
"""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from rftconsole.models import AuditEvent
from rftconsole.security.accounts import client_address


def audit(
    actor: Any, action: str, target: object = "", request: HttpRequest | None = None, **detail: Any
) -> AuditEvent:
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username() if user else str(detail.pop("username", "")),
        action=action,
        target=str(target)[:200],
        detail=detail,
        ip_address=_address(request),
    )


def _address(request: HttpRequest | None) -> str | None:
    # The address throttling counts too: REMOTE_ADDR unless RFT_TRUSTED_PROXY_COUNT is set, since
    # X-Forwarded-For is whatever the client says unless a trusted proxy sets it.
    return client_address(request) if request is not None else None


@receiver(user_logged_in)
def _logged_in(sender: Any, request: HttpRequest, user: Any, **_: Any) -> None:
    audit(user, "login", request=request)


@receiver(user_logged_out)
def _logged_out(sender: Any, request: HttpRequest, user: Any, **_: Any) -> None:
    if user is not None:
        audit(user, "logout", request=request)


@receiver(user_login_failed)
def _login_failed(
    sender: Any, credentials: dict, request: HttpRequest | None = None, **_: Any
) -> None:
    audit(None, "login_failed", request=request, username=credentials.get("username", ""))


@receiver(user_locked_out)
def _locked_out(sender: Any, request: HttpRequest, username: str | None, **_: Any) -> None:
    # Sent for the failure that reaches the limit and for every sign-in refused while locked out.
    audit(None, "login_locked_out", request=request, username=username or "")
