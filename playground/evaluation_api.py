"""REST endpoints of evaluations: list, create (queued to a `default` worker), retrieve, rows,
export (CSV or JSONL) and cancel; all scoped to the caller, another user's evaluation is a 404."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.models import Dataset, Job
from playground import evaluations as ev
from playground.api import _first_error
from playground.evaluation_exports import FORMATS, export_lines, filename, row_object
from playground.models import Evaluation
from rewards.models import RewardFunction, RewardVersion
from rftconsole.ownership import owned


class EvaluationSerializer(serializers.ModelSerializer[Evaluation]):
    dataset = serializers.PrimaryKeyRelatedField(read_only=True)
    reward_version = serializers.PrimaryKeyRelatedField(read_only=True)
    job = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Evaluation
        fields = [
            "id", "name", "candidates", "dataset", "dataset_name", "row_limit", "reward_version",
            "reward_label", "pass_threshold", "job", "temperature", "max_tokens",
            "max_prompt_length", "seed", "status", "status_reason", "progress_done",
            "progress_total", "summary", "created_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class EvaluationInput(serializers.Serializer[Any]):
    models = serializers.ListField(
        child=serializers.CharField(),
        min_length=ev.MIN_MODELS,
        max_length=ev.MAX_MODELS,
        help_text='2 or 3 of "model:<id>" or "checkpoint:<id>"; the first is the reference.',
    )
    dataset = serializers.IntegerField(help_text="One of your datasets, by id.")
    rows = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=ev.MAX_ROWS,
        help_text="The first N rows (omit or null: all).",
    )  # fmt: skip
    reward_version = serializers.IntegerField(help_text="A version of one of your rewards, by id.")
    job = serializers.IntegerField(
        required=False, allow_null=True, help_text="Take unset sampling settings from this job."
    )
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2)
    max_tokens = serializers.IntegerField(required=False, min_value=1, max_value=32768)
    max_prompt_length = serializers.IntegerField(required=False, min_value=16, max_value=32768)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


def _bad(detail: str) -> Response:
    return Response({"detail": detail}, status=status.HTTP_400_BAD_REQUEST)


class EvaluationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Batch evaluations: 2 or 3 models answer the same dataset rows, scored by one reward.
    DELETE removes one with its rows (a run in progress stops after its current batch)."""

    serializer_class = EvaluationSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return owned(Evaluation, self.request.user)

    def perform_destroy(self, instance: Evaluation) -> None:
        ev.delete_evaluation(instance)

    @extend_schema(request=EvaluationInput, responses={201: EvaluationSerializer, 400: dict})
    def create(self, request: Request) -> Response:
        """Queue an evaluation. Unset sampling settings come from `job` when given, else the
        defaults (temperature 1, inferenceMaxTokens 64, maxPromptLength 1024, seed 0)."""
        given = EvaluationInput(data=request.data)
        if not given.is_valid():
            return Response(
                {"detail": _first_error(given.errors), "errors": given.errors},
                status=status.HTTP_400_BAD_REQUEST,
            )
        data = given.validated_data
        user = request.user
        dataset = owned(Dataset, user).filter(pk=data["dataset"]).first()
        if dataset is None:
            return _bad(f"dataset: no dataset {data['dataset']} of yours.")
        rewards = owned(RewardFunction, user)
        version = RewardVersion.objects.filter(
            pk=data["reward_version"], reward__in=rewards
        ).first()
        if version is None:
            return _bad(f"reward_version: no reward version {data['reward_version']} of yours.")
        job = None
        if data.get("job") is not None:
            job = owned(Job, user).filter(pk=data["job"]).first()
            if job is None:
                return _bad(f"job: no job {data['job']} of yours.")
        base = ev.job_settings(job) if job else ev.Settings()
        settings = ev.Settings(
            data.get("temperature", base.temperature),
            data.get("max_tokens", base.max_tokens),
            data.get("max_prompt_length", base.max_prompt_length),
            data.get("seed", base.seed),
        )
        try:
            evaluation = ev.create_evaluation(
                user, data["models"], dataset, version, settings,
                row_limit=data.get("rows"), job=job, name=data["name"],
            )  # fmt: skip
        except ev.EvaluationError as error:
            return _bad(str(error))
        return Response(EvaluationSerializer(evaluation).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("sort", str, enum=list(ev.SORTS))], responses={200: dict}
    )
    @action(detail=True, methods=["get"])
    def rows(self, request: Request, pk: str) -> Response:
        """Every row with each model's answer, score, pass and error; `?sort=diff` puts the
        biggest gain of the last model over the first on top (`-diff`: biggest loss)."""
        evaluation = self.get_object()
        sort = request.query_params.get("sort", "row")
        if sort not in ev.SORTS:
            return _bad(f"sort must be one of: {', '.join(ev.SORTS)}.")
        rows = ev.sorted_rows(evaluation, sort)
        body = [{**row_object(evaluation, r), "score_diff": ev.score_diff(r)} for r in rows]
        return Response({"count": len(body), "results": body})

    @extend_schema(
        parameters=[OpenApiParameter("as", str, enum=list(FORMATS))],
        responses={(200, "text/csv"): str},
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str) -> Any:
        """The rows as a file: `?as=csv` (default) or `?as=jsonl`."""
        evaluation = self.get_object()
        fmt = request.query_params.get("as", "csv")
        if fmt not in FORMATS:
            return _bad(f"as must be one of: {', '.join(FORMATS)}.")
        response = StreamingHttpResponse(export_lines(evaluation, fmt), content_type=FORMATS[fmt])
        response["Content-Disposition"] = f'attachment; filename="{filename(evaluation, fmt)}"'
        return response

    @extend_schema(request=None, responses={200: EvaluationSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Stop a queued or running evaluation (after its current batch); 400 once finished."""
        evaluation = self.get_object()
        if not ev.cancel(evaluation):
            return _bad(f"Evaluation {evaluation.pk} has already finished ({evaluation.status}).")
        evaluation.refresh_from_db()
        return Response(EvaluationSerializer(evaluation).data)
