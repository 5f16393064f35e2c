"""The job creation wizard (see views_wizard.py and wizard.py)."""

from django.urls import path

from jobs import views_wizard

wizard_patterns = [
    path("new/", views_wizard.wizard_start, name="new"),
    # Before the step pattern, which would otherwise read these as step names.
    path("drafts/<int:draft_id>/discard/", views_wizard.wizard_discard, name="discard"),
    path("drafts/<int:draft_id>/preview/", views_wizard.wizard_preview, name="preview"),
    path("drafts/<int:draft_id>/test-reward/", views_wizard.wizard_test_reward, name="test-reward"),
    path("drafts/<int:draft_id>/<slug:step>/", views_wizard.wizard_step, name="step"),
]
