"""URL patterns of the playground app: console pages and the OpenAI-compatible `/v1/`."""

from django.urls import path

from playground import views, views_logs
from playground.v1 import views as openai_api

deployments_patterns = (
    [
        path("", views.deployment_list, name="list"),
        path("logs/", views_logs.log_list, name="logs"),
        path("deploy/<int:model_id>/", views.deploy_model, name="deploy"),
        path("<int:deployment_id>/logging/", views.deployment_logging, name="logging"),
        path("<int:deployment_id>/delete/", views.deployment_delete, name="delete"),
    ],
    "deployments",
)

playground_patterns = (
    [
        path("", views.playground_index, name="index"),
        path("<int:session_id>/", views.playground_session, name="session"),
        path("rows/", views.playground_row, name="row"),
    ],
    "playground",
)

openai_patterns = (
    [
        path("models", openai_api.list_models, name="models"),
        path("models/<path:model>", openai_api.retrieve_model, name="model"),
        path("chat/completions", openai_api.chat_completions, name="chat-completions"),
        path("", openai_api.unknown_url),
        path("<path:rest>", openai_api.unknown_url, name="unknown"),
    ],
    "openai",
)
