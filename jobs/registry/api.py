"""REST endpoints of the model registry: list, register, retrieve, remove."""

from __future__ import annotations

from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.models import ModelEntry
from jobs.registry.services import RegistryError, remove_model, start_registration
from rftconsole.ownership import owned


class ModelEntrySerializer(serializers.ModelSerializer[ModelEntry]):
    base = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = ModelEntry
        fields = [
            "id", "name", "description", "kind", "status", "status_reason", "source", "base",
            "is_adapter", "architecture", "model_type", "parameter_count", "context_length",
            "has_chat_template", "size_bytes", "created_at",
        ]  # fmt: skip
        read_only_fields = [f for f in fields if f not in {"name", "description", "source"}]


class ModelEntryViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The model registry. POST a hub id (any user) or a server directory (admins) to register;
    DELETE forgets an entry (its files stay on disk)."""

    serializer_class = ModelEntrySerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return owned(ModelEntry, self.request.user).select_related("base")

    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            entry = start_registration(
                request.user,
                data["source"],
                data["name"],
                data.get("description", ""),
                allow_local_paths=request.user.is_superuser,
            )
        except RegistryError as error:
            raise ValidationError({"source": [str(error)]}) from None
        return Response(self.get_serializer(entry).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ModelEntry) -> None:
        try:
            remove_model(instance)
        except RegistryError as error:
            raise ValidationError({"detail": [str(error)]}) from None
