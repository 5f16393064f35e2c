"""REST endpoints of the rewards app: rewards and their versions, templates, validate and run
(like OpenAI's grader endpoints), and test-bench results."""

from __future__ import annotations

import time
from typing import Any

from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.models import Dataset, ModelEntry
from rewards.code import CodeError, detect_interface
from rewards.library import TEMPLATES, get_template
from rewards.models import RewardFunction, RewardTest, RewardVersion
from rewards.services import (
    CONFIG_NOT_OBJECT,
    RewardError,
    create_from_template,
    create_reward,
    new_version,
    public_config,
    reward_problems,
)
from rewards.testbench import MAX_TEST_ROWS, TestBenchError, start_test
from rftconsole.ownership import owned


class VersionSerializer(serializers.ModelSerializer[RewardVersion]):
    config = serializers.SerializerMethodField()
    interface = serializers.SerializerMethodField()

    class Meta:
        model = RewardVersion
        fields = ["id", "number", "config", "code", "interface", "pass_threshold", "created_at"]

    def get_config(self, version: RewardVersion) -> dict[str, Any]:
        return public_config(version.config)

    def get_interface(self, version: RewardVersion) -> str | None:
        try:
            return detect_interface(version.code) if version.code else None
        except CodeError:
            return None


class RewardSerializer(serializers.ModelSerializer[RewardFunction]):
    latest_version = serializers.SerializerMethodField()
    version_count = serializers.IntegerField(source="versions.count", read_only=True)

    class Meta:
        model = RewardFunction
        fields = ["id", "name", "description", "kind", "created_at", "version_count"]
        fields += ["latest_version"]

    def get_latest_version(self, reward: RewardFunction) -> dict[str, Any]:
        return VersionSerializer(reward.latest_version()).data


class TextField(serializers.CharField):
    """Text only: DRF's CharField would quietly turn `"code": 123` into the code "123"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise ValidationError(f"Must be text (a JSON string), not {_kind(data)}.")
        return super().to_internal_value(data)


class ConfigField(serializers.JSONField):
    """A JSON object: a list or a number here used to reach the services and end as a 500."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise ValidationError(CONFIG_NOT_OBJECT)
        return value


class RewardInput(serializers.Serializer[Any]):
    """Create from scratch (kind + config/code) or from a template (`template` slug)."""

    name = serializers.CharField(max_length=100, required=False, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(RewardFunction.Kind.choices, required=False)
    template = serializers.CharField(required=False)
    config = ConfigField(required=False, default=dict)
    code = TextField(required=False, allow_blank=True, default="", trim_whitespace=False)
    pass_threshold = serializers.FloatField(required=False)
    api_key = serializers.CharField(required=False, allow_blank=True, write_only=True)


class VersionInput(serializers.Serializer[Any]):
    config = ConfigField(required=False)
    code = TextField(required=False, allow_blank=True, trim_whitespace=False)
    pass_threshold = serializers.FloatField(required=False)
    api_key = serializers.CharField(required=False, allow_blank=True, write_only=True)
    description = serializers.CharField(required=False, allow_blank=True)


class ValidateInput(serializers.Serializer[Any]):
    kind = serializers.CharField(required=False, allow_blank=True, default="")
    config = ConfigField(required=False, default=dict)
    code = TextField(required=False, allow_blank=True, default="", trim_whitespace=False)


class RunInput(serializers.Serializer[Any]):
    version = serializers.IntegerField(required=False, min_value=1)
    samples = serializers.ListField(child=serializers.DictField(), required=False)
    dataset = serializers.CharField(required=False, help_text="One of your datasets, by name.")
    rows = serializers.IntegerField(required=False, default=5, min_value=1, max_value=MAX_TEST_ROWS)
    start = serializers.IntegerField(required=False, default=0, min_value=0)
    model = serializers.CharField(required=False, help_text="Sample completions from this model.")
    completions = serializers.ListField(
        child=serializers.CharField(allow_blank=True), required=False
    )
    temperature = serializers.FloatField(required=False, default=1.0, min_value=0, max_value=2)
    wait = serializers.FloatField(required=False, default=0, min_value=0, max_value=300)


class TestSerializer(serializers.ModelSerializer[RewardTest]):
    reward = serializers.CharField(source="version.reward.name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    summary = serializers.SerializerMethodField()

    class Meta:
        model = RewardTest
        fields = ["id", "reward", "version", "status", "error", "seconds", "summary", "results"]
        fields += ["created_at"]

    def get_summary(self, test: RewardTest) -> dict[str, Any]:
        return test.summary()


class RewardViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your reward functions. Editing (POST …/versions/) adds a version; jobs pin one."""

    serializer_class = RewardSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return owned(RewardFunction, self.request.user).prefetch_related("versions")

    def create(self, request: Request) -> Response:
        given = _valid(RewardInput, request.data)
        try:
            if "template" in given:
                version = create_from_template(
                    request.user,
                    given["template"],
                    given["name"],
                    given["config"],
                    given.get("api_key"),
                )
            else:
                if "kind" not in given:
                    raise ValidationError({"kind": ["Give a kind, or a template to start from."]})
                version = create_reward(
                    request.user,
                    given["name"],
                    given["kind"],
                    given["description"],
                    given["config"],
                    given["code"],
                    given.get("pass_threshold", 1.0),
                    given.get("api_key"),
                )
        except KeyError as error:
            raise ValidationError({"template": [str(error.args[0])]}) from None
        except RewardError as error:
            raise ValidationError(error.problems) from None
        return Response(RewardSerializer(version.reward).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: RewardFunction) -> None:
        if instance.versions.filter(jobs__isnull=False).exists():
            raise ValidationError({"detail": ["Jobs use this reward; it stays for their record."]})
        instance.delete()

    @action(detail=True, methods=["get", "post"])
    def versions(self, request: Request, pk: str) -> Response:
        reward = self.get_object()
        if request.method == "GET":
            return Response(VersionSerializer(reward.versions.all(), many=True).data)
        given = _valid(VersionInput, request.data)
        try:
            version = new_version(reward, **given)
        except RewardError as error:
            raise ValidationError(error.problems) from None
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @action(detail=False, methods=["post"])
    def validate(self, request: Request) -> Response:
        """Check a reward definition without saving it: {valid, problems, interface}."""
        given = _valid(ValidateInput, request.data)
        kind, config, code = given["kind"], given["config"], given["code"]
        problems = reward_problems(request.user, kind, config, code)
        interface = None
        if kind == RewardFunction.Kind.CODE and not problems:
            interface = detect_interface(code)
        return Response({"valid": not problems, "problems": problems, "interface": interface})

    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str) -> Response:
        """Score samples (or N dataset rows, typed or sampled) with a version; `wait` seconds for
        the result, else poll GET /api/reward-tests/<id>/."""
        reward = self.get_object()
        given = _valid(RunInput, request.data)
        version = _version(reward, given.get("version"))
        try:
            test = start_test(
                request.user,
                version,
                dataset=_owned_by_name(Dataset, request, given.get("dataset"), "dataset"),
                rows=given["rows"],
                start=given["start"],
                model=_owned_by_name(ModelEntry, request, given.get("model"), "model"),
                completions=given.get("completions"),
                samples=given.get("samples"),
                temperature=given["temperature"],
            )
        except TestBenchError as error:
            raise ValidationError({"detail": [str(error)]}) from None
        test = _wait_for(test, given["wait"])
        code = status.HTTP_200_OK if test.finished else status.HTTP_202_ACCEPTED
        return Response(TestSerializer(test).data, status=code)


class RewardTestViewSet(viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """Test-bench runs: status, per-row score, components, output, error and time."""

    serializer_class = TestSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return owned(RewardTest, self.request.user).select_related("version__reward")


@api_view(["GET"])
def reward_templates(request: Request) -> Response:
    """Starting points for new rewards: name, kind, description (and the demo task it fits)."""
    return Response([template.summary() for template in TEMPLATES])


@api_view(["GET"])
def reward_template(request: Request, slug: str) -> Response:
    try:
        template = get_template(slug)
    except KeyError as error:
        raise NotFound(str(error.args[0])) from None
    body = {**template.summary(), "config": template.config, "code": template.code}
    return Response({**body, "pass_threshold": template.pass_threshold})


def _valid(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):  # `[1]` or `"x"`: DRF's own answer names no field
        raise ValidationError({"detail": ["The request body must be a JSON object."]})
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return {k: v for k, v in serializer.validated_data.items()}


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def _version(reward: RewardFunction, number: int | None) -> RewardVersion:
    try:
        return reward.version(number)
    except RewardVersion.DoesNotExist as error:
        raise ValidationError({"version": [str(error)]}) from None


def _owned_by_name(model: type, request: Request, name: str | None, field: str) -> Any:
    if not name:
        return None
    found = owned(model, request.user).filter(name=name).first()
    if found is None:
        raise ValidationError({field: [f"You have no {field} named {name!r}."]})
    return found


def _wait_for(test: RewardTest, seconds: float) -> RewardTest:
    deadline = time.monotonic() + seconds
    while not test.finished and time.monotonic() < deadline:
        time.sleep(0.2)
        test.refresh_from_db()
    return test
