"""What the trainer does at each logged step, without the training: the reward call through the
real bridge, then the real `JobCallback.on_log` (rollouts and the metric point stored, the live
event sent), at a fixed pace.

Run in a console's data dir with `manage.py shell -c "$(cat bench/scripts/callback_replay.py)"`
(metric_latency.py, web_load.py), parameters from the environment: BENCH_JOB (a job's id, e.g.
from unqueued_job.py), BENCH_STEPS (points to send) and BENCH_PAUSE (seconds between steps).
Prints one JSON line: {step: wall-clock time at on_log entry}.
"""

import json
import os
import time

from transformers import TrainerState

from jobs.datasets.storage import read_rows
from jobs.models import Job
from jobs.training.callback import JobCallback
from jobs.training.reward_bridge import RewardBridge


def main() -> None:
    job = Job.objects.get(pk=int(os.environ["BENCH_JOB"]))
    steps, pause = int(os.environ["BENCH_STEPS"]), float(os.environ["BENCH_PAUSE"])
    rows = read_rows(job.train_dataset.path)[:8]
    bridge = RewardBridge(job.reward_version, 8)
    callback = JobCallback(job, bridge, lambda model, step: {}, 0.0)
    state = TrainerState()
    prompts = [row["messages"] for row in rows for _ in range(8)]
    completions = [[{"role": "assistant", "content": f"So: #### {i}"}] for i in range(64)]
    row_json = [json.dumps(row) for row in rows for _ in range(8)]
    logs = {
        "loss": 0.01,
        "grad_norm": 0.5,
        "learning_rate": 0.001,
        "num_tokens": 1000.0,
        "completions/mean_length": 12.0,
        "completions/max_length": 40.0,
        "entropy": 1.2,
        "completions/clipped_ratio": 0.0,
        "reward": 0.3,
        "reward_std": 0.4,
        "frac_reward_zero_std": 0.25,
    }
    stamps: dict[int, float] = {}
    for step in range(1, steps + 1):
        bridge(prompts, completions, row_json)
        state.global_step, state.epoch = step, step / 63
        stamps[step] = time.time()
        callback.on_log(None, state, None, logs=dict(logs))  # type: ignore[arg-type]
        time.sleep(pause)
    print(json.dumps(stamps))


main()  # `manage.py shell -c` runs this text (its __name__ is not "__main__")
