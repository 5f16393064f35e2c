"""REST endpoints for invocation logs: list them, rate them, and build a dataset from them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.datasets.api import DatasetSerializer
from jobs.datasets.importer import DatasetError
from playground.log_import import import_upload
from playground.logs import LogFilter, LogFilterError, dataset_from_logs, metadata_equals
from playground.models import InvocationLog
from rftconsole.ownership import owned
from rftconsole.parsers import StrictJSONParser

METADATA_PARAM = "metadata."


class InvocationLogSerializer(serializers.ModelSerializer[InvocationLog]):
    class Meta:
        model = InvocationLog
        fields = [
            "id", "deployment", "request", "response_text", "request_metadata", "feedback",
            "prompt_tokens", "completion_tokens", "latency_ms", "created_at", "source",
            "model_id", "operation", "request_id", "logged_at",
        ]  # fmt: skip
        read_only_fields = fields


class FeedbackInput(serializers.Serializer[Any]):
    feedback = serializers.ChoiceField(choices=InvocationLog.Feedback.choices, allow_blank=True)


class LogImportInput(serializers.Serializer[Any]):
    file = serializers.FileField(required=False)


class FilterInput(serializers.Serializer[Any]):
    key = serializers.CharField(trim_whitespace=False)
    operator = serializers.CharField()  # checked by playground.logs, which says what is allowed
    value = serializers.CharField(allow_blank=True, trim_whitespace=False)


class FromLogsInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    filters = serializers.ListField(child=FilterInput(), required=False, default=list)
    combine = serializers.ChoiceField(choices=["and", "or"], default="and")
    use_response_as_reference = serializers.BooleanField(default=False)
    deployment = serializers.CharField(required=False, allow_blank=True, allow_null=True)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("metadata.KEY", str, description="Only logs with metadata KEY=value."),
            OpenApiParameter("feedback", str, enum=["up", "down"]),
            OpenApiParameter("deployment", str),
        ]
    )
)
class InvocationLogViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Your deployments' requests, newest first. Filter with `?metadata.KEY=VALUE` (all must
    match), `?feedback=up|down` and `?deployment=NAME`."""

    serializer_class = InvocationLogSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        logs = owned(InvocationLog, self.request.user)
        if self.action != "list":
            return logs
        params = self.request.query_params
        for param, value in params.items():
            if param.startswith(METADATA_PARAM):
                key = param.removeprefix(METADATA_PARAM)
                try:
                    logs = logs.filter(metadata_equals(key, value))
                except LogFilterError as error:
                    raise ValidationError({"detail": [str(error)]}) from None
        feedback = params.get("feedback")
        if feedback is not None:
            if feedback not in (InvocationLog.Feedback.UP, InvocationLog.Feedback.DOWN):
                raise ValidationError({"detail": ["feedback must be 'up' or 'down'."]})
            logs = logs.filter(feedback=feedback)
        if params.get("deployment"):
            logs = logs.filter(deployment=params["deployment"])
        return logs

    @extend_schema(request=FeedbackInput, responses={200: InvocationLogSerializer})
    @action(detail=True, methods=["post"])
    def feedback(self, request: Request, pk: str) -> Response:
        """Rate a response: {"feedback": "up" | "down" | ""} ("" clears it)."""
        log = self.get_object()
        given = FeedbackInput(data=request.data)
        given.is_valid(raise_exception=True)
        log.feedback = given.validated_data["feedback"]
        log.save(update_fields=["feedback"])
        return Response(InvocationLogSerializer(log).data)

    @extend_schema(request=LogImportInput, responses={201: dict, 400: dict})
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        # JSON too, though it cannot carry the file: a JSON body gets the same clear 400.
        parser_classes=[MultiPartParser, FormParser, StrictJSONParser],
    )
    def import_records(self, request: Request) -> Response:
        """Import Bedrock model invocation log records (multipart `file`, JSONL or .gz) as your
        invocation logs. With any bad record nothing is stored and the report lists them by line."""
        try:
            report = import_upload(request)
        except DatasetError as error:
            report_body = error.report.as_dict() if error.report else None
            return Response(
                {"detail": str(error), "report": report_body}, status=status.HTTP_400_BAD_REQUEST
            )
        body = {"imported": report.rows, "report": report.as_dict()}
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(request=FromLogsInput, responses={201: dict, 400: dict})
@api_view(["POST"])
def dataset_from_logs_view(request: Request) -> Response:
    """Build a dataset from your invocation logs: Bedrock-style request-metadata filters
    ({"key", "operator": "equals" | "not_equals", "value"}, at most 16) joined by one `combine`
    ("and" | "or"); `use_response_as_reference` puts each response in `reference_answer`."""
    given = FromLogsInput(data=request.data)
    if not given.is_valid():
        return Response(
            {"detail": _first_error(given.errors), "errors": given.errors},
            status=status.HTTP_400_BAD_REQUEST,
        )
    data = given.validated_data
    try:
        dataset, report = dataset_from_logs(
            request.user,
            data["name"],
            [LogFilter(**f) for f in data["filters"]],
            data["combine"],
            data["use_response_as_reference"],
            deployment=data.get("deployment") or None,
            description=data["description"],
        )
    except DatasetError as error:
        report_body = error.report.as_dict() if error.report else None
        return Response(
            {"detail": str(error), "report": report_body}, status=status.HTTP_400_BAD_REQUEST
        )
    body = {"dataset": DatasetSerializer(dataset).data, "report": report.as_dict()}
    return Response(body, status=status.HTTP_201_CREATED)


def _first_error(errors: Any, where: str = "") -> str:
    """The first field error as one sentence, e.g. `filters.0.key: This field is required.`"""
    if isinstance(errors, dict):
        for field, inner in errors.items():
            return _first_error(inner, f"{where}.{field}" if where else str(field))
    if isinstance(errors, list) and errors:
        first = errors[0]
        if isinstance(first, dict | list):
            return _first_error(first, f"{where}.0" if where else "0")
        return f"{where}: {first}" if where else str(first)
    return "Invalid input."
