"""Celery tasks of the rewards app (queue `default`)."""

from __future__ import annotations

from celery import shared_task

from rewards.models import RewardTest
from rewards.testbench import run_test


@shared_task(name="rewards.run_test")
def run_reward_test(test_id: int) -> str:
    test = RewardTest.objects.select_related("version__reward", "model").get(pk=test_id)
    if test.finished:  # a redelivered message after the work was done
        return test.status
    run_test(test)
    return test.status
