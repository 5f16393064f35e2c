"""Export tuned models: download a model folder as a zip, or merge an adapter into full weights."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from django.conf import settings
from django.http import FileResponse

from jobs.generation import load_for_inference
from jobs.models import ModelEntry
from jobs.registry import RegistryError, free_model_name, register_produced


def zip_response(entry: ModelEntry) -> FileResponse:
    """The model's files as a zip (stored, not compressed: weights do not compress)."""
    directory = Path(entry.path)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it after streaming
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in sorted(directory.rglob("*")):
            if file.is_file():
                archive.write(file, Path(entry.name) / file.relative_to(directory))
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=f"{entry.name}.zip")


def export_merged(entry: ModelEntry) -> ModelEntry:
    """Merge a PEFT adapter into its base and register the full weights as a new tuned model."""
    if not entry.is_adapter:
        raise RegistryError(f"{entry.name!r} already holds full weights: nothing to merge.")
    model, tokenizer = load_for_inference(entry)
    merged = model.merge_and_unload()
    name = free_model_name(entry.owner, f"{entry.name}-merged")
    target = Path(settings.DATA_DIR) / "models" / f"{entry.pk}-merged-{name}"
    merged.save_pretrained(target)
    tokenizer.save_pretrained(target)
    description = f"{entry.name} merged into {entry.base.name if entry.base else 'its base'}."
    return register_produced(
        entry.owner, name, target, entry.base, f"merged:{entry.pk}", description
    )
