"""`manage.py register_model PATH_OR_ID --name NAME`: add a model (or adapter) to the registry."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.registry.services import RegistryError, register_model
from rftconsole.cli import acting_user


class Command(BaseCommand):
    help = "Register a local Hugging Face model directory or a hub id as a base model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", help="A local HF-format directory, or a hub id (org/name).")
        parser.add_argument("--name", required=True, help="Name shown in the console.")
        parser.add_argument("--description", default="")
        parser.add_argument("--user", help="Owner (default: the first admin).")

    def handle(self, *args: Any, **options: Any) -> None:
        owner = acting_user(options["user"])
        try:
            entry = register_model(
                owner, options["source"], options["name"], options["description"]
            )
        except RegistryError as error:
            raise CommandError(str(error)) from None
        params = f"{entry.parameter_count:,}" if entry.parameter_count else "unknown"
        self.stdout.write(
            f"Registered {entry.name!r}: {entry.architecture}, {params} parameters, "
            f"context {entry.context_length or 'unknown'}, "
            f"chat template {'yes' if entry.has_chat_template else 'no'}, {entry.path}"
        )
