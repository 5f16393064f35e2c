"""Export tuned models: download a model folder as a zip, or merge an adapter into full weights.

A model's name is only a label: the merged weights go to a directory named from ids and a slug,
and zip entries are paths relative to the model directory under a slug folder (rftconsole/paths).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from django.http import FileResponse

from jobs.models import ModelEntry
from jobs.registry.loading import load_for_inference
from jobs.registry.services import RegistryError, free_model_name, register_produced
from rftconsole.paths import download_filename, fresh_dir, inside, models_dir, slug


def zip_root(directory: Path) -> Path:
    """Where the files of a model directory may live once symlinks are followed.

    A Hugging Face cache snapshot (`models--org--name/snapshots/<rev>`) holds symlinks to
    `../../blobs/...`, so its repo folder is the boundary; anything else is its own boundary.
    """
    if directory.parent.name == "snapshots" and directory.parent.parent.name.startswith("models--"):
        return directory.parent.parent
    return directory


def zip_members(directory: Path) -> Iterator[tuple[Path, str]]:
    """(file, arcname) for every regular file below `directory` that stays inside its boundary."""
    root = zip_root(directory)
    for folder, subfolders, files in os.walk(directory):  # followlinks=False: no symlinked dirs
        subfolders.sort()
        for name in sorted(files):
            file = Path(folder, name)
            relative = PurePosixPath(file.relative_to(directory).as_posix())
            plain = ".." not in relative.parts and "\\" not in str(relative)
            if not plain or relative.is_absolute() or not inside(file, root):
                continue  # a symlink out of the model, or a name no archive should hold
            if file.is_file():
                yield file, relative.as_posix()


def zip_response(entry: ModelEntry) -> FileResponse:
    """The model's files as a zip (stored, not compressed: weights do not compress)."""
    folder = slug(entry.name, fallback=f"model-{entry.pk}")
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it after streaming
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:
        for file, relative in zip_members(Path(entry.path)):
            archive.write(file, f"{folder}/{relative}")
    spool.seek(0)
    filename = download_filename(entry.name, ".zip", fallback=f"model-{entry.pk}")
    return FileResponse(spool, as_attachment=True, filename=filename)


def export_merged(entry: ModelEntry) -> ModelEntry:
    """Merge a PEFT adapter into its base and register the full weights as a new tuned model."""
    if not entry.is_adapter:
        raise RegistryError(f"{entry.name!r} already holds full weights: nothing to merge.")
    model, tokenizer = load_for_inference(entry)
    merged = model.merge_and_unload()
    name = free_model_name(entry.owner, f"{entry.name}-merged")
    # The directory is named from the source's id and a slug, never from `name` itself.
    target = fresh_dir(models_dir(), f"{entry.pk}-merged-{slug(entry.name, fallback='model')}")
    try:
        merged.save_pretrained(target)
        tokenizer.save_pretrained(target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # no half-written folder nobody owns
        raise
    description = f"{entry.name} merged into {entry.base.name if entry.base else 'its base'}."
    return register_produced(
        entry.owner, name, target, entry.base, f"merged:{entry.pk}", description
    )
