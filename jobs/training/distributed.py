"""How one job runs on its processes: the trainer's settings, the same as an accelerate config,
why a worker cannot run it, and the launch record the job page shows.

Pure functions of the hyperparameters and of the worker's facts (CUDA, bf16 support, vLLM,
DeepSpeed, device count), which the caller measures once; nothing here writes to the database.

The keyword names are those of the installed transformers/TRL: `activation_checkpointing` is the
current name of what older releases call `gradient_checkpointing` (now a deprecated alias that
warns), and `fsdp=True` with an `fsdp_config` dict replaces the deprecated `fsdp="full_shard
auto_wrap"` string (FSDP2: `reshard_after_forward=True` is full_shard).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
from typing import Any

import yaml

from jobs.training.hyperparameters import Hyperparameters

ZERO_STAGE = {"deepspeed-zero2": 2, "deepspeed-zero3": 3}
# Share of each GPU the colocated vLLM engine may take; the rest is the trainer's (TRL's default).
VLLM_GPU_MEMORY = 0.3
# FSDP2, full shard, each decoder layer its own unit (the model's `_no_split_modules`), and
# checkpoints saved whole so that a checkpoint loads like any other.
FSDP = {
    "version": 2,
    "reshard_after_forward": True,
    "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
    "state_dict_type": "FULL_STATE_DICT",
}


def backend(cuda: bool) -> str:
    """The torch.distributed backend: NCCL between GPUs, Gloo between CPU processes."""
    return "nccl" if cuda else "gloo"


def trainer_settings(hp: Hyperparameters, cuda: bool, bf16: bool, vllm: bool) -> dict[str, Any]:
    """The GRPOConfig keyword arguments this job needs on this worker, beyond the training ones.

    bf16 where the GPU supports it; activation checkpointing on GPUs (on FSDP, FSDP's own);
    the sharding strategy's settings; vLLM colocated in the training processes when `vllm`.
    """
    settings: dict[str, Any] = {
        "use_cpu": not cuda,
        "bf16": cuda and bf16,
        **_checkpointing(hp, cuda),
    }
    if hp.num_processes > 1:  # only then: a backend makes even one process start a group
        settings["ddp_backend"] = backend(cuda)
    if hp.distributed == "fsdp":
        settings["fsdp"] = True
        settings["fsdp_config"] = {**FSDP, "activation_checkpointing": cuda}
    elif hp.distributed in ZERO_STAGE:
        settings["deepspeed"] = deepspeed_config(ZERO_STAGE[hp.distributed], cuda and bf16)
    if vllm:
        settings["use_vllm"] = True
        settings["vllm_mode"] = "colocate"
        settings["vllm_gpu_memory_utilization"] = VLLM_GPU_MEMORY
    return settings


def installed_names(settings: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """`settings` under the keyword names the installed GRPOConfig knows (`known`, its fields).

    transformers releases before 5.23 (5.20, which the vLLM extra pins, among them) know
    activation checkpointing only as `gradient_checkpointing`, and refuse the new name; the
    setting inside `fsdp_config` is FSDP's own and keeps its name everywhere.
    """
    if "activation_checkpointing" in known or "gradient_checkpointing" not in known:
        return settings
    old = "gradient_checkpointing"
    return {key.replace("activation_checkpointing", old): value for key, value in settings.items()}


def gradient_checkpointing(hp: Hyperparameters) -> bool:
    """Whether activations are recomputed in the backward pass: TRL's default, on GPUs and on
    CPU alike (CPU jobs have always run so; the engine-overhead bench compares like with like).
    On FSDP it is FSDP's own (fsdp_config), not the Trainer's, which would add an all-gather."""
    return hp.distributed != "fsdp"


def _checkpointing(hp: Hyperparameters, cuda: bool) -> dict[str, Any]:
    on = gradient_checkpointing(hp)
    settings: dict[str, Any] = {"activation_checkpointing": on}
    # LoRA with checkpointing on GPUs wants the non-reentrant variant (PEFT and TRL's advice); TRL
    # forces the reentrant one for LoRA on ZeRO-3 itself, and warns when told otherwise. CPU jobs
    # keep TRL's defaults.
    if cuda and on and hp.lora_rank > 0 and hp.distributed != "deepspeed-zero3":
        settings["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    return settings


def deepspeed_config(stage: int, bf16: bool) -> dict[str, Any]:
    """A DeepSpeed config for the Trainer: ZeRO `stage`, sizes left to the Trainer ("auto")."""
    zero: dict[str, Any] = {
        "stage": stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if stage == 3:
        zero["stage3_prefetch_bucket_size"] = "auto"
        zero["stage3_param_persistence_threshold"] = "auto"
        zero["stage3_gather_16bit_weights_on_model_save"] = True  # checkpoints hold whole weights
    return {
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": bf16},
        "zero_optimization": zero,
    }


def accelerate_config(
    hp: Hyperparameters, processes: int, cuda: bool, bf16: bool
) -> dict[str, Any]:
    """The same choices as the file `accelerate config` writes: `accelerate launch --config_file`.

    On CPU, `accelerate launch` starts several processes on one machine only through mpirun
    (its `mpirun_config`); the launcher's own command (torchrun) does not need it.
    """
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "distributed_type": _distributed_type(hp, processes, cuda),
        "downcast_bf16": "no",
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": "bf16" if cuda and bf16 else "no",
        "num_machines": 1,
        "num_processes": processes,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": not cuda,
    }
    if cuda:
        config["gpu_ids"] = "all"
    if hp.distributed == "fsdp":
        fsdp = {**FSDP, "activation_checkpointing": cuda, "offload_params": False}
        config["fsdp_config"] = {f"fsdp_{key}": value for key, value in fsdp.items()}
    elif hp.distributed in ZERO_STAGE:
        config["deepspeed_config"] = _accelerate_deepspeed(ZERO_STAGE[hp.distributed])
    return config


def _distributed_type(hp: Hyperparameters, processes: int, cuda: bool) -> str:
    if hp.distributed == "fsdp":
        return "FSDP"
    if hp.distributed in ZERO_STAGE:
        return "DEEPSPEED"
    if processes == 1:
        return "NO"
    return "MULTI_GPU" if cuda else "MULTI_CPU"


def _accelerate_deepspeed(stage: int) -> dict[str, Any]:
    return {
        "deepspeed_multinode_launcher": "standard",
        "offload_optimizer_device": "none",
        "offload_param_device": "none",
        "zero3_init_flag": stage == 3,
        "zero3_save_16bit_model": stage == 3,
        "zero_stage": stage,
    }


def config_yaml(config: dict[str, Any]) -> str:
    """YAML as `accelerate config` writes it (keys sorted)."""
    return yaml.safe_dump(config, sort_keys=True)


def unsupported(
    hp: Hyperparameters, cuda: bool, device_count: int, deepspeed_installed: bool
) -> str | None:
    """Why this worker cannot run the job as configured, for the user; None when it can.

    CPU processes with ddp are always possible here: the CPU capacity is checked elsewhere.
    """
    if hp.distributed != "ddp" and not cuda:
        return (
            f"{hp.distributed} shards the model across GPUs; this worker has no CUDA device: "
            "use ddp, or run on a gpu worker with CUDA"
        )
    if hp.distributed in ZERO_STAGE and not deepspeed_installed:
        return (
            f"{hp.distributed} needs the deepspeed package, which is not installed on this worker: "
            "install it there (pip install deepspeed), or use fsdp or ddp"
        )
    if cuda and hp.num_processes > device_count:
        devices = f"{device_count} CUDA device{'' if device_count == 1 else 's'}"
        return (
            f"numProcesses is {hp.num_processes} but this worker has {devices} (one process per "
            "GPU): lower numProcesses, or run on a worker with more GPUs"
        )
    return None


def vllm_available() -> bool:
    """vLLM can generate here: a CUDA device and the vllm package, and not switched off.

    RFT_VLLM=0 in the worker's environment turns vLLM off where it is installed (jobs then
    generate with transformers): bench/gpu_check.sh measures both ways on one machine.
    """
    import torch  # late: the job page's imports need no torch

    if os.environ.get("RFT_VLLM", "").strip() == "0":
        return False
    return torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None


def generation_engine(vllm: bool) -> str:
    return "vLLM (colocate mode)" if vllm else "transformers generate"


IN_PROCESS = "none: one process, inside the gpu worker's task"


def launch_record(
    hp: Hyperparameters,
    processes: int,
    cuda: bool,
    bf16: bool,
    vllm: bool,
    command: list[str] | None,
) -> dict[str, Any]:
    """What the job page shows of how the job was started (stored in `job.launch`); `command`
    None for a one-process job, which runs in the worker's own process."""
    return {
        "processes": processes,
        "distributed": hp.distributed,
        "backend": backend(cuda),
        "device": "cuda" if cuda else "cpu",
        "generation": generation_engine(vllm),
        "command": shlex.join(command) if command is not None else IN_PROCESS,
        "accelerate_config": config_yaml(accelerate_config(hp, processes, cuda, bf16)),
        "precision": "bf16" if cuda and bf16 else "fp32",
        "gradient_checkpointing": gradient_checkpointing(hp) or (hp.distributed == "fsdp" and cuda),
    }
