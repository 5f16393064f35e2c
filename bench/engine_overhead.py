"""Engine overhead: our job engine vs a plain `trl.GRPOTrainer` script, side by side.

Both train the cached starter model on the arithmetic demo rows with the same GRPO settings,
LoRA adapter and seed, for the same number of steps. Ours runs through `manage.py train` (the
workers' Celery task: database metrics, live events, rollout storage, the reward bridge); the plain
script calls the same grader function directly. Reported: median seconds per training step
(ratio, goal ≤ 1.05) and the largest difference between the two per-step mean-reward curves
(goal ≈ 0: same seed, same data order, same reward).

    .venv/bin/python bench/engine_overhead.py [--steps 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The starter objects belong to the first admin (password from DJANGO_SUPERUSER_PASSWORD).
ADMIN = ["createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"]
SETTINGS = {  # the CPU defaults of the arithmetic demo (examples/arithmetic.yaml)
    "batchSize": 64,
    "trainingSamplePerPrompt": 8,
    "learningRate": 0.001,
    "inferenceMaxTokens": 48,
    "temperature": 1.0,
    "loraRank": 16,
    "loraAlpha": 32,
    "seed": 0,
    "evalInterval": 100,  # no validation inside the measured steps
}

PLAIN = r"""
import json, sys, time
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer
from rewards.graders import final_answer_match

model_dir, rows_file, out_dir = sys.argv[1], sys.argv[2], sys.argv[4]
steps, s = int(sys.argv[3]), json.loads(sys.argv[5])
rows = [json.loads(line) for line in open(rows_file) if line.strip()]
def prompt(row):
    users = [i for i, m in enumerate(row["messages"]) if m["role"] == "user"]
    return row["messages"][: users[-1] + 1]
data = Dataset.from_list([{"prompt": prompt(r), "row": json.dumps(r)} for r in rows])
def reward(prompts, completions, row, **_):
    return [final_answer_match(c[0]["content"] if isinstance(c, list) else c, json.loads(r)).score
            for c, r in zip(completions, row)]
reward.__name__ = "reward"
class Clock(TrainerCallback):
    def __init__(self): self.times = []
    def on_step_begin(self, *a, **k): self.started = time.monotonic()
    def on_step_end(self, *a, **k): self.times.append(time.monotonic() - self.started)
clock = Clock()
tokenizer = AutoTokenizer.from_pretrained(model_dir)
tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
tokenizer.padding_side = "left"
config = GRPOConfig(output_dir=out_dir, max_steps=steps, per_device_train_batch_size=s["batchSize"],
    num_generations=s["trainingSamplePerPrompt"], max_completion_length=s["inferenceMaxTokens"],
    learning_rate=s["learningRate"], lr_scheduler_type="constant", temperature=s["temperature"],
    beta=0.0, loss_type="dapo", seed=s["seed"], logging_steps=1, save_strategy="no", report_to=[],
    use_cpu=True, disable_tqdm=True)
trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
    reward_funcs=[reward], args=config, train_dataset=data, processing_class=tokenizer,
    peft_config=LoraConfig(r=s["loraRank"], lora_alpha=s["loraAlpha"], lora_dropout=0.0,
                           target_modules="all-linear", task_type="CAUSAL_LM"),
    callbacks=[clock])
trainer.train()
rewards = [e["reward"] for e in trainer.state.log_history if "reward" in e]
print(json.dumps({"step_seconds": clock.times, "rewards": rewards}))
"""

OURS = r"""
import json, sys
from jobs.models import Job, MetricPoint
job = Job.objects.order_by("-pk").first()
points = MetricPoint.objects.filter(job=job, kind="train").order_by("step")
print(json.dumps({"step_seconds": [p.values["step_seconds"] for p in points],
                  "rewards": [p.values["reward_mean"] for p in points]}))
"""


def environment(data_dir: str) -> dict[str, str]:
    cache = os.environ.get("RFT_STARTER_CACHE", str(ROOT / ".cache/starter"))
    return {**os.environ, "RFT_DATA_DIR": data_dir, "RFT_STARTER_CACHE": cache,
            "DJANGO_SUPERUSER_PASSWORD": "bench-only", "PYTHONPATH": str(ROOT)}  # fmt: skip


def ours(steps: int, data_dir: str) -> dict:
    env, manage = environment(data_dir), [sys.executable, str(ROOT / "manage.py")]
    config = Path(data_dir) / "job.json"
    config.write_text(json.dumps({
        "name": "overhead", "base_model": "starter", "train_dataset": "arithmetic-train",
        "validation_dataset": "arithmetic-validation", "reward": "arithmetic",
        "hyperparameters": {**SETTINGS, "maxSteps": steps},
    }))  # fmt: skip
    subprocess.run([*manage, "train", str(config)], env=env, check=True, capture_output=True)
    shell = subprocess.run(
        [*manage, "shell", "-c", OURS], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(shell.stdout.strip().splitlines()[-1])


def plain(steps: int, data_dir: str, artifacts: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PLAIN, str(artifacts / "models" / "starter"),
         str(artifacts / "datasets" / "arithmetic-train.jsonl"), str(steps),
         str(Path(data_dir) / "plain"), json.dumps(SETTINGS)],
        env=environment(data_dir), check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ratios, differences = [], []
    print(f"{'run':<5}{'ours s/step':>12}{'plain s/step':>13}{'ratio':>7}{'max reward diff':>17}")
    for repeat in range(1, args.repeats + 1):
        with tempfile.TemporaryDirectory(prefix="bench-overhead-") as data_dir:
            env = environment(data_dir)
            manage = [sys.executable, str(ROOT / "manage.py")]
            subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
            subprocess.run([*manage, *ADMIN], env=env, check=True, capture_output=True)
            subprocess.run([*manage, "bootstrap_starter", "--no-progress"], env=env, check=True,
                           capture_output=True)  # fmt: skip
            artifacts = next(Path(env["RFT_STARTER_CACHE"]).glob("v*-seed0"))
            a, b = ours(args.steps, data_dir), plain(args.steps, data_dir, artifacts)
        # step 1 includes warm-up work on both sides; compare the steady state
        mine, theirs = (
            statistics.median(a["step_seconds"][1:]),
            statistics.median(b["step_seconds"][1:]),
        )
        difference = max(abs(x - y) for x, y in zip(a["rewards"], b["rewards"], strict=False))
        ratios.append(mine / theirs)
        differences.append(difference)
        print(f"{repeat:<5}{mine:>12.3f}{theirs:>13.3f}{mine / theirs:>7.3f}{difference:>17.4f}")
    ratio = statistics.median(ratios)
    verdict = "PASS" if ratio <= 1.05 else "FAIL"
    print(f"engine overhead: {ratio:.3f}× seconds per step vs plain TRL (goal ≤ 1.05) {verdict}; "
          f"max reward-curve difference {max(differences):.4f} (goal ≈ 0)")  # fmt: skip


if __name__ == "__main__":
    main()
