"""Job pages: list, detail with live charts, actions, rollout inspector, compare (views_jobs.py).

The websocket that feeds the live charts is routed in rftconsole/routing.py (ws/jobs/<id>/).
"""

from django.urls import path

from jobs import views_jobs

job_page_patterns = [
    path("", views_jobs.job_list, name="list"),
    path("compare/", views_jobs.job_compare, name="compare"),
    path("<int:job_id>/", views_jobs.job_detail, name="detail"),
    path("<int:job_id>/rollouts/", views_jobs.job_rollouts, name="rollouts"),
    path("<int:job_id>/actions/<slug:action>/", views_jobs.job_action, name="action"),
]
