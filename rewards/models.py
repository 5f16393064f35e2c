"""Reward functions with immutable versions: editing makes a new version; jobs pin one."""

from __future__ import annotations

from django.db import models

from rftconsole.ownership import OwnedModel


class RewardFunction(OwnedModel):
    class Kind(models.TextChoices):
        BUILTIN = "builtin", "Built-in grader"
        CODE = "code", "Custom code"
        JUDGE = "judge", "Model as judge"

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_reward_name_per_owner")
        ]

    def __str__(self) -> str:
        return self.name

    def latest_version(self) -> RewardVersion:
        version = self.versions.order_by("-number").first()
        if version is None:
            raise RewardVersion.DoesNotExist(f"Reward {self.name!r} has no version.")
        return version


class RewardVersion(models.Model):
    reward = models.ForeignKey(RewardFunction, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    config = models.JSONField(default=dict, help_text="Kind-specific settings, e.g. the grader.")
    code = models.TextField(blank=True)
    pass_threshold = models.FloatField(
        default=1.0, help_text="A row counts as correct when its score reaches this value."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["reward", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["reward", "number"], name="unique_reward_version")
        ]

    def __str__(self) -> str:
        return f"{self.reward.name} v{self.number}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Reward versions are immutable: create a new version instead.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]
