"""Our side of the engine overhead bench: the newest job's train points, as `manage.py train`
stored them (seconds per step from one logged step to the next, and the mean reward).

Run in the bench's data dir with `manage.py shell -c "$(cat bench/scripts/our_steps.py)"`
(engine_overhead.py), after each training run; no parameters. Prints one JSON line:
{"step_seconds": [...], "rewards": [...]}, as plain_trl.py does.
"""

import json

from jobs.models import Job, MetricPoint


def main() -> None:
    job = Job.objects.order_by("-pk").first()
    points = MetricPoint.objects.filter(job=job, kind="train").order_by("step")
    print(
        json.dumps(
            {
                "step_seconds": [p.values["step_seconds"] for p in points],
                "rewards": [p.values["reward_mean"] for p in points],
            }
        )
    )


main()  # `manage.py shell -c` runs this text (its __name__ is not "__main__")
