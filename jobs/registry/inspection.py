"""Look at a model without loading it: resolve a local directory or hub id, and read what it is.

Inspection reads only `config.json`, tokenizer files and safetensors headers, so registering a
multi-GB model is instant and never needs a GPU. No database here: services.py records the facts.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

# org/name as the Hub spells it; neither part may be `.`/`..` or start with a dot, so a hub id
# can never be read as a relative path that climbs out (`a/..`).
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/(?!\.)[\w.-]+$")


class RegistryError(ValueError):
    """Registration cannot proceed; the message tells the user what to do."""


@dataclass(frozen=True)
class ModelFacts:
    architecture: str
    model_type: str
    parameter_count: int | None
    context_length: int | None
    has_chat_template: bool
    size_bytes: int
    is_adapter: bool
    adapter_base: str = ""


def _read_json(path: Path) -> dict[str, object]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RegistryError(f"Cannot read {path.name}: {error}") from None


def _safetensors_parameters(directory: Path) -> int | None:
    from safetensors import safe_open

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a dict
                total += math.prod(handle.get_slice(name).get_shape())
    return total


def _meta_parameters(directory: Path) -> int | None:
    """Count parameters of a .bin-only checkpoint by building the model on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(str(directory))
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except Exception:  # noqa: BLE001 - unknown architectures simply get no count
        return None
    return sum(p.numel() for p in model.parameters())


def _has_chat_template(directory: Path) -> bool:
    if (directory / "chat_template.jinja").exists() or (directory / "chat_template.json").exists():
        return True
    config = directory / "tokenizer_config.json"
    return config.exists() and bool(_read_json(config).get("chat_template"))


def inspect_model_dir(directory: Path) -> ModelFacts:
    size = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    if (directory / "adapter_config.json").exists():
        adapter = _read_json(directory / "adapter_config.json")
        return ModelFacts(
            architecture=f"PEFT {adapter.get('peft_type', 'adapter')}",
            model_type=str(adapter.get("peft_type", "")).lower(),
            parameter_count=_safetensors_parameters(directory),
            context_length=None,
            has_chat_template=_has_chat_template(directory),
            size_bytes=size,
            is_adapter=True,
            adapter_base=str(adapter.get("base_model_name_or_path", "")),
        )
    if not (directory / "config.json").exists():
        raise RegistryError(
            f"{directory} has no config.json: it is not a Hugging Face model directory."
        )
    config = _read_json(directory / "config.json")
    architectures = config.get("architectures") or ["unknown"]
    context = config.get("max_position_embeddings") or config.get("n_positions")
    return ModelFacts(
        architecture=str(architectures[0]),  # type: ignore[index]
        model_type=str(config.get("model_type", "")),
        parameter_count=_safetensors_parameters(directory) or _meta_parameters(directory),
        context_length=int(context) if isinstance(context, int) else None,
        has_chat_template=_has_chat_template(directory),
        size_bytes=size,
        is_adapter=False,
    )


def resolve_source(source: str) -> Path:
    """A local directory as is (administrators and the CLI only); else a hub id."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path.resolve()
    if not HUB_ID.match(source):
        raise RegistryError(f"{source!r} is neither an existing directory nor a hub id (org/name).")
    return resolve_hub_id(source)


def resolve_hub_id(source: str) -> Path:
    """A hub id from the local cache, else downloaded when reachable; never a local directory,
    since workers run this for ordinary users (see start_registration)."""
    if not HUB_ID.match(source) or ".." in source:
        raise RegistryError(f"{source!r} is not a hub id (org/name).")
    from huggingface_hub import snapshot_download

    with contextlib.suppress(Exception):  # not in the local cache: try the network below
        return Path(snapshot_download(source, local_files_only=True))
    try:
        return Path(snapshot_download(source))
    except Exception as error:  # noqa: BLE001 - network, auth or missing repo: say so plainly
        raise RegistryError(
            f"Could not download {source!r} from the Hugging Face Hub "
            f"({type(error).__name__}). If this machine is offline, download the model "
            "elsewhere and register its local directory instead."
        ) from None
