"""Finished demo jobs for web_load.py's jobs page: each a real job row of the admin's (created
through the same checks, not queued), marked completed, with a demo run's points (186 train and
10 validation points).

Run in the console's data dir with `manage.py shell -c "$(cat bench/scripts/fill_jobs.py)"`,
with BENCH_JOBS (how many jobs, named demo-0, demo-1, ...) in the environment. Prints one JSON
line: {"jobs": N}.
"""

import json
import os

from django.utils import timezone

from jobs.actions import create_job
from jobs.models import Dataset, Job, MetricPoint, ModelEntry
from rewards.models import RewardFunction
from rftconsole.cli import first_admin

EVAL_STEPS = (0, 20, 40, 60, 80, 100, 120, 140, 160, 186)


def main() -> None:
    jobs = int(os.environ["BENCH_JOBS"])
    admin = first_admin()
    base = ModelEntry.objects.get(owner=admin, name="starter")
    train = Dataset.objects.get(owner=admin, name="arithmetic-train")
    validation = Dataset.objects.get(owner=admin, name="arithmetic-validation")
    reward = RewardFunction.objects.get(owner=admin, name="arithmetic").latest_version()
    values = {
        "reward_mean": 0.4,
        "reward_std": 0.3,
        "loss": 0.01,
        "entropy": 1.2,
        "completion_length_mean": 14.0,
        "frac_reward_zero_std": 0.3,
        "step_seconds": 0.5,
    }
    for n in range(jobs):
        job = create_job(admin, f"demo-{n}", base, train, reward, validation, launch=False)
        Job.objects.filter(pk=job.pk).update(
            status="completed",
            current_step=186,
            total_steps=186,
            training_seconds=95.0,
            finished_at=timezone.now(),
        )
        points = [
            MetricPoint(job=job, kind="train", step=s, epoch=s / 63, values=values)
            for s in range(1, 187)
        ]
        points += [
            MetricPoint(
                job=job,
                kind="eval",
                step=s,
                epoch=s / 63,
                values={"accuracy": 0.2 + s / 400, "mean_reward": 0.2, "rows": 100},
            )
            for s in EVAL_STEPS
        ]
        MetricPoint.objects.bulk_create(points)
    print(json.dumps({"jobs": jobs}))


main()  # `manage.py shell -c` runs this text (its __name__ is not "__main__")
