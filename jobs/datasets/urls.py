"""Dataset pages, mounted at /datasets/ (views in jobs/datasets/views.py)."""

from django.urls import path

from jobs.datasets import views

datasets_patterns = (
    [
        path("", views.dataset_list, name="list"),
        path("upload/", views.dataset_upload, name="upload"),
        path("from-logs/", views.dataset_from_logs, name="from-logs"),
        path("<int:dataset_id>/", views.dataset_detail, name="detail"),
        path("<int:dataset_id>/rows/", views.dataset_rows, name="rows"),
        path("<int:dataset_id>/stats/", views.dataset_stats, name="stats"),
        path("<int:dataset_id>/split/", views.dataset_split, name="split"),
        path("<int:dataset_id>/delete/", views.dataset_delete, name="delete"),
        path("<int:dataset_id>/download/", views.dataset_download, name="download"),
    ],
    "datasets",
)
