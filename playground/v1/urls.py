"""The OpenAI-compatible endpoint's routes, mounted at /v1/ (views.py here)."""

from django.urls import path

from playground.v1 import files, graders, views

openai_patterns = (
    [
        path("models", views.list_models, name="models"),
        path("models/<path:model>", views.retrieve_model, name="model"),
        path("chat/completions", views.chat_completions, name="chat-completions"),
        path("fine_tuning/alpha/graders/run", graders.run, name="graders-run"),
        path("fine_tuning/alpha/graders/validate", graders.validate, name="graders-validate"),
        path("files", files.files, name="files"),
        # <path:> so a malformed id (`file-1/../2`) is "No such File object", not an unknown URL
        path("files/<path:file_id>/content", files.content, name="file-content"),
        path("files/<path:file_id>", files.file, name="file"),
        path("", views.unknown_url),
        path("<path:rest>", views.unknown_url, name="unknown"),
    ],
    "openai",
)
