"""REST endpoints for datasets: upload (validated and converted), list, rows, token stats, split,
build from invocation logs, delete."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.datasets.importer import DatasetError
from jobs.datasets.tools import page_of_rows, remove_dataset, split_dataset, token_stats
from jobs.datasets.transfers import (
    download_response,
    imported,
    too_large_message,
    upload_too_large,
)
from jobs.models import Dataset, ModelEntry
from rftconsole.ownership import owned
from rftconsole.parsers import StrictJSONParser, json_safe, parse_int


class DatasetSerializer(serializers.ModelSerializer[Dataset]):
    class Meta:
        model = Dataset
        fields = [
            "id", "name", "description", "source", "row_count", "fields", "size_bytes",
            "converted", "warnings", "token_stats", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class UploadInput(serializers.Serializer[Any]):
    file = serializers.FileField(required=False)
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    dry_run = serializers.BooleanField(required=False, default=False)


class SplitInput(serializers.Serializer[Any]):
    fraction = serializers.FloatField(default=0.1)
    seed = serializers.IntegerField(default=0)


class DatasetViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your datasets. POST a JSONL file or a .gz of one (multipart `file`, `name`): every line is
    checked; with any problem nothing is stored and the answer lists them by line."""

    serializer_class = DatasetSerializer
    parser_classes = [MultiPartParser, FormParser, StrictJSONParser]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return owned(Dataset, self.request.user)

    def create(self, request: Request) -> Response:
        given = UploadInput(data=request.data)
        if upload_too_large(request):
            return _refused(DatasetError(too_large_message(request)))
        given.is_valid(raise_exception=True)
        try:
            dataset, report = imported(request, given.validated_data)
        except DatasetError as error:
            return _refused(error)
        if dataset is None:
            return Response({"dataset": None, "report": report})
        body = {"dataset": DatasetSerializer(dataset).data, "report": report}
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Dataset) -> None:
        try:
            remove_dataset(instance)
        except DatasetError as error:
            raise ValidationError({"detail": [str(error)]}) from None

    @action(detail=True, methods=["get"])
    def rows(self, request: Request, pk: str) -> Response:
        """Rows as stored (converted to chat format): ?offset=0&limit=20 (at most 100). A NaN or
        Infinity in a row stored before imports refused them is shown as null."""
        dataset = self.get_object()
        offset = _number(request.query_params.get("offset"), 0, 0, dataset.row_count)
        limit = _number(request.query_params.get("limit"), 20, 1, 100)
        rows = [json_safe(row) for row in page_of_rows(dataset, offset, limit)]
        return Response({"offset": offset, "count": dataset.row_count, "rows": rows})

    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str) -> FileResponse:
        """The stored rows as a JSONL file (audited)."""
        return download_response(request, self.get_object())

    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: str) -> Response:
        """Prompt-token statistics in ?model=NAME's tokenizer (chat template applied)."""
        dataset = self.get_object()
        name = request.query_params.get("model", "")
        entry = owned(ModelEntry, request.user).filter(name=name).first()
        if entry is None or entry.status != ModelEntry.Status.READY:
            raise ValidationError({"model": [f"You have no ready model named {name!r}."]})
        return Response(token_stats(dataset, entry))

    @action(detail=True, methods=["post"])
    def split(self, request: Request, pk: str) -> Response:
        """A seeded random split into `<name>-train` and `<name>-validation`."""
        dataset = self.get_object()
        given = SplitInput(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            parts = split_dataset(request.user, dataset, **given.validated_data)
        except DatasetError as error:
            raise ValidationError({"detail": [str(error)]}) from None
        return Response(DatasetSerializer(parts, many=True).data, status=status.HTTP_201_CREATED)


def _refused(error: DatasetError) -> Response:
    report = error.report.as_dict() if error.report else None
    return Response({"detail": str(error), "report": report}, status=status.HTTP_400_BAD_REQUEST)


def _number(text: str | None, default: int, low: int, high: int) -> int:
    value = parse_int(text, default)
    if value is None:
        raise ValidationError({"detail": [f"{text!r} is not a whole number."]})
    return min(max(value, low), high)
