"""Job pages, mounted at /jobs/: list, detail with live charts, actions, rollout inspector,
compare (jobs/views.py), and the wizard's steps (jobs/wizard/urls.py).

The websocket that feeds the live charts is routed in rftconsole/routing.py (ws/jobs/<id>/).
"""

from django.urls import path

from jobs import views
from jobs.registry import checkpoints
from jobs.wizard.urls import wizard_patterns

job_page_patterns = [
    path("", views.job_list, name="list"),
    path("compare/", views.job_compare, name="compare"),
    path("<int:job_id>/", views.job_detail, name="detail"),
    path("<int:job_id>/rollouts/", views.job_rollouts, name="rollouts"),
    path("<int:job_id>/actions/<slug:action>/", views.job_action, name="action"),
    path("<int:job_id>/validation-answers/", checkpoints.validation_answers, name="answers"),
    path(
        "<int:job_id>/checkpoints/<int:checkpoint_id>/use/",
        checkpoints.use_checkpoint,
        name="use-checkpoint",
    ),
]

jobs_patterns = (job_page_patterns + wizard_patterns, "jobs")
