"""One job's train points and launch record, for bench/multi_process.py: what rank 0's callback
stored per step (seconds from one logged step to the next, tokens/s, peak GPU memory on CUDA) and
how the job ran (device, processes, generation engine).

Run in the bench's data dir with `manage.py shell -c "$(cat bench/scripts/job_points.py)"`, with
BENCH_JOB (the job's id) in the environment. Prints one JSON line: {"launch": {...},
"points": [{"step": N, "step_seconds": s, "tokens_per_second": t, "gpu_memory_peak_gib": g}]}
(gpu_memory_peak_gib only on CUDA).
"""

import json
import os

from jobs.models import Job, MetricPoint

KEYS = ("step_seconds", "tokens_per_second", "gpu_memory_peak_gib")


def main() -> None:
    job = Job.objects.get(pk=int(os.environ["BENCH_JOB"]))
    points = MetricPoint.objects.filter(job=job, kind="train").order_by("step")
    rows = [{"step": p.step, **{k: p.values[k] for k in KEYS if k in p.values}} for p in points]
    print(json.dumps({"launch": job.launch or {}, "points": rows}))


main()  # `manage.py shell -c` runs this text (its __name__ is not "__main__")
