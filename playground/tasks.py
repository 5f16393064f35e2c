"""Celery tasks of the playground app (queue `default`, the settings' default queue)."""

from __future__ import annotations

from celery import shared_task

from playground.evaluation_runner import run_evaluation
from playground.models import Evaluation


@shared_task(name="playground.run_evaluation")
def run_evaluation_task(evaluation_id: int) -> str:
    evaluation = Evaluation.objects.filter(pk=evaluation_id).first()
    if evaluation is None:  # deleted while queued
        return "gone"
    run_evaluation(evaluation)
    evaluation.refresh_from_db(fields=["status"])
    return evaluation.status
