"""The jobs app's tables: models in the registry, datasets, jobs and what they record (events,
metric points, rollouts, checkpoints), and wizard drafts."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models

from rftconsole.ownership import OwnedModel, owned
from rftconsole.security.fields import EncryptedJSONField, EncryptedTextField


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


def ready_models(user: AbstractBaseUser | AnonymousUser) -> models.QuerySet[ModelEntry]:
    """The user's models that can be used now: trained, deployed, judged with, measured in."""
    return owned(ModelEntry, user).filter(status=ModelEntry.Status.READY)


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
    converted = models.JSONField(default=dict, help_text="Rows converted, by original shape.")
    warnings = models.JSONField(default=list, help_text="What the import noticed but accepted.")
    token_stats = models.JSONField(
        default=dict, help_text="Prompt-token statistics, by the model whose tokenizer counted."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_dataset_name_per_owner")
        ]

    def __str__(self) -> str:
        return self.name


class Job(OwnedModel):
    """A reinforcement fine-tuning job: base model + data + pinned reward version → tuned model."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        VALIDATING = "validating", "Validating"
        TRAINING = "training", "Training"
        EVALUATING = "evaluating", "Evaluating"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        STOPPING = "stopping", "Stopping"
        STOPPED = "stopped", "Stopped"
        PAUSED = "paused", "Paused"

    class Request(models.TextChoices):
        NONE = "", "None"
        PAUSE = "pause", "Pause"
        STOP = "stop", "Stop"

    ACTIVE = (Status.VALIDATING, Status.TRAINING, Status.EVALUATING, Status.STOPPING)
    FINISHED = (Status.COMPLETED, Status.FAILED, Status.STOPPED)

    name = models.CharField(max_length=100)
    base_model = models.ForeignKey(ModelEntry, on_delete=models.PROTECT, related_name="jobs")
    train_dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="+")
    validation_dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    validation_split = models.FloatField(
        default=0.0, help_text="Without a validation dataset: fraction of rows held out (seeded)."
    )
    reward_version = models.ForeignKey(
        "rewards.RewardVersion", on_delete=models.PROTECT, related_name="jobs"
    )
    hyperparameters = models.JSONField(default=dict, help_text="As given by the user.")
    config = models.JSONField(default=dict, help_text="Frozen at launch: shown as launched.")
    launch = models.JSONField(
        default=dict, blank=True, help_text="How the worker started it (jobs.training.distributed)."
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    sub_status = models.CharField(max_length=200, blank=True)
    status_reason = models.TextField(blank=True)
    requested = models.CharField(max_length=5, choices=Request.choices, blank=True, default="")
    current_step = models.IntegerField(default=0)
    total_steps = models.IntegerField(default=0)
    attempts = models.IntegerField(default=0)
    worker = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    training_seconds = models.FloatField(default=0.0, help_text="Summed over attempts.")
    output_model = models.ForeignKey(
        ModelEntry, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    output_step = models.IntegerField(null=True, blank=True, help_text="Step of the output model.")
    # Set by the OpenAI fine-tuning API (/v1/fine_tuning/jobs); shown there as given.
    suffix = models.CharField(max_length=64, blank=True, help_text="Part of the `ft:` model name.")
    metadata = models.JSONField(default=dict, blank=True, help_text="Up to 16 key: value strings.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def group_name(self) -> str:
        return f"job-{self.pk}"


class JobEvent(models.Model):
    """The status timeline of a job, each change with its human-readable reason."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=12, choices=Job.Status.choices)
    sub_status = models.CharField(max_length=200, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]


class MetricPoint(models.Model):
    """One logged step of one series ("train" or "eval"), unique: a resumed job never duplicates."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="metrics")
    kind = models.CharField(max_length=10)
    step = models.IntegerField()
    epoch = models.FloatField(default=0.0)
    values = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["job", "kind", "step"], name="unique_metric_step")
        ]


class Rollout(models.Model):
    """A sampled group for the inspector: the prompt, each completion with its reward.

    The content fields are encrypted at rest when a key is configured
    (rftconsole/security/fields.py).
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="rollouts")
    step = models.IntegerField()
    prompt = EncryptedJSONField()
    reference_answer = EncryptedJSONField(null=True)
    completions = EncryptedJSONField(help_text="[{text, reward, components, error}]")
    reward_output = EncryptedTextField(blank=True, help_text="What the reward printed.")

    class Meta:
        ordering = ["step", "pk"]


class Checkpoint(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.IntegerField()
    path = models.CharField(max_length=1000)
    validation_reward = models.FloatField(null=True)
    validation_accuracy = models.FloatField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        constraints = [
            models.UniqueConstraint(fields=["job", "step"], name="unique_checkpoint_step")
        ]


class ValidationAnswers(models.Model):
    """What one validation (evaluation) of a job answered, row by row, as OpenAI shows per
    checkpoint: `answers` is [{prompt, answer, reward, error}], at most MAX_ROWS rows (`rows` says
    how many were scored). Encrypted at rest like rollouts; owned through its job."""

    MAX_ROWS = 200

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="validation_answers")
    step = models.IntegerField()
    answers = EncryptedJSONField(help_text="[{prompt, answer, reward, error}], at most 200.")
    rows = models.IntegerField(default=0, help_text="Rows the evaluation scored (may pass 200).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        verbose_name = "validation answers"
        verbose_name_plural = "validation answers"
        constraints = [
            models.UniqueConstraint(fields=["job", "step"], name="unique_validation_answers_step")
        ]


class JobDraft(OwnedModel):
    """The creation wizard's progress: the answers so far, kept so a user can leave and resume."""

    name = models.CharField(max_length=100, blank=True)
    data = models.JSONField(default=dict)
    completed = models.JSONField(default=list, help_text="Steps whose answers passed their checks.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.name or f"draft {self.pk}"
