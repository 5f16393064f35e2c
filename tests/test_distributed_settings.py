"""How a job runs on its processes: trainer settings, accelerate config, refusals, launch record.

Pure functions of the hyperparameters and of the worker's facts; the GPU cases are checked for the
settings they generate (this machine has no CUDA, no vLLM and no DeepSpeed).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import ClusterConfig
from accelerate.commands.launch import launch_command_parser
from trl import GRPOConfig

from jobs.training.distributed import (
    accelerate_config,
    config_yaml,
    generation_engine,
    installed_names,
    launch_record,
    trainer_settings,
    unsupported,
    vllm_available,
)
from jobs.training.hyperparameters import DISTRIBUTED, Hyperparameters
from tests.support.processes import free_port

GRPO_FIELDS = {field.name for field in dataclasses.fields(GRPOConfig)}
COMMAND = ["torchrun", "--nproc_per_node", "4", "-m", "jobs.training.worker", "--job", "7"]


def hp(profile: str = "cpu", **values: Any) -> Hyperparameters:
    return Hyperparameters.from_bedrock(values, profile)


def test_cpu_ddp_trains_in_fp32_with_trls_checkpointing_over_gloo() -> None:
    job = hp(numProcesses=4)
    assert trainer_settings(job, cuda=False, bf16=False, vllm=False) == {
        "use_cpu": True,
        "bf16": False,
        "activation_checkpointing": True,
        "ddp_backend": "gloo",
    }
    config = accelerate_config(job, 4, cuda=False, bf16=False)
    assert config["distributed_type"] == "MULTI_CPU" and config["num_processes"] == 4
    assert config["mixed_precision"] == "no" and config["use_cpu"] is True
    assert "gpu_ids" not in config and "fsdp_config" not in config


def test_grpo_config_accepts_the_cpu_ddp_settings_of_one_process() -> None:
    settings = trainer_settings(hp(), cuda=False, bf16=False, vllm=False)
    assert "ddp_backend" not in settings  # a backend would make a lone process wait for a group
    config = GRPOConfig(output_dir="unused", report_to=[], **settings)
    assert config.use_cpu and not config.bf16 and config.gradient_checkpointing
    assert accelerate_config(hp(), 1, cuda=False, bf16=False)["distributed_type"] == "NO"


def test_older_transformers_get_activation_checkpointing_under_its_old_name() -> None:
    """transformers before 5.23 (5.17 on a GPU image, 5.20 pinned by vLLM's extra) refuses
    `activation_checkpointing`: a GPU job failed at once with it (first GPU check, 2026-12-04)."""
    older = GRPO_FIELDS - {"activation_checkpointing", "activation_checkpointing_kwargs"}
    older |= {"gradient_checkpointing", "gradient_checkpointing_kwargs"}
    lora = trainer_settings(hp("gpu"), cuda=True, bf16=True, vllm=False)
    renamed = installed_names(lora, older)
    assert renamed["gradient_checkpointing"] is True
    assert renamed["gradient_checkpointing_kwargs"] == {"use_reentrant": False}
    fsdp = trainer_settings(hp("gpu", numProcesses=2, distributed="fsdp"), True, True, False)
    sharded = installed_names(fsdp, older)
    assert sharded["gradient_checkpointing"] is False
    assert sharded["fsdp_config"]["activation_checkpointing"] is True  # FSDP's own keeps its name
    assert set(renamed) <= older and set(sharded) <= older
    assert not set(lora) <= older  # the control: the current names are what an old one refuses


def test_the_installed_transformers_takes_the_current_names_unchanged() -> None:
    settings = trainer_settings(hp("gpu"), cuda=True, bf16=True, vllm=False)
    assert installed_names(settings, GRPO_FIELDS) == settings
    assert {"activation_checkpointing", "activation_checkpointing_kwargs"} <= GRPO_FIELDS


def test_several_cpu_processes_start_a_gloo_group_from_the_settings(tmp_path: Path) -> None:
    """As one rank under torchrun sees it (its environment), in a process of its own."""
    script = tmp_path / "rank.py"
    script.write_text(
        "from trl import GRPOConfig\n"
        "from jobs.training.distributed import trainer_settings\n"
        "from jobs.training.hyperparameters import Hyperparameters\n"
        "hp = Hyperparameters.from_bedrock({'numProcesses': 4})\n"
        "settings = trainer_settings(hp, cuda=False, bf16=False, vllm=False)\n"
        "config = GRPOConfig(output_dir='unused', report_to=[], **settings)\n"
        "print(config.parallel_mode.value, config.world_size, config.device)\n"
    )
    rank = {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
    env = {**os.environ, **rank, "MASTER_PORT": str(free_port()), "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["distributed", "1", "cpu:0"]


def test_cuda_ddp_uses_bf16_and_gradient_checkpointing_over_nccl() -> None:
    job = hp("gpu", numProcesses=2)  # LoRA rank 32 on the gpu profile
    assert trainer_settings(job, cuda=True, bf16=True, vllm=False) == {
        "use_cpu": False,
        "bf16": True,
        "activation_checkpointing": True,
        "activation_checkpointing_kwargs": {"use_reentrant": False},
        "ddp_backend": "nccl",
    }
    config = accelerate_config(job, 2, cuda=True, bf16=True)
    assert config["distributed_type"] == "MULTI_GPU" and config["mixed_precision"] == "bf16"
    assert config["use_cpu"] is False and config["gpu_ids"] == "all"


def test_a_gpu_without_bf16_trains_in_fp32_and_full_fine_tuning_needs_no_lora_kwargs() -> None:
    job = hp("gpu", loraRank=0)
    settings = trainer_settings(job, cuda=True, bf16=False, vllm=False)
    assert settings == {"use_cpu": False, "bf16": False, "activation_checkpointing": True}
    assert accelerate_config(job, 1, cuda=True, bf16=False)["mixed_precision"] == "no"
    assert launch_record(job, 1, True, False, False, COMMAND)["precision"] == "fp32"


def test_fsdp_shards_fully_with_one_unit_per_decoder_layer_and_its_own_checkpointing() -> None:
    job = hp("gpu", numProcesses=2, distributed="fsdp")
    settings = trainer_settings(job, cuda=True, bf16=True, vllm=False)
    assert settings["fsdp"] is True
    assert settings["fsdp_config"] == {
        "version": 2,
        "reshard_after_forward": True,  # full_shard
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "state_dict_type": "FULL_STATE_DICT",
        "activation_checkpointing": True,
    }
    assert settings["activation_checkpointing"] is False  # FSDP's own, not the Trainer's
    config = accelerate_config(job, 2, cuda=True, bf16=True)
    assert config["distributed_type"] == "FSDP"
    assert config["fsdp_config"] == {
        "fsdp_version": 2,
        "fsdp_reshard_after_forward": True,
        "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "fsdp_state_dict_type": "FULL_STATE_DICT",
        "fsdp_activation_checkpointing": True,
        "fsdp_offload_params": False,
    }
    assert launch_record(job, 2, True, True, False, COMMAND)["gradient_checkpointing"] is True


@pytest.mark.parametrize("choice, stage", [("deepspeed-zero2", 2), ("deepspeed-zero3", 3)])
def test_deepspeed_zero_gets_its_stage_with_sizes_left_to_the_trainer(
    choice: str, stage: int
) -> None:
    job = hp("gpu", numProcesses=4, distributed=choice)
    deepspeed = trainer_settings(job, cuda=True, bf16=True, vllm=False)["deepspeed"]
    assert deepspeed["zero_optimization"]["stage"] == stage
    sizes = ("train_micro_batch_size_per_gpu", "train_batch_size", "gradient_accumulation_steps")
    assert all(deepspeed[size] == "auto" for size in sizes)
    assert deepspeed["bf16"] == {"enabled": True}
    gathers = deepspeed["zero_optimization"].get("stage3_gather_16bit_weights_on_model_save")
    assert gathers is (True if stage == 3 else None)  # ZeRO-3 checkpoints hold whole weights
    config = accelerate_config(job, 4, cuda=True, bf16=True)
    assert config["distributed_type"] == "DEEPSPEED"
    assert config["deepspeed_config"]["zero_stage"] == stage
    assert config["deepspeed_config"]["zero3_init_flag"] is (stage == 3)
    without_bf16 = trainer_settings(job, cuda=True, bf16=False, vllm=False)["deepspeed"]
    assert without_bf16["bf16"] == {"enabled": False}


def test_lora_on_zero3_leaves_the_reentrant_choice_to_trl() -> None:
    """TRL forces reentrant checkpointing for LoRA on ZeRO-3, and warns when told otherwise."""

    def on(choice: str) -> dict[str, Any]:
        return trainer_settings(hp("gpu", numProcesses=2, distributed=choice), True, True, False)

    zero3, zero2 = on("deepspeed-zero3"), on("deepspeed-zero2")
    assert "activation_checkpointing_kwargs" not in zero3 and zero3["activation_checkpointing"]
    assert zero2["activation_checkpointing_kwargs"] == {"use_reentrant": False}


def test_vllm_colocates_generation_when_the_worker_has_it_else_transformers_generates() -> None:
    job = hp("gpu")
    with_vllm = trainer_settings(job, cuda=True, bf16=True, vllm=True)
    assert with_vllm["use_vllm"] is True and with_vllm["vllm_mode"] == "colocate"
    assert 0 < with_vllm["vllm_gpu_memory_utilization"] <= 0.5
    assert not {"use_vllm", "vllm_mode"} & trainer_settings(job, True, True, False).keys()
    assert generation_engine(True) == "vLLM (colocate mode)"
    assert generation_engine(False) == "transformers generate"
    assert launch_record(job, 1, True, True, True, COMMAND)["generation"] == "vLLM (colocate mode)"


def test_vllm_is_available_only_with_cuda_and_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert not vllm_available()  # CUDA without the package
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: real_find_spec("yaml"))
    assert vllm_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not vllm_available()  # the package without CUDA


def test_rft_vllm_0_turns_vllm_off_where_it_would_generate(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: real_find_spec("yaml"))
    monkeypatch.setenv("RFT_VLLM", "1")
    assert vllm_available()  # control: any other value leaves the choice to the worker
    monkeypatch.setenv("RFT_VLLM", "0")
    assert not vllm_available()


CASES = [
    (choice, cuda, bf16, vllm)
    for choice in DISTRIBUTED
    for cuda, bf16, vllm in [(False, False, False), (True, True, False), (True, True, True)]
]


@pytest.mark.parametrize("choice, cuda, bf16, vllm", CASES)
def test_every_generated_setting_is_a_grpo_config_field(
    choice: str, cuda: bool, bf16: bool, vllm: bool
) -> None:
    processes = 1 if choice == "ddp" else 2
    job = hp("gpu" if cuda else "cpu", numProcesses=processes, distributed=choice)
    assert trainer_settings(job, cuda, bf16, vllm).keys() <= GRPO_FIELDS


@pytest.mark.parametrize("choice", DISTRIBUTED)
@pytest.mark.parametrize("cuda", [False, True])
def test_the_accelerate_config_loads_in_accelerate_and_names_only_its_launch_options(
    choice: str, cuda: bool, tmp_path: Path
) -> None:
    job = hp("gpu" if cuda else "cpu", numProcesses=2, distributed=choice)
    path = tmp_path / "accelerate.yaml"
    path.write_text(config_yaml(accelerate_config(job, 2, cuda, bf16=cuda)))
    loaded = ClusterConfig.from_yaml_file(str(path))  # refuses unknown top-level keys
    assert loaded.num_processes == 2 and loaded.num_machines == 1
    options = {action.dest for action in launch_command_parser()._actions}
    assert set(loaded.fsdp_config) | set(loaded.deepspeed_config) <= options


def test_fsdp_or_deepspeed_on_a_worker_without_cuda_says_to_use_ddp_or_a_gpu_worker() -> None:
    for choice in ("fsdp", "deepspeed-zero2", "deepspeed-zero3"):
        job = hp(numProcesses=2, distributed=choice)
        reason = unsupported(job, cuda=False, device_count=0, deepspeed_installed=True)
        assert reason == (
            f"{choice} shards the model across GPUs; this worker has no CUDA device: use ddp, "
            "or run on a gpu worker with CUDA"
        )
        assert unsupported(job, cuda=True, device_count=2, deepspeed_installed=True) is None


def test_deepspeed_without_the_package_says_so() -> None:
    job = hp("gpu", numProcesses=2, distributed="deepspeed-zero3")
    reason = unsupported(job, cuda=True, device_count=2, deepspeed_installed=False)
    assert reason is not None and "deepspeed package" in reason and "not installed" in reason
    assert unsupported(job, cuda=True, device_count=2, deepspeed_installed=True) is None
    fsdp = hp("gpu", numProcesses=2, distributed="fsdp")
    assert unsupported(fsdp, cuda=True, device_count=2, deepspeed_installed=False) is None


def test_more_processes_than_gpus_is_refused_with_the_counts() -> None:
    job = hp("gpu", numProcesses=4, trainingSamplePerPrompt=8, batchSize=128)
    reason = unsupported(job, cuda=True, device_count=1, deepspeed_installed=False)
    assert reason == (
        "numProcesses is 4 but this worker has 1 CUDA device (one process per GPU): lower "
        "numProcesses, or run on a worker with more GPUs"
    )
    assert unsupported(job, cuda=True, device_count=4, deepspeed_installed=False) is None


def test_cpu_ddp_is_never_refused_here_whatever_the_process_count() -> None:
    job = hp(numProcesses=16, batchSize=128, trainingSamplePerPrompt=8)
    assert unsupported(job, cuda=False, device_count=0, deepspeed_installed=False) is None


def test_the_launch_record_says_how_the_job_was_started() -> None:
    job = hp(numProcesses=4)
    command = [*COMMAND, "--data", "/srv/rft data"]
    record = launch_record(job, 4, cuda=False, bf16=False, vllm=False, command=command)
    assert record == {
        "processes": 4,
        "distributed": "ddp",
        "backend": "gloo",
        "device": "cpu",
        "generation": "transformers generate",
        "command": "torchrun --nproc_per_node 4 -m jobs.training.worker --job 7 "
        "--data '/srv/rft data'",
        "accelerate_config": record["accelerate_config"],
        "precision": "fp32",
        "gradient_checkpointing": True,
    }
    assert yaml.safe_load(record["accelerate_config"]) == accelerate_config(job, 4, False, False)
    assert "distributed_type: MULTI_CPU" in record["accelerate_config"]
