"""Job hyperparameters: Bedrock's names and ranges as outer bounds, with CPU and GPU defaults.

Each parameter carries its help line, so the wizard, the API schema and error messages all say the
same thing. `resolve()` fills defaults and checks types and ranges, naming the field in every error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Profile = str  # "cpu" or "gpu"
LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo")


@dataclass(frozen=True)
class Param:
    name: str
    kind: type
    cpu: Any
    gpu: Any
    minimum: float | None
    maximum: float | None
    help: str

    def default(self, profile: Profile) -> Any:
        return self.gpu if profile == "gpu" else self.cpu


PARAMS: list[Param] = [
    Param("epochCount", int, 3, 2, 1, 50, "Passes over the training prompts."),
    Param(
        "batchSize", int, 64, 128, 16, 512, "Completions per step: prompts × samples per prompt."
    ),
    Param("learningRate", float, 1e-3, 1e-5, 1e-7, 1e-3, "Optimizer step size."),
    Param("trainingSamplePerPrompt", int, 8, 8, 2, 16, "Answers sampled per prompt (the group)."),
    Param("evalInterval", int, 20, 20, 1, 100, "Validate (and checkpoint) every this many steps."),
    Param("maxPromptLength", int, 256, 1024, 16, 32768, "Longer prompts are truncated (flagged)."),
    Param("inferenceMaxTokens", int, 48, 512, 1, 32768, "Most tokens sampled per answer."),
    Param("temperature", float, 1.0, 1.0, 0.1, 2.0, "Sampling temperature while training."),
    Param("beta", float, 0.0, 0.0, 0.0, 1.0, "KL penalty to the base model (0: none, faster)."),
    Param("lossType", str, "dapo", "dapo", None, None, "GRPO loss: dapo, grpo, dr_grpo or bnpo."),
    Param("loraRank", int, 16, 32, 0, 512, "LoRA rank; 0 trains all weights (full fine-tuning)."),
    Param("loraAlpha", int, 32, 64, 1, 1024, "LoRA scaling numerator (alpha / rank)."),
    Param("loraDropout", float, 0.0, 0.05, 0.0, 0.5, "Dropout on the LoRA layers."),
    Param("loraTargets", str, "all-linear", "all-linear", None, None, "Modules with adapters."),
    Param("seed", int, 0, 0, 0, 2**31 - 1, "Seed for sampling, shuffling and initialisation."),
    Param("maxSteps", int, 0, 0, 0, 1_000_000, "Stop after this many steps (overrides epochs)."),
    Param("maxWallClockMinutes", int, 0, 0, 0, 10_080, "Pause when training time passes this."),
    Param(
        "finalModel", str, "best", "best", None, None, "Output: best validation checkpoint or last."
    ),
]
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


def resolve(given: dict[str, Any], profile: Profile) -> tuple[dict[str, Any], dict[str, str]]:
    """Defaults for what is missing; returns (values, errors by field name)."""
    values, errors = defaults(profile), {}
    if not isinstance(given, dict):
        return values, {"hyperparameters": "must be an object of name: value pairs"}
    for name, value in given.items():
        param = BY_NAME.get(name)
        if param is None:
            errors[name] = "unknown hyperparameter"
            continue
        try:
            value = _coerce(param, value)
        except ValueError as error:
            errors[name] = str(error)
            continue
        if param.minimum is not None and not param.minimum <= value <= param.maximum:  # type: ignore[operator]
            errors[name] = f"must be between {param.minimum:g} and {param.maximum:g}"
            continue
        values[name] = value
    if values["lossType"] not in LOSS_TYPES:
        errors["lossType"] = f"must be one of {', '.join(LOSS_TYPES)}"
    if values["finalModel"] not in ("best", "last"):
        errors["finalModel"] = "must be best or last"
    if values["batchSize"] % values["trainingSamplePerPrompt"]:
        errors["batchSize"] = (
            f"batchSize ({values['batchSize']}) must be divisible by trainingSamplePerPrompt "
            f"({values['trainingSamplePerPrompt']}): each step samples whole groups"
        )
    return values, errors
