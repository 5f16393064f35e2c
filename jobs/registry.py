"""The model registry: resolve a local directory or hub id, inspect it without loading weights.

Inspection reads only `config.json`, tokenizer files and safetensors headers, so registering a
multi-GB model is instant and never needs a GPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from jobs.models import ModelEntry
from rftconsole.ownership import owned
from rftconsole.paths import inside, models_dir

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


def apply_facts(entry: ModelEntry, path: Path, facts: ModelFacts) -> None:
    entry.path = str(path)
    entry.architecture = facts.architecture
    entry.model_type = facts.model_type
    entry.parameter_count = facts.parameter_count
    entry.context_length = facts.context_length
    entry.has_chat_template = facts.has_chat_template
    entry.size_bytes = facts.size_bytes
    entry.is_adapter = facts.is_adapter
    entry.status = ModelEntry.Status.READY
    entry.status_reason = ""


def free_model_name(owner: AbstractBaseUser, stem: str) -> str:
    """`stem`, or `stem-2`, `stem-3`… whichever the owner does not use yet."""
    name, number = stem, 1
    while owned(ModelEntry, owner).filter(name=name).exists():
        number += 1
        name = f"{stem}-{number}"
    return name


def register_produced(
    owner: AbstractBaseUser,
    name: str,
    path: Path,
    base: ModelEntry | None,
    source: str,
    description: str,
) -> ModelEntry:
    """Register files the console wrote (a job's output, a merged export) as a tuned model.

    Those files live under DATA_DIR/models; a path anywhere else was built wrongly (from a name,
    say) and is refused, so only an administrator's registration can point outside."""
    if not inside(path, models_dir()) or Path(path).resolve() == models_dir():
        raise RegistryError(f"Refusing to register {path}: outside {models_dir()}.")
    entry = ModelEntry(owner=owner, name=name, source=source, description=description)
    apply_facts(entry, path, inspect_model_dir(path))
    entry.kind, entry.base = ModelEntry.Kind.TUNED, base
    entry.save()
    return entry


def check_name_free(owner: AbstractBaseUser, name: str) -> None:
    if owned(ModelEntry, owner).filter(name=name).exists():
        raise RegistryError(f"You already have a model named {name!r}.")


def register_model(
    owner: AbstractBaseUser, source: str, name: str, description: str = ""
) -> ModelEntry:
    """Resolve, inspect and register a base model (or a PEFT adapter with its base registered)."""
    check_name_free(owner, name)
    path = resolve_source(source)
    facts = inspect_model_dir(path)
    entry = ModelEntry(owner=owner, name=name, description=description, source=source)
    if facts.is_adapter:
        entry.kind = ModelEntry.Kind.TUNED
        entry.base = _find_adapter_base(owner, facts.adapter_base)
    apply_facts(entry, path, facts)
    with transaction.atomic():
        entry.save()
    return entry


def _find_adapter_base(owner: AbstractBaseUser, base_ref: str) -> ModelEntry:
    mine = owned(ModelEntry, owner).filter(kind=ModelEntry.Kind.BASE)
    base = mine.filter(source=base_ref).first() or mine.filter(path=base_ref).first()
    if base is None:
        raise RegistryError(
            f"This adapter was trained on {base_ref!r}: register that base model first."
        )
    return base


def start_registration(
    owner: AbstractBaseUser, source: str, name: str, description: str, allow_local_paths: bool
) -> ModelEntry:
    """Register from the UI or API: directories inline (admins only), hub ids on a worker."""
    source, name = source.strip(), name.strip()
    check_name_free(owner, name)
    if HUB_ID.match(source) and not Path(source).is_dir():
        from jobs.tasks import fetch_model

        entry = ModelEntry.objects.create(
            owner=owner, name=name, description=description, source=source
        )
        transaction.on_commit(lambda: fetch_model.delay(entry.pk))
        return entry
    if not allow_local_paths:
        raise RegistryError(
            "Only administrators can register a directory on the server. "
            "Give a hub id (org/name), or ask an administrator."
        )
    return register_model(owner, source, name, description)


def remove_model(entry: ModelEntry) -> None:
    """Forget a model (its files stay on disk); refused while tuned models are built on it."""
    derived = list(entry.derived.values_list("name", flat=True))
    if derived:
        raise RegistryError(
            f"{entry.name!r} is the base of {', '.join(map(repr, derived))}: remove those first."
        )
    entry.delete()
