"""The reward editor form: one form, the fields that matter depend on the reward's kind."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from jobs.models import ready_models
from rewards.judge.scoring import JUDGE_DEFAULTS
from rewards.models import RewardFunction, RewardVersion
from rewards.services import public_config
from rftconsole.parsers import strict_loads

JUDGE_FIELDS = ["instructions", "score_min", "score_max", "judge_type", "base_url", "model"]
JUDGE_FIELDS += ["api_key", "local_model", "concurrency", "max_retries", "timeout_seconds"]


class RewardForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    pass_threshold = forms.FloatField(
        initial=1.0,
        help_text="A row counts as correct when its score reaches this (judges: on 0–1, "
        "after scaling the judge's range).",
    )
    code = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 24, "class": "code", "data-editor": "python"}),
        help_text="lambda_handler(event, context) as on Bedrock, or grade(sample, item).",
    )
    config_json = forms.CharField(
        label="Grader settings (JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "class": "code", "data-editor": "json"}),
    )
    instructions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 14, "class": "code"}),
        help_text="Placeholders: {{prompt}} {{response}} {{reference_answer}} {{metadata.KEY}}",
    )
    score_min = forms.FloatField(required=False, initial=0)
    score_max = forms.FloatField(required=False, initial=10)
    judge_type = forms.ChoiceField(
        required=False,
        choices=[("endpoint", "OpenAI-compatible endpoint"), ("local", "Registered local model")],
    )
    base_url = forms.CharField(
        required=False, label="Base URL", help_text="e.g. http://127.0.0.1:8000/v1"
    )
    model = forms.CharField(required=False, label="Judge model name")
    api_key = forms.CharField(
        required=False,
        label="API key",
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted; never shown again. Leave empty to keep the stored key.",
    )
    local_model = forms.ChoiceField(required=False, label="Local judge model")
    concurrency = forms.IntegerField(required=False, min_value=1, max_value=32)
    max_retries = forms.IntegerField(required=False, min_value=0, max_value=10)
    timeout_seconds = forms.IntegerField(required=False, min_value=1, max_value=600)

    def __init__(self, *args: Any, kind: str, owner: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        names = ready_models(owner)
        choices = [("", "—")] + [(n, n) for n in names.values_list("name", flat=True)]
        self.fields["local_model"].choices = choices
        unused = {"code": "code", "builtin": "config_json", "openai_grader": "config_json"}
        for name in ["code", "config_json", *JUDGE_FIELDS]:
            if kind == "judge" and name in JUDGE_FIELDS:
                continue
            if unused.get(kind) == name:
                continue
            del self.fields[name]

    def config(self) -> dict[str, Any]:
        """The kind-specific config from the cleaned data (validated later by the service)."""
        data = self.cleaned_data
        if self.kind in (RewardFunction.Kind.BUILTIN, RewardFunction.Kind.OPENAI_GRADER):
            return data.get("parsed_config", {})
        if self.kind == RewardFunction.Kind.JUDGE:
            keys = [f for f in JUDGE_FIELDS if f != "api_key"]
            return {k: data[k] for k in keys if data.get(k) not in (None, "")}
        return {}

    def clean_config_json(self) -> str:
        text = self.cleaned_data.get("config_json") or "{}"
        try:
            parsed = strict_loads(text)  # deep nesting: a ValueError here, not a 500
        except ValueError as error:
            raise forms.ValidationError(f"Not valid JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError('Must be a JSON object, e.g. {"grader": "string_check"}.')
        self.cleaned_data["parsed_config"] = parsed
        return text


def initial_for(reward: RewardFunction | None, version: RewardVersion | None) -> dict[str, Any]:
    """Form values showing a version (or a template's draft)."""
    if version is None:
        return {}
    initial: dict[str, Any] = {"pass_threshold": version.pass_threshold, "code": version.code}
    if reward is not None:
        initial.update(name=reward.name, description=reward.description)
    config = version.config
    initial["config_json"] = json.dumps(public_config(config), indent=2)  # never a stored key
    for key in JUDGE_FIELDS:
        if key in config:
            initial[key] = config[key]
    for key, value in JUDGE_DEFAULTS.items():
        initial.setdefault(key, value)
    return initial
