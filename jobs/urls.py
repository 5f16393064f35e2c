from django.urls import path

from jobs import views, views_datasets
from jobs.urls_jobs import job_page_patterns
from jobs.urls_wizard import wizard_patterns

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

datasets_patterns = (
    [
        path("", views_datasets.dataset_list, name="list"),
        path("upload/", views_datasets.dataset_upload, name="upload"),
        path("from-logs/", views_datasets.dataset_from_logs, name="from-logs"),
        path("<int:dataset_id>/", views_datasets.dataset_detail, name="detail"),
        path("<int:dataset_id>/rows/", views_datasets.dataset_rows, name="rows"),
        path("<int:dataset_id>/stats/", views_datasets.dataset_stats, name="stats"),
        path("<int:dataset_id>/split/", views_datasets.dataset_split, name="split"),
        path("<int:dataset_id>/delete/", views_datasets.dataset_delete, name="delete"),
        path("<int:dataset_id>/download/", views_datasets.dataset_download, name="download"),
    ],
    "datasets",
)

jobs_patterns = (job_page_patterns + wizard_patterns, "jobs")
