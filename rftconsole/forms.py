from django import forms

from rftconsole.models import ApiKeyScope


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the key is for, e.g. 'laptop' or 'CI pipeline'.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. notebook", "autocomplete": "off"}),
    )
    scope = forms.ChoiceField(
        # The name as the API takes it, then what it allows in words.
        choices=[(value, f"{value} — {label}") for value, label in ApiKeyScope.choices],
        initial=ApiKeyScope.API,
        required=False,  # left out (an older script posting the form): the default, `api`
        help_text="Give a key no more than it needs: a key that can manage keys can make more "
        "keys, which outlive its revocation.",
        error_messages={"invalid_choice": "Unknown scope “%(value)s”: pick one from the list."},
    )

    def clean_scope(self) -> str:
        return self.cleaned_data["scope"] or ApiKeyScope.API
