"""A job of the admin's on the arithmetic demo, created but not queued (no worker will train it):
the target of a callback replay (callback_replay.py).

Run in a console's data dir with `manage.py shell -c "$(cat bench/scripts/unqueued_job.py)"`
(metric_latency.py, web_load.py); no parameters. Prints one JSON line: {"job": id}.
"""

import json

from jobs.actions import create_job
from jobs.models import Dataset, ModelEntry
from rewards.models import RewardFunction
from rftconsole.cli import first_admin


def main() -> None:
    admin = first_admin()
    job = create_job(
        admin,
        "bench-replay",
        ModelEntry.objects.get(owner=admin, name="starter"),
        Dataset.objects.get(owner=admin, name="arithmetic-train"),
        RewardFunction.objects.get(owner=admin, name="arithmetic").latest_version(),
        Dataset.objects.get(owner=admin, name="arithmetic-validation"),
        launch=False,
    )
    print(json.dumps({"job": job.pk}))


main()  # `manage.py shell -c` runs this text (its __name__ is not "__main__")
