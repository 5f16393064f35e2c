"""The form that starts an evaluation: its choices are the signed-in user's own models,
checkpoints, datasets and reward versions, so another user's id is simply not a valid choice."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import AbstractBaseUser

from jobs.models import Dataset
from playground.evaluations import (
    MAX_ROWS,
    Settings,
    candidate_choices,
    reward_versions,
)
from rftconsole.ownership import owned


class EvaluationForm(forms.Form):
    model_a = forms.ChoiceField(
        label="Model A", help_text="The reference: the others' wins and losses are against it."
    )
    model_b = forms.ChoiceField(label="Model B")
    model_c = forms.ChoiceField(label="Model C", required=False, help_text="Optional.")
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    rows = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ROWS,
        help_text=f"The first N rows (empty: all, at most {MAX_ROWS}).",
    )
    reward_version = forms.TypedChoiceField(coerce=int, label="Reward")
    temperature = forms.FloatField(min_value=0, max_value=2, initial=1.0, help_text="0: greedy.")
    max_tokens = forms.IntegerField(
        min_value=1, max_value=32768, initial=64, label="inferenceMaxTokens"
    )
    max_prompt_length = forms.IntegerField(
        min_value=16,
        max_value=32768,
        initial=1024,
        label="maxPromptLength",
        help_text="Rows with longer prompts are skipped (and counted), as in training.",
    )
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1, initial=0)

    def __init__(self, owner: AbstractBaseUser, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(c.ref, c.label) for c in candidate_choices(owner)]
        self.fields["model_a"].choices = [("", "Choose a model")] + choices
        self.fields["model_b"].choices = [("", "Choose a model")] + choices
        self.fields["model_c"].choices = [("", "None")] + choices
        self.fields["dataset"].queryset = owned(Dataset, owner).order_by("name")
        self.fields["reward_version"].choices = [
            (v.pk, f"{v.reward.name} v{v.number} (pass ≥ {v.pass_threshold:g})")
            for v in reward_versions(owner)
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        chosen = [data.get(f"model_{x}") for x in "abc" if data.get(f"model_{x}")]
        if len(set(chosen)) != len(chosen):
            raise forms.ValidationError("Choose each model once: A, B and C must differ.")
        data["models"] = chosen
        return data

    def settings(self) -> Settings:
        data = self.cleaned_data
        return Settings(data["temperature"], data["max_tokens"], data["max_prompt_length"],
                        data["seed"])  # fmt: skip
