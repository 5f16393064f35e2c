"""Job hyperparameters: Bedrock's names and ranges as outer bounds, with CPU and GPU defaults.

`Hyperparameters` is the one definition: a frozen dataclass whose fields carry, in their metadata,
the Bedrock name, the help line, the bounds and both defaults. `PARAMS` and `BY_NAME` are derived
from it, so the wizard, the API schema and error messages all say the same thing.

Bedrock's camelCase names live only at the boundary: what users give, what the UI shows and the
snapshot stored in `job.config["hyperparameters"]`. Code reads a `Hyperparameters` built once
from that snapshot. `resolve()` fills defaults and checks types and ranges, naming the field (by
its Bedrock name) in every error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

Profile = str  # "cpu" or "gpu"
LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo")
FINAL_MODELS = ("best", "last")
# How a job with several processes shares the model: DDP copies it to each process; FSDP and
# DeepSpeed ZeRO shard it (for models that do not fit one device; CUDA only).
DISTRIBUTED = ("ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3")


LORA_TARGET_PRESETS = (  # suggestions; any comma-separated module names are accepted
    "all-linear",
    "q_proj,v_proj",
    "q_proj,k_proj,v_proj,o_proj",
    "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
)
# The wizard shows these first; the rest sit in a collapsed "Advanced" group.
BASIC = ("epochCount", "maxSteps", "batchSize", "learningRate", "trainingSamplePerPrompt",
         "evalInterval")  # fmt: skip


def _param(
    bedrock_name: str,
    cpu: Any,
    gpu: Any,
    minimum: float | None,
    maximum: float | None,
    text: str,
    *,
    choices: tuple[str, ...] = (),
    presets: tuple[str, ...] = (),
) -> Any:
    """A dataclass field without a default (defaults depend on the profile) but with its facts.

    `choices` are the only accepted values (a select in the wizard); `presets` are suggestions
    for a free-text value (a datalist).
    """
    metadata = {"bedrock_name": bedrock_name, "cpu": cpu, "gpu": gpu, "help": text}
    extra = {"choices": choices, "presets": presets}
    return field(metadata={**metadata, "minimum": minimum, "maximum": maximum, **extra})


@dataclass(frozen=True)
class Hyperparameters:
    """One job's resolved hyperparameters, like TRL's GRPOConfig: typed, snake_case, immutable."""

    epoch_count: int = _param("epochCount", 3, 2, 1, 50, "Passes over the training prompts.")
    batch_size: int = _param(
        "batchSize", 64, 128, 16, 512, "Completions per step: prompts × samples per prompt."
    )
    learning_rate: float = _param("learningRate", 1e-3, 1e-5, 1e-7, 1e-3, "Optimizer step size.")
    training_sample_per_prompt: int = _param(
        "trainingSamplePerPrompt", 8, 8, 2, 16, "Answers sampled per prompt (the group)."
    )
    eval_interval: int = _param(
        "evalInterval", 20, 20, 1, 100, "Validate (and checkpoint) every this many steps."
    )
    eval_samples: int = _param(
        "evalSamples", 0, 0, 0, 100_000, "Validation rows scored at each validation (0: all)."
    )
    max_prompt_length: int = _param(
        "maxPromptLength",
        256,
        1024,
        16,
        32768,
        "Prompts longer than this are skipped in training (counted when the job is created).",
    )
    inference_max_tokens: int = _param(
        "inferenceMaxTokens", 48, 512, 1, 32768, "Most tokens sampled per answer."
    )
    temperature: float = _param(
        "temperature", 1.0, 1.0, 0.1, 2.0, "Sampling temperature while training."
    )
    beta: float = _param(
        "beta", 0.0, 0.0, 0.0, 1.0, "KL penalty to the base model (0: none, faster)."
    )
    loss_type: str = _param(
        "lossType",
        "dapo",
        "dapo",
        None,
        None,
        "GRPO loss: dapo, grpo, dr_grpo or bnpo.",
        choices=LOSS_TYPES,
    )
    lora_rank: int = _param(
        "loraRank", 16, 32, 0, 512, "LoRA rank; 0 trains all weights (full fine-tuning)."
    )
    lora_alpha: int = _param("loraAlpha", 32, 64, 1, 1024, "LoRA scaling numerator (alpha / rank).")
    lora_dropout: float = _param("loraDropout", 0.0, 0.05, 0.0, 0.5, "Dropout on the LoRA layers.")
    lora_targets: str = _param(
        "loraTargets",
        "all-linear",
        "all-linear",
        None,
        None,
        "Modules with adapters: all-linear, or module names separated by commas.",
        presets=LORA_TARGET_PRESETS,
    )
    seed: int = _param(
        "seed", 0, 0, 0, 2**31 - 1, "Seed for sampling, shuffling and initialisation."
    )
    max_steps: int = _param(
        "maxSteps", 0, 0, 0, 1_000_000, "Stop after this many steps (overrides epochs)."
    )
    max_wall_clock_minutes: int = _param(
        "maxWallClockMinutes", 0, 0, 0, 10_080, "Pause when training time passes this."
    )
    final_model: str = _param(
        "finalModel",
        "best",
        "best",
        None,
        None,
        "Output: best validation checkpoint or last.",
        choices=FINAL_MODELS,
    )
    rollout_groups: int = _param(
        "rolloutGroups", 2, 2, 1, 64, "Sampled groups kept per step for the rollouts page."
    )
    num_processes: int = _param(
        "numProcesses",
        1,
        1,
        1,
        64,
        "Training processes (one per GPU, or CPU processes): each takes batchSize / numProcesses.",
    )
    distributed: str = _param(
        "distributed",
        "ddp",
        "ddp",
        None,
        None,
        "With several processes: ddp (a copy each), or fsdp / deepspeed-zero2 / -zero3 (sharded).",
        choices=DISTRIBUTED,
    )

    @classmethod
    def from_bedrock(cls, values: dict[str, Any], profile: Profile = "cpu") -> Hyperparameters:
        """The typed view of resolved, Bedrock-named values (a job's stored snapshot).

        Not re-checked against today's bounds: a job launched under older ones must still resume.
        A name the snapshot lacks (jobs from before finalModel existed) takes `profile`'s default;
        an unknown name is refused, since it would otherwise be silently ignored.
        """
        unknown = sorted(set(values) - BY_NAME.keys())
        if unknown:
            raise ValueError(f"unknown hyperparameter: {', '.join(unknown)}")
        known = {**defaults(profile), **values}
        return cls(**{param.attribute: known[param.name] for param in PARAMS})

    @classmethod
    def of_snapshot(cls, config: dict[str, Any]) -> Hyperparameters:
        """From a job's `config` snapshot, with the defaults of the profile it ran on."""
        return cls.from_bedrock(config["hyperparameters"], config.get("profile", "cpu"))

    def to_bedrock(self) -> dict[str, Any]:
        """Bedrock-named values in the canonical order: for the API, the UI and the snapshot."""
        return {param.name: getattr(self, param.attribute) for param in PARAMS}


@dataclass(frozen=True)
class Param:
    """One hyperparameter as the boundary sees it: `name` is the Bedrock name users type."""

    name: str
    kind: type
    cpu: Any
    gpu: Any
    minimum: float | None
    maximum: float | None
    help: str
    attribute: str  # the Hyperparameters field
    choices: tuple[str, ...] = ()  # the only accepted values, when set
    presets: tuple[str, ...] = ()  # suggested values for free text

    def default(self, profile: Profile) -> Any:
        return self.gpu if profile == "gpu" else self.cpu

    @property
    def basic(self) -> bool:
        return self.name in BASIC


def _params() -> list[Param]:
    kinds = get_type_hints(Hyperparameters)  # the annotations are strings (future annotations)
    return [
        Param(
            name=spec.metadata["bedrock_name"],
            kind=kinds[spec.name],
            cpu=spec.metadata["cpu"],
            gpu=spec.metadata["gpu"],
            minimum=spec.metadata["minimum"],
            maximum=spec.metadata["maximum"],
            help=spec.metadata["help"],
            attribute=spec.name,
            choices=spec.metadata.get("choices", ()),
            presets=spec.metadata.get("presets", ()),
        )
        for spec in fields(Hyperparameters)
    ]


PARAMS: list[Param] = _params()
BY_NAME = {param.name: param for param in PARAMS}


def defaults(profile: Profile) -> dict[str, Any]:
    return {param.name: param.default(profile) for param in PARAMS}


def _coerce(param: Param, value: Any) -> Any:
    if param.kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if param.kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if param.kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if param.kind is str and isinstance(value, str):
        return value.strip()
    if isinstance(value, str) and param.kind in (int, float):
        try:
            return param.kind(value)
        except ValueError:
            pass
    raise ValueError(f"must be {'an integer' if param.kind is int else 'a number'}")


def _checked(param: Param, value: Any) -> Any:
    """The value coerced to the parameter's kind and within its bounds, or ValueError."""
    value = _coerce(param, value)
    if param.minimum is not None and not param.minimum <= value <= param.maximum:  # type: ignore[operator]
        raise ValueError(f"must be between {param.minimum:g} and {param.maximum:g}")
    return value


def _cross_checks(hp: Hyperparameters) -> dict[str, str]:
    """Rules beyond one value's bounds, keyed by Bedrock name like every other error."""
    errors = {}
    for param in PARAMS:
        value = getattr(hp, param.attribute)
        if param.choices and value not in param.choices:
            pair = len(param.choices) == 2  # "must be best or last" reads better
            listed = " or ".join(param.choices) if pair else f"one of {', '.join(param.choices)}"
            errors[param.name] = f"must be {listed}"
    if hp.batch_size % hp.training_sample_per_prompt:
        errors["batchSize"] = (
            f"batchSize ({hp.batch_size}) must be divisible by trainingSamplePerPrompt "
            f"({hp.training_sample_per_prompt}): each step samples whole groups"
        )
    group = hp.num_processes * hp.training_sample_per_prompt
    if hp.num_processes > 1 and hp.batch_size % group:
        errors["numProcesses"] = (
            f"batchSize ({hp.batch_size}) must be divisible by numProcesses × "
            f"trainingSamplePerPrompt ({hp.num_processes} × {hp.training_sample_per_prompt} = "
            f"{group}): each process samples whole groups"
        )
    if hp.distributed != "ddp" and hp.num_processes == 1:
        errors["distributed"] = f"{hp.distributed} shards across processes: set numProcesses ≥ 2"
    return errors


def resolve(given: dict[str, Any], profile: Profile) -> tuple[dict[str, Any], dict[str, str]]:
    """Defaults for what is missing; returns (Bedrock-named values, errors by Bedrock name).

    A value that fails its check keeps the default, so the cross-field rules still run.
    """
    values, errors = defaults(profile), {}
    if not isinstance(given, dict):
        return values, {"hyperparameters": "must be an object of name: value pairs"}
    for name, value in given.items():
        param = BY_NAME.get(name)
        if param is None:
            errors[name] = "unknown hyperparameter"
            continue
        try:
            values[name] = _checked(param, value)
        except ValueError as error:
            errors[name] = str(error)
    errors.update(_cross_checks(Hyperparameters.from_bedrock(values)))
    if profile == "cpu" and values["distributed"] != "ddp" and "distributed" not in errors:
        errors["distributed"] = (
            f"{values['distributed']} shards the model across GPUs, and no gpu worker with CUDA "
            "has reported: use ddp"
        )
    return values, errors
