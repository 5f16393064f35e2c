"""Finished demo jobs for web_load.py's jobs page: each a real job row of the admin's (created
through the same checks, not queued), marked completed, with a demo run's points (186 train and
10 validation points).

Run in the console's data dir with `manage.py shell -c "$(cat bench/scripts/fill_jobs.py)"`,
with BENCH_JOBS (how many jobs, named demo-0, demo-1, ...) in the environment, and BENCH_LIVE=1
to leave the newest one training at step LIVE_STEP (its points so far, no finish). Prints one
JSON line: {"jobs": N, "finished": id of the newest finished job, "live": id of the training job
or null}.
"""

import json
import os
from datetime import timedelta

from django.utils import timezone

from jobs.actions import create_job
from jobs.models import Dataset, Job, MetricPoint, ModelEntry
from rewards.models import RewardFunction
from rftconsole.cli import first_admin

LIVE_STEP = 120
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
    live = os.environ.get("BENCH_LIVE") == "1"
    ids = []
    for n in range(jobs):
        job = create_job(admin, f"demo-{n}", base, train, reward, validation, launch=False)
        last = LIVE_STEP if live and n == jobs - 1 else 186
        Job.objects.filter(pk=job.pk).update(
            status="training" if last < 186 else "completed",
            current_step=last,
            total_steps=186,
            training_seconds=95.0 * last / 186,
            started_at=timezone.now() - timedelta(seconds=100),
            finished_at=None if last < 186 else timezone.now(),
        )
        points = [
            MetricPoint(job=job, kind="train", step=s, epoch=s / 63, values=values)
            for s in range(1, last + 1)
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
            if s <= last
        ]
        MetricPoint.objects.bulk_create(points)
        ids.append(job.pk)
    print(json.dumps({"jobs": jobs, "finished": ids[-2] if live else ids[-1],
                      "live": ids[-1] if live else None}))  # fmt: skip


main()  # `manage.py shell -c` runs this text (its __name__ is not "__main__")
