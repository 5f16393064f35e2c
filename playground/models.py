"""Invocation logs: one row per request to a deployment, the raw material for datasets built from
real traffic (like Bedrock's model invocation logs)."""

from __future__ import annotations

from typing import Any

from django.db import models

from rftconsole.ownership import OwnedModel
from rftconsole.security.fields import EncryptedJSONField, EncryptedTextField

METADATA_MAX_KEYS = 16  # Bedrock's limit on requestMetadata
METADATA_MAX_LENGTH = 256  # Bedrock's limit on each key and each value


def check_metadata(metadata: Any) -> None:
    """Raise ValueError unless `metadata` is Bedrock-shaped: at most 16 string → string pairs.

    Enforced on every save, so filters and dataset rows can rely on flat string values.
    """
    if not isinstance(metadata, dict):
        raise ValueError("Request metadata must be an object of string keys and string values.")
    if len(metadata) > METADATA_MAX_KEYS:
        raise ValueError(
            f"Request metadata has {len(metadata)} keys; at most {METADATA_MAX_KEYS} are allowed."
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > METADATA_MAX_LENGTH:
            raise ValueError(
                f"Request metadata key {key!r} must be text of 1 to {METADATA_MAX_LENGTH} "
                "characters."
            )
        if not isinstance(value, str):
            raise ValueError(
                f"Request metadata value of {key!r} must be text, not {type(value).__name__}."
            )
        if len(value) > METADATA_MAX_LENGTH:
            raise ValueError(
                f"Request metadata value of {key!r} is longer than {METADATA_MAX_LENGTH} "
                "characters."
            )


class InvocationLog(OwnedModel):
    """One request to a deployment: what was asked, what came back, and how the user rated it.

    `request` and `response_text` are encrypted at rest when a key is configured; the metadata
    stays plain so that filters run in SQL (it is meant for tags such as a project name).
    """

    class Feedback(models.TextChoices):
        NONE = "", "None"
        UP = "up", "Thumbs up"
        DOWN = "down", "Thumbs down"

    class Source(models.TextChoices):
        CONSOLE = "console", "Console"
        BEDROCK = "bedrock", "Imported Bedrock log"

    deployment = models.CharField(
        max_length=200,  # an `ft:` model name (base, user, suffix, job, checkpoint) can pass 100
        help_text="The deployment the request went to (an imported Bedrock log: its modelId).",
    )
    request = EncryptedJSONField(help_text="The OpenAI chat request body: messages and sampling.")
    response_text = EncryptedTextField(blank=True)
    request_metadata = models.JSONField(
        default=dict, blank=True, help_text="Up to 16 string → string pairs, for filtering."
    )
    feedback = models.CharField(max_length=4, choices=Feedback.choices, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Imported Bedrock model invocation log records keep what identifies the call at AWS.
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.CONSOLE)
    model_id = models.CharField(
        max_length=2048,
        blank=True,
        help_text="Bedrock's `modelId` (an ARN can be 2,048 characters).",
    )
    operation = models.CharField(max_length=40, blank=True, help_text="e.g. Converse, InvokeModel.")
    request_id = models.CharField(max_length=100, blank=True, help_text="Bedrock's `requestId`.")
    logged_at = models.DateTimeField(
        null=True, blank=True, help_text="When Bedrock logged the call (its `timestamp`)."
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "invocation log"

    def __str__(self) -> str:
        return f"{self.deployment} #{self.pk}"

    def clean(self) -> None:
        super().clean()
        check_metadata(self.request_metadata)

    def save(self, *args: Any, **kwargs: Any) -> None:
        check_metadata(self.request_metadata)  # also for code that never calls full_clean()
        super().save(*args, **kwargs)


DEPLOYMENT_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,99}"


class Deployment(OwnedModel):
    """A model served on the OpenAI-compatible endpoint under `name` (the client's `model` id).

    Deleting keeps the row (status Deleted), so logs and history still say what was served; the
    name is unique only among a user's live (not deleted) deployments, so it can be reused.
    """

    class Status(models.TextChoices):
        CREATING = "creating", "Creating"
        ACTIVE = "active", "Active"
        FAILED = "failed", "Failed"
        DELETED = "deleted", "Deleted"

    name = models.CharField(
        max_length=100, help_text="The `model` id clients send: letters, digits, . _ : -"
    )
    # Removing a model from the registry removes its deployments (their logs keep the name).
    model = models.ForeignKey("jobs.ModelEntry", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CREATING)
    status_reason = models.TextField(blank=True)
    log_requests = models.BooleanField(
        default=True, help_text="Keep an invocation log of every request (opt out per deployment)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name"],
                condition=~models.Q(status="deleted"),
                name="unique_live_deployment_name_per_owner",
            )
        ]

    def __str__(self) -> str:
        return self.name


class PlaygroundSession(OwnedModel):
    """A side-by-side chat with 2 or 3 models, kept so it can be reopened.

    `transcript` holds one chat per model, keyed by the model id as text: user turns as
    `{"role", "content"}`, answers with their stats, score and invocation log id as well (only
    `role` and `content` are sent to the model).
    """

    title = models.CharField(max_length=200, blank=True)
    model_ids = models.JSONField(default=list, help_text="2 or 3 ModelEntry ids, in column order.")
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(default=0.7)
    top_p = models.FloatField(default=1.0)
    max_tokens = models.PositiveIntegerField(default=256)
    seed = models.BigIntegerField(null=True, blank=True)
    reward_version = models.ForeignKey(
        "rewards.RewardVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dataset = models.ForeignKey(
        "jobs.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Where 'Load a validation row' reads rows from.",
    )  # fmt: skip
    transcript = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        verbose_name = "playground session"

    def __str__(self) -> str:
        return self.title or f"Session #{self.pk}"


class Evaluation(OwnedModel):
    """A batch comparison: every chosen row answered by 2 or 3 models (registered models or job
    checkpoints) and scored with one reward version, run by a `default` worker.

    `candidates` is `[{"ref": "model:<id>" | "checkpoint:<id>", "label": ...}]` in column order;
    `summary` holds the statistics computed when the run finishes (see evaluation_stats).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    name = models.CharField(max_length=200, blank=True)
    candidates = models.JSONField(default=list)
    dataset = models.ForeignKey(
        "jobs.Dataset", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    dataset_name = models.CharField(max_length=100, help_text="Kept if the dataset is deleted.")
    row_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="The first N rows; empty: all."
    )
    reward_version = models.ForeignKey(
        "rewards.RewardVersion", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reward_label = models.CharField(max_length=120, help_text="Kept if the reward is deleted.")
    pass_threshold = models.FloatField(help_text="The reward version's, when the run was created.")
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    temperature = models.FloatField(default=1.0)
    max_tokens = models.PositiveIntegerField(default=64, help_text="inferenceMaxTokens")
    max_prompt_length = models.PositiveIntegerField(default=1024, help_text="maxPromptLength")
    seed = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    status_reason = models.TextField(blank=True)
    progress_done = models.PositiveIntegerField(default=0, help_text="Answers scored so far.")
    progress_total = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "evaluation"

    def __str__(self) -> str:
        return self.name or f"Evaluation #{self.pk}"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED, self.Status.CANCELLED)


class EvaluationRow(models.Model):
    """One dataset row of an evaluation and each candidate's answer to it, in column order:
    `answers` is `[{"text", "score", "passed", "error"}]` (score None until scored)."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="rows")
    index = models.PositiveIntegerField(help_text="0-based position in the dataset.")
    row = EncryptedJSONField(help_text="The dataset row: its prompt goes to every model.")
    answers = EncryptedJSONField(default=list)
    skipped = models.CharField(max_length=300, blank=True, help_text="Why no model answered.")

    class Meta:
        ordering = ["index"]
        constraints = [
            models.UniqueConstraint(fields=["evaluation", "index"], name="unique_evaluation_row")
        ]
