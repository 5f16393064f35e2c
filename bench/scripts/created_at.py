"""When each metric point of a job was stored (the callback stores it just before it sends the
live event): the start of the real job's latency in metric_latency.py.

Run in a console's data dir with `manage.py shell -c "$(cat bench/scripts/created_at.py)"`,
with BENCH_JOB (the job's id) in the environment. Prints one JSON line:
[[kind, step, created_at as a Unix timestamp], ...].
"""

import json
import os

from jobs.models import MetricPoint


def main() -> None:
    points = MetricPoint.objects.filter(job_id=int(os.environ["BENCH_JOB"]))
    print(json.dumps([[p.kind, p.step, p.created_at.timestamp()] for p in points]))


main()  # `manage.py shell -c` runs this text (its __name__ is not "__main__")
