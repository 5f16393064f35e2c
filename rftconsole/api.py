"""Console-wide REST endpoints: who am I, API keys, system status."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import api_view
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from rftconsole.models import ApiKey, ApiKeyScope
from rftconsole.ownership import owned
from rftconsole.security.api_scopes import ManagesKeys, require_mintable
from rftconsole.services import create_api_key, revoke_api_key
from rftconsole.system import system_status

SCOPE_NAMES = ", ".join(f"'{scope}'" for scope in ApiKeyScope.values)


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    prefix = serializers.CharField(source="display_prefix", read_only=True)
    active = serializers.BooleanField(source="is_active", read_only=True)
    scope = serializers.ChoiceField(
        choices=ApiKeyScope.choices,
        default=ApiKeyScope.API,
        help_text="inference: /v1/ only; api (default): REST API and /v1/, no key management; "
        "keys: everything, including keys. A key may only create keys no wider than itself.",
        error_messages={"invalid_choice": f"Unknown scope '{{input}}': use one of {SCOPE_NAMES}."},
    )
    scope_description = serializers.CharField(source="get_scope_display", read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id", "name", "scope", "scope_description", "prefix", "active",
            "created_at", "last_used_at", "revoked_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at", "last_used_at", "revoked_at"]


class NewApiKeySerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once: store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]


class ApiKeyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """List, create and revoke your API keys. DELETE revokes (the row stays for the record).

    With an API key, only one of scope `keys` may use these, and it may create keys no wider than
    itself: an everyday key that leaks cannot make another, so revoking it ends the leak."""

    serializer_class = ApiKeySerializer
    permission_classes = [IsAuthenticated, ManagesKeys]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return owned(ApiKey, self.request.user)

    @extend_schema(request=ApiKeySerializer, responses={201: NewApiKeySerializer})
    def create(self, request: Request) -> Response:
        serializer = ApiKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        scope = serializer.validated_data["scope"]
        made_with = request.auth if isinstance(request.auth, ApiKey) else None
        require_mintable(made_with, scope)
        name = serializer.validated_data["name"]
        api_key, raw_key = create_api_key(request.user, name, scope, made_with=made_with)
        api_key.key = raw_key  # type: ignore[attr-defined]
        return Response(NewApiKeySerializer(api_key).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        revoke_api_key(get_object_or_404(self.get_queryset(), pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(responses={200: dict})
@api_view(["GET"])
def me(request: Request) -> Response:
    user = request.user
    return Response({"id": user.pk, "username": user.get_username(), "is_admin": user.is_superuser})


@extend_schema(responses={200: dict})
@api_view(["GET"])
def system(request: Request) -> Response:
    return Response(system_status(timeout=1.0).as_dict())
