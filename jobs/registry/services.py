"""The model registry's state changes: register a base model or adapter, register what a job or an
export produced, start a hub download on a worker, remove a model."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from jobs.models import ModelEntry
from jobs.registry.inspection import (
    HUB_ID,
    ModelFacts,
    RegistryError,
    inspect_model_dir,
    resolve_source,
)
from rftconsole.ownership import owned
from rftconsole.paths import inside, models_dir
from rftconsole.queue import queue_on_commit


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
        entry = ModelEntry.objects.create(
            owner=owner, name=name, description=description, source=source
        )
        queue_on_commit("jobs.fetch_model", entry.pk)
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
