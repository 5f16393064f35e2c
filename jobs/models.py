"""Datasets and the model registry (jobs come with the training engine)."""

from __future__ import annotations

from django.db import models

from rftconsole.ownership import OwnedModel


class ModelEntry(OwnedModel):
    """A model users can train from or deploy: a base (HF directory or hub id) or a tuned model."""

    class Kind(models.TextChoices):
        BASE = "base", "Base"
        TUNED = "tuned", "Tuned"

    class Status(models.TextChoices):
        REGISTERING = "registering", "Registering"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.BASE)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.REGISTERING)
    status_reason = models.TextField(blank=True)
    source = models.CharField(max_length=500, help_text="The local path or hub id as given.")
    path = models.CharField(max_length=1000, blank=True, help_text="Local HF-format directory.")
    base = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="derived"
    )
    is_adapter = models.BooleanField(default=False, help_text="A PEFT adapter on top of `base`.")
    architecture = models.CharField(max_length=100, blank=True)
    model_type = models.CharField(max_length=50, blank=True)
    parameter_count = models.BigIntegerField(null=True, blank=True)
    context_length = models.IntegerField(null=True, blank=True)
    has_chat_template = models.BooleanField(default=False)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "model"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_model_name_per_owner")
        ]

    def __str__(self) -> str:
        return self.name


class Dataset(OwnedModel):
    """A JSONL file of Bedrock-format rows: `messages`, `reference_answer`, extra fields."""

    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        LOGS = "logs", "Invocation logs"
        STARTER = "starter", "Starter"

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.UPLOAD)
    path = models.CharField(max_length=1000)
    row_count = models.IntegerField()
    fields = models.JSONField(default=list, help_text="Top-level keys found in the rows.")
    size_bytes = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_dataset_name_per_owner")
        ]

    def __str__(self) -> str:
        return self.name
