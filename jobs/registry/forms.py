from django import forms


class RegisterModelForm(forms.Form):
    source = forms.CharField(
        max_length=500,
        label="Hub id or directory",
        help_text="A Hugging Face hub id such as Qwen/Qwen2.5-0.5B-Instruct, or (administrators) "
        "a directory on the server in Hugging Face format.",
        widget=forms.TextInput(attrs={"placeholder": "org/name or /path/to/model"}),
    )
    name = forms.SlugField(max_length=100, help_text="How the console will call it.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
