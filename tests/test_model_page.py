"""A tuned model's page says how it was trained: its job, base vs tuned, its checkpoints."""

from __future__ import annotations

import io
from pathlib import Path

from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from jobs.actions import create_job
from jobs.models import Checkpoint, Dataset, MetricPoint, ModelEntry
from rewards.models import RewardFunction


def test_a_tuned_models_page_shows_base_vs_tuned_and_checkpoints(
    alice: User, alice_client: Client, bob_client: Client, starter_artifacts: Path
) -> None:
    call_command("bootstrap_starter", "--no-progress", "--user", "alice", stdout=io.StringIO())
    starter = ModelEntry.objects.get(owner=alice, name="starter")
    job = create_job(
        alice,
        "arith",
        starter,
        Dataset.objects.get(owner=alice, name="arithmetic-train"),
        RewardFunction.objects.get(owner=alice, name="arithmetic").latest_version(),
        Dataset.objects.get(owner=alice, name="arithmetic-validation"),
        profile="cpu",
        launch=False,
    )
    tuned = ModelEntry.objects.create(
        owner=alice, name="arith-tuned", kind=ModelEntry.Kind.TUNED, base=starter,
        status=ModelEntry.Status.READY, path=starter.path, source="job",
    )  # fmt: skip
    job.output_model, job.output_step = tuned, 40
    job.save()
    for step, accuracy in ((0, 0.2), (20, 0.4), (40, 0.55)):
        values = {"accuracy": accuracy, "mean_reward": accuracy + 0.1}
        MetricPoint.objects.create(job=job, kind="eval", step=step, values=values)
        if step:
            Checkpoint.objects.create(job=job, step=step, path="/x", validation_accuracy=accuracy)
    html = alice_client.get(f"/models/{tuned.pk}/").content.decode()
    assert "base 20% → tuned <strong>55%</strong> (step 40)" in html  # as the job page says it
    assert html.count("<tr") >= 3 and "this model" in html and f"/jobs/{job.pk}/" in html
    assert "How it was trained" not in alice_client.get(f"/models/{starter.pk}/").content.decode()
    assert bob_client.get(f"/models/{tuned.pk}/").status_code == 404
