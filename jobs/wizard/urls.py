"""The job creation wizard, mounted under /jobs/ (see views.py and steps.py here)."""

from django.urls import path

from jobs.wizard import views

wizard_patterns = [
    path("new/", views.wizard_start, name="new"),
    # Before the step pattern, which would otherwise read these as step names.
    path("drafts/<int:draft_id>/discard/", views.wizard_discard, name="discard"),
    path("drafts/<int:draft_id>/preview/", views.wizard_preview, name="preview"),
    path("drafts/<int:draft_id>/test-reward/", views.wizard_test_reward, name="test-reward"),
    path("drafts/<int:draft_id>/<slug:step>/", views.wizard_step, name="step"),
]
