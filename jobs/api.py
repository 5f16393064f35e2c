"""REST endpoints for jobs: create, list, get, stop, pause, resume, clone; metrics, rollouts,
checkpoints."""

from __future__ import annotations

from typing import Any

from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.actions import JobActionError, create_job, request_pause, request_stop, resume
from jobs.models import (
    Checkpoint,
    Dataset,
    Job,
    MetricPoint,
    ModelEntry,
    Rollout,
    ValidationAnswers,
)
from jobs.registry.api import ModelEntrySerializer
from jobs.registry.checkpoints import checkpoint_as_model
from jobs.registry.inspection import RegistryError
from jobs.training.preflight import JobConfigError
from rewards.models import RewardFunction, RewardVersion
from rftconsole.ownership import owned
from rftconsole.parsers import parse_int


class OwnedName(serializers.SlugRelatedField):  # type: ignore[type-arg]
    """Refer to one of your own objects by name; others' objects do not exist here."""

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return owned(self.queryset.model, self.context["request"].user)


class JobSerializer(serializers.ModelSerializer[Job]):
    base_model = OwnedName(slug_field="name", queryset=ModelEntry.objects.all())
    train_dataset = OwnedName(slug_field="name", queryset=Dataset.objects.all())
    validation_dataset = OwnedName(
        slug_field="name", queryset=Dataset.objects.all(), required=False, allow_null=True
    )
    reward = OwnedName(slug_field="name", queryset=RewardFunction.objects.all(), write_only=True)
    reward_version = serializers.SerializerMethodField()
    pin_version = serializers.IntegerField(
        write_only=True, required=False, min_value=1, help_text="Reward version; default latest."
    )
    output_model = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Job
        fields = [
            "id", "name", "base_model", "train_dataset", "validation_dataset", "validation_split",
            "reward", "reward_version", "pin_version", "hyperparameters", "config", "status",
            "sub_status", "status_reason", "current_step", "total_steps", "attempts",
            "output_model", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = [
            "reward_version", "config", "status", "sub_status", "status_reason", "current_step",
            "total_steps", "attempts", "output_model", "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_reward_version(self, job: Job) -> dict[str, Any]:
        version = job.reward_version
        return {"id": version.pk, "reward": version.reward.name, "number": version.number}


class MetricSerializer(serializers.ModelSerializer[MetricPoint]):
    class Meta:
        model = MetricPoint
        fields = ["kind", "step", "epoch", "values"]


class RolloutSerializer(serializers.ModelSerializer[Rollout]):
    class Meta:
        model = Rollout
        fields = ["step", "prompt", "reference_answer", "completions", "reward_output"]


class CheckpointSerializer(serializers.ModelSerializer[Checkpoint]):
    class Meta:
        model = Checkpoint
        fields = ["step", "validation_reward", "validation_accuracy", "created_at"]


class ValidationAnswersSerializer(serializers.ModelSerializer[ValidationAnswers]):
    class Meta:
        model = ValidationAnswers
        fields = ["step", "rows", "answers", "created_at"]


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Reinforcement fine-tuning jobs. POST creates and queues one after the pre-flight checks."""

    serializer_class = JobSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return owned(Job, self.request.user).select_related(
            "base_model",
            "train_dataset",
            "validation_dataset",
            "output_model",
            "reward_version__reward",
        )

    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        try:
            job = create_job(
                request.user,
                data["name"],
                data["base_model"],
                data["train_dataset"],
                _pinned_version(data["reward"], data.get("pin_version")),
                data.get("validation_dataset"),
                data.get("validation_split", 0.1),
                data.get("hyperparameters") or {},
            )
        except JobConfigError as error:
            raise ValidationError(error.errors) from None
        return Response(self.get_serializer(job).data, status=status.HTTP_201_CREATED)

    def _act(self, action_function: Any) -> Response:
        job = self.get_object()
        try:
            action_function(job)
        except JobActionError as error:
            raise ValidationError({"detail": str(error)}) from None
        job.refresh_from_db()
        return Response(self.get_serializer(job).data)

    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str) -> Response:
        return self._act(request_stop)

    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        return self._act(request_pause)

    @action(detail=True, methods=["post"], url_path="resume")
    def resume_job(self, request: Request, pk: str) -> Response:
        return self._act(resume)

    @action(detail=True, methods=["get"])
    def clone(self, request: Request, pk: str) -> Response:
        """The creation payload of this job, to edit and POST as a new job."""
        job = self.get_object()
        payload = self.get_serializer(job).data
        keep = {
            "base_model",
            "train_dataset",
            "validation_dataset",
            "validation_split",
            "hyperparameters",
        }
        draft = {key: payload[key] for key in keep}
        version = job.reward_version
        draft.update(
            name=f"{job.name}-copy", reward=version.reward.name, pin_version=version.number
        )
        return Response(draft)

    @action(detail=True, methods=["get"])
    def metrics(self, request: Request, pk: str) -> Response:
        """All metric points, or only those after `?after=N` (what a reconnecting chart asks)."""
        job = self.get_object()
        points = MetricPoint.objects.filter(job=job)
        after = request.query_params.get("after")
        if after is not None:
            step = parse_int(after)
            if step is None:
                raise ValidationError({"after": "must be an integer step"})
            points = points.filter(step__gt=step)
        return Response(MetricSerializer(points, many=True).data)

    @action(detail=True, methods=["get"])
    def rollouts(self, request: Request, pk: str) -> Response:
        job = self.get_object()
        rollouts = Rollout.objects.filter(job=job)
        if "step" in request.query_params:
            rollouts = rollouts.filter(step=get_int(request, "step"))
        return Response(RolloutSerializer(rollouts[:200], many=True).data)

    @action(detail=True, methods=["get"])
    def checkpoints(self, request: Request, pk: str) -> Response:
        job = self.get_object()
        return Response(CheckpointSerializer(job.checkpoints.all(), many=True).data)

    @action(detail=True, methods=["get"], url_path="validation-answers")
    def validation_answers(self, request: Request, pk: str) -> Response:
        """What each validation answered, row by row (at most 200 rows a step); `?step=N`."""
        job = self.get_object()
        saved = ValidationAnswers.objects.filter(job=job)
        if "step" in request.query_params:
            saved = saved.filter(step=get_int(request, "step"))
        return Response(ValidationAnswersSerializer(saved, many=True).data)

    @action(detail=True, methods=["post"], url_path="use-checkpoint")
    def use_checkpoint(self, request: Request, pk: str) -> Response:
        """Register the checkpoint of `{"step": N}` as a tuned model (once) and return it."""
        job = self.get_object()
        step = request.data.get("step") if isinstance(request.data, dict) else None
        if type(step) is not int or not 0 <= step < 2**31:  # a database integer
            raise ValidationError({"step": "must be the integer step of a checkpoint of the job"})
        checkpoint = Checkpoint.objects.filter(job=job, step=step).select_related("job").first()
        if checkpoint is None:
            raise ValidationError({"step": f"the job has no checkpoint at step {step}"})
        try:
            entry = checkpoint_as_model(request.user, checkpoint)
        except RegistryError as error:
            raise ValidationError({"step": str(error)}) from None
        return Response(ModelEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


def get_int(request: Request, name: str) -> int:
    value = parse_int(request.query_params.get(name))
    if value is None:
        raise ValidationError({name: "must be an integer"})
    return value


def _pinned_version(reward: RewardFunction, number: int | None) -> RewardVersion:
    try:
        return reward.version(number)
    except RewardVersion.DoesNotExist as error:
        raise ValidationError({"pin_version": [str(error)]}) from None
