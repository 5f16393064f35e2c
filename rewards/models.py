"""Reward functions with immutable versions: editing makes a new version; jobs pin one."""

from __future__ import annotations

from django.db import models

from rftconsole.ownership import OwnedModel


class RewardFunction(OwnedModel):
    class Kind(models.TextChoices):
        BUILTIN = "builtin", "Built-in grader"
        CODE = "code", "Custom code"
        JUDGE = "judge", "Model as judge"
        OPENAI_GRADER = "openai_grader", "OpenAI grader"

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_reward_name_per_owner")
        ]

    def __str__(self) -> str:
        return self.name

    def version(self, number: int | None = None) -> RewardVersion:
        """Version `number`, or the latest when none is given."""
        if number is None:
            return self.latest_version()
        found = self.versions.filter(number=number).first()
        if found is None:
            raise RewardVersion.DoesNotExist(f"{self.name} has no version {number}.")
        return found

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


class RewardTest(OwnedModel):
    """One run of the test bench: a reward version on N rows, before any training."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    version = models.ForeignKey(RewardVersion, on_delete=models.CASCADE, related_name="tests")
    dataset = models.ForeignKey(
        "jobs.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model = models.ForeignKey(
        "jobs.ModelEntry", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Sample the completions from this model; empty when they were typed.",
    )  # fmt: skip
    samples = models.JSONField(
        default=list, help_text="The rows to score, with typed completions when there is no model."
    )
    temperature = models.FloatField(default=1.0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    results = models.JSONField(default=list)
    seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"test of {self.version} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}

    def summary(self) -> dict[str, float | int]:
        rows = len(self.results)
        scored = [r for r in self.results if r.get("error") is None]
        return {
            "rows": rows,
            "mean_score": round(sum(r["score"] for r in scored) / len(scored), 4)
            if scored
            else 0.0,
            "passed": sum(1 for r in self.results if r.get("passed")),
            "errors": rows - len(scored),
        }
