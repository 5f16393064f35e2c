"""OpenAI's reinforcement hyperparameters → the console's (Bedrock-named) hyperparameters.

The one mapping table (README "Coming from OpenAI" shows it). Every value may be `"auto"`, which
keeps the console's default for the profile the job runs on. What OpenAI calls a batch counts
prompts; the console's `batchSize` counts completions (prompts × samples per prompt), so the two
are converted, never copied. A value that maps outside the console's bounds is refused naming the
OpenAI parameter, with the console value it became.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from jobs.training.hyperparameters import BY_NAME, Profile, defaults

PARAM_PATH = "method.reinforcement.hyperparameters"
REASONING_EFFORT = {"default": 1.0, "low": 0.5, "medium": 1.0, "high": 2.0}

# OpenAI name → (console name, how it maps), for the README table and error messages.
MAPPING: dict[str, tuple[str, str]] = {
    "n_epochs": ("epochCount", "copied"),
    "batch_size": (
        "batchSize",
        "prompts per step: batchSize = batch_size × trainingSamplePerPrompt",
    ),
    "learning_rate_multiplier": ("learningRate", "learningRate = the profile's default × it"),
    "eval_interval": ("evalInterval", "copied: steps between validations (and checkpoints)"),
    "eval_samples": ("evalSamples", "validation rows scored at each validation"),
    "compute_multiplier": (
        "trainingSamplePerPrompt",
        "answers sampled per prompt = round(the default × it); batchSize follows",
    ),
    "reasoning_effort": (
        "inferenceMaxTokens",
        "answer length budget: low ½ ×, medium and default 1 ×, high 2 × the default",
    ),
}
# The console's names back to OpenAI's, so a check that fails on the console's side is reported
# against the parameter the client sent.
OPENAI_NAME = {console: openai for openai, (console, _) in MAPPING.items()}


LARGEST = 1_000_000  # no hyperparameter maps that far: refused before any arithmetic


class HyperparameterProblem(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = f"{PARAM_PATH}.{param}" if param else PARAM_PATH


@dataclass
class _Given:
    values: dict[str, Any]

    def number(self, name: str, integer: bool) -> float | None:
        """The value, None for "auto" or absent; a problem for anything else but a number."""
        value = self.values.get(name)
        if value is None or value == "auto":
            return None
        kind = "integer" if integer else "number"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise HyperparameterProblem(name, f"'{name}' must be a positive {kind} or \"auto\".")
        if not math.isfinite(value) or value <= 0 or (integer and value != int(value)):
            raise HyperparameterProblem(name, f"'{name}' must be a positive {kind}.")
        if value > LARGEST:
            raise HyperparameterProblem(name, f"'{name}' must be at most {LARGEST}.")
        return value


def console_hyperparameters(
    given: Any, profile: Profile, seed: int | None = None
) -> dict[str, Any]:
    """The console's hyperparameters (only those the client set) for OpenAI's `given` ones."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise HyperparameterProblem("", f"'{PARAM_PATH}' must be an object.")
    unknown = sorted(set(given) - MAPPING.keys())
    if unknown:
        known = ", ".join(MAPPING)
        raise HyperparameterProblem(
            unknown[0], f"Unknown hyperparameter '{unknown[0]}'. Reinforcement takes: {known}."
        )
    base, values, read = defaults(profile), {}, _Given(given)
    if (epochs := read.number("n_epochs", True)) is not None:
        values["epochCount"] = int(epochs)
    if (multiplier := read.number("learning_rate_multiplier", False)) is not None:
        values["learningRate"] = base["learningRate"] * multiplier
    if (interval := read.number("eval_interval", True)) is not None:
        values["evalInterval"] = int(interval)
    if (samples := read.number("eval_samples", True)) is not None:
        values["evalSamples"] = int(samples)
    per_prompt = base["trainingSamplePerPrompt"]
    if (compute := read.number("compute_multiplier", False)) is not None:
        per_prompt = max(1, round(per_prompt * compute))
        values["trainingSamplePerPrompt"] = per_prompt
    prompts = read.number("batch_size", True)
    if prompts is not None or "trainingSamplePerPrompt" in values:
        prompts = prompts or base["batchSize"] // base["trainingSamplePerPrompt"]
        values["batchSize"] = int(prompts) * per_prompt
    effort = given.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in REASONING_EFFORT:
            allowed = ", ".join(REASONING_EFFORT)
            message = f"'reasoning_effort' must be one of {allowed}; got {str(effort)[:40]!r}."
            raise HyperparameterProblem("reasoning_effort", message)
        values["inferenceMaxTokens"] = max(
            1, round(base["inferenceMaxTokens"] * REASONING_EFFORT[effort])
        )
    if seed is not None:
        values["seed"] = seed
    _check_bounds(values)
    return values


def _check_bounds(values: dict[str, Any]) -> None:
    """A mapped value outside the console's bounds, named by the OpenAI parameter it came from."""
    for name, value in values.items():
        param = BY_NAME[name]
        if param.minimum is None or param.minimum <= value <= param.maximum:
            continue
        source = OPENAI_NAME.get(name, name)
        raise HyperparameterProblem(
            source,
            f"'{source}' gives {name} = {value:g}, outside this console's range "
            f"{param.minimum:g}–{param.maximum:g} ({MAPPING.get(source, (name, 'copied'))[1]}).",
        )


def openai_hyperparameters(console: dict[str, Any], profile: Profile) -> dict[str, Any]:
    """What a job runs with, in OpenAI's names, from its resolved snapshot (no "auto" left).

    A name the snapshot lacks (a job from before it existed) reads as the profile's default."""
    base = defaults(profile)
    console = {**base, **console}
    per_prompt = console["trainingSamplePerPrompt"]
    tokens = console["inferenceMaxTokens"] / base["inferenceMaxTokens"]
    effort = next((name for name, f in REASONING_EFFORT.items() if f == tokens), "default")
    return {
        "n_epochs": console["epochCount"],
        "batch_size": console["batchSize"] // per_prompt,
        "learning_rate_multiplier": round(console["learningRate"] / base["learningRate"], 6),
        "eval_interval": console["evalInterval"],
        "eval_samples": console.get("evalSamples") or "auto",
        "compute_multiplier": round(per_prompt / base["trainingSamplePerPrompt"], 6),
        "reasoning_effort": effort,
    }
