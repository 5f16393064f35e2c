"""Celery tasks of the playground app (queue `default`, the settings' default queue)."""

from __future__ import annotations

from celery import shared_task

from playground.deployments import fail_stuck_loads
from playground.evaluation_runner import run_evaluation
from playground.models import Evaluation


@shared_task(name="playground.run_evaluation")
def run_evaluation_task(evaluation_id: int) -> str:
    evaluation = Evaluation.objects.filter(pk=evaluation_id).first()
    if evaluation is None:  # deleted while queued
        return "gone"
    run_evaluation(evaluation)
    status = Evaluation.objects.filter(pk=evaluation_id).values_list("status", flat=True).first()
    return status or "gone"  # deleted while it ran


@shared_task(name="playground.fail_stuck_deployments")
def fail_stuck_deployments() -> int:
    """Periodic (beat): deployments whose loading thread died are failed with that reason."""
    return fail_stuck_loads()
