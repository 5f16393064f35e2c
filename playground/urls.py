"""URL patterns of the playground app's console pages (the `/v1/` endpoint's are in v1/urls.py)."""

from django.urls import path

from playground import evaluation_views, views, views_logs

deployments_patterns = (
    [
        path("", views.deployment_list, name="list"),
        path("logs/", views_logs.log_list, name="logs"),
        path("logs/import/", views_logs.log_import, name="logs-import"),
        path("logs/<int:log_id>/", views_logs.log_detail, name="log-detail"),
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
        path("<int:session_id>/clear/", views.playground_clear, name="clear"),
        path("evaluations/", evaluation_views.evaluation_list, name="evaluation-list"),
        path("evaluations/new/", evaluation_views.evaluation_new, name="evaluation-new"),
        path(
            "evaluations/<int:evaluation_id>/",
            evaluation_views.evaluation_detail,
            name="evaluation-detail",
        ),
        path(
            "evaluations/<int:evaluation_id>/cancel/",
            evaluation_views.evaluation_cancel,
            name="evaluation-cancel",
        ),
        path(
            "evaluations/<int:evaluation_id>/delete/",
            evaluation_views.evaluation_delete,
            name="evaluation-delete",
        ),
        path(
            "evaluations/<int:evaluation_id>/export/<str:fmt>/",
            evaluation_views.evaluation_export,
            name="evaluation-export",
        ),
    ],
    "playground",
)
