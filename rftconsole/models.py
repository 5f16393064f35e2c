"""Console-wide models: per-user API keys and what each Celery worker last reported about itself."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models

from rftconsole.ownership import OwnedModel

API_KEY_PREFIX = "rft_"


def hash_api_key(raw_key: str) -> str:
    # Keys are 256-bit random tokens, so a plain SHA-256 is enough (no slow hash needed):
    # the hash alone cannot be turned back into a usable key.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyScope(models.TextChoices):
    """What a key may do, narrowest first. The label is what the keys page shows in words."""

    INFERENCE = "inference", "/v1/ (OpenAI-compatible endpoint) only; no REST API"
    API = "api", "REST API and /v1/; cannot manage keys"
    KEYS = "keys", "Everything, including creating, listing and revoking keys"


# Narrowest first: a scope covers itself and every scope before it.
SCOPE_ORDER = [ApiKeyScope.INFERENCE, ApiKeyScope.API, ApiKeyScope.KEYS]


class ApiKey(OwnedModel):
    """A bearer token for the REST API and the OpenAI-compatible endpoint, stored hashed."""

    name = models.CharField(max_length=100)
    # Default `api`: a leaked everyday key cannot mint keys, so revoking it ends the leak.
    scope = models.CharField(max_length=20, choices=ApiKeyScope.choices, default=ApiKeyScope.API)
    lookup = models.CharField(max_length=16, unique=True, help_text="Visible start of the key.")
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix}…)"

    @property
    def display_prefix(self) -> str:
        return f"{API_KEY_PREFIX}{self.lookup}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def covers(self, scope: str) -> bool:
        """Whether this key's scope includes `scope` (every call it allows, this key may make)."""
        return SCOPE_ORDER.index(ApiKeyScope(self.scope)) >= SCOPE_ORDER.index(ApiKeyScope(scope))


class WorkerReport(models.Model):
    """The last self-report of one Celery worker: which queue, which torch, which devices."""

    hostname = models.CharField(max_length=255, unique=True)
    queue = models.CharField(max_length=50)
    pid = models.IntegerField()
    torch_version = models.CharField(max_length=50)
    accelerator = models.CharField(max_length=200, help_text="e.g. 'cpu' or 'cuda: 2 × H100'.")
    processes = models.PositiveIntegerField(
        default=1, help_text="Training processes it can host: its CUDA devices, or CPU cores."
    )
    reported_at = models.DateTimeField()

    class Meta:
        ordering = ["queue", "hostname"]

    def __str__(self) -> str:
        return f"{self.hostname} [{self.queue}]"


class AuditEvent(models.Model):
    """A security-relevant action: who did what to which object, from where. Admins read these;
    nothing in the console edits or deletes them."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True, help_text="Kept if the user goes.")
    action = models.CharField(max_length=50, db_index=True)
    target = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.actor_name or 'anonymous'} {self.action} {self.target}".strip()
