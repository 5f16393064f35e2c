"""The plain TRL baseline: `trl.GRPOTrainer` with the engine's settings, nothing of ours around it.

The same hyperparameters as the engine gives a job (see jobs/training/engine.py: grpo_config,
peft_config). bf16 is set as the engine sets it: off on a CPU. TRL's own default is on, which
changes the numerics and, after ~20 steps, the sampled answers. The reward calls our grader
function directly. Step time is measured like the engine's `step_seconds`: from one logged step to
the next (the first from before the model loads), so both sides count everything the trainer does
between two steps.

Run by engine_overhead.py and memory.py (`common.plain_trl_argv`), with the repository root on
PYTHONPATH:

    python bench/scripts/plain_trl.py MODEL_DIR ROWS_JSONL STEPS OUT_DIR SETTINGS_JSON

SETTINGS_JSON holds the Bedrock-named hyperparameters of `common.TRAINING_SETTINGS`. Prints one
JSON line: {"step_seconds": [...], "rewards": [mean reward per step], "peak_rss_kb": N}.
"""

import json
import resource
import sys
import time
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from trl import GRPOConfig, GRPOTrainer

from rewards.graders.simple import final_answer_match


def prompt(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The row's messages up to its last user turn."""
    users = [i for i, m in enumerate(row["messages"]) if m["role"] == "user"]
    return row["messages"][: users[-1] + 1]


def reward(prompts: list[Any], completions: list[Any], row: list[str], **_: Any) -> list[float]:
    return [
        final_answer_match(c[0]["content"] if isinstance(c, list) else c, json.loads(r)).score
        for c, r in zip(completions, row, strict=True)
    ]


class Clock(TrainerCallback):
    """Seconds from one logged step to the next."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.last = time.monotonic()

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs and "reward" in logs:
            now = time.monotonic()
            self.times.append(now - self.last)
            self.last = now


def main() -> None:
    model_dir, rows_file, out_dir = sys.argv[1], sys.argv[2], sys.argv[4]
    steps, s = int(sys.argv[3]), json.loads(sys.argv[5])
    with open(rows_file) as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    data = Dataset.from_list([{"prompt": prompt(r), "row": json.dumps(r)} for r in rows])
    clock = Clock()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    tokenizer.padding_side = "left"
    cuda = torch.cuda.is_available()
    config = GRPOConfig(
        output_dir=out_dir,
        max_steps=steps,
        per_device_train_batch_size=s["batchSize"],
        num_generations=s["trainingSamplePerPrompt"],
        max_completion_length=s["inferenceMaxTokens"],
        learning_rate=s["learningRate"],
        lr_scheduler_type="constant",
        temperature=s["temperature"],
        beta=0.0,
        loss_type="dapo",
        seed=s["seed"],
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        reward_funcs=[reward],
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=s["loraRank"],
            lora_alpha=s["loraAlpha"],
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
        callbacks=[clock],
    )
    trainer.train()
    rewards = [e["reward"] for e in trainer.state.log_history if "reward" in e]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"step_seconds": clock.times, "rewards": rewards, "peak_rss_kb": peak_kb}))


if __name__ == "__main__":
    main()
