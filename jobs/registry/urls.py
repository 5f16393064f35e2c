"""Model registry pages, mounted at /models/ (views in jobs/registry/views.py)."""

from django.urls import path

from jobs.registry import views

models_patterns = (
    [
        path("", views.model_list, name="list"),
        path("register/", views.model_register, name="register"),
        path("<int:model_id>/", views.model_detail, name="detail"),
        path("<int:model_id>/remove/", views.model_remove, name="remove"),
        path("<int:model_id>/download/", views.model_download, name="download"),
        path("<int:model_id>/merge/", views.model_merge, name="merge"),
    ],
    "models",
)
