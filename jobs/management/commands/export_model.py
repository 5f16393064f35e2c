"""`manage.py export_model NAME --merged`: merge a tuned adapter into full weights, registered."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.models import ModelEntry
from jobs.registry.export import export_merged
from jobs.registry.services import RegistryError
from rftconsole.cli import acting_user
from rftconsole.ownership import owned


class Command(BaseCommand):
    help = "Merge a tuned PEFT adapter into its base; the full weights become a new tuned model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--merged", action="store_true", required=True)
        parser.add_argument("--user")

    def handle(self, *args: Any, **options: Any) -> None:
        entry = owned(ModelEntry, acting_user(options["user"])).filter(name=options["name"]).first()
        if entry is None:
            raise CommandError(f"No model named {options['name']!r}.")
        try:
            export = export_merged(entry)
        except RegistryError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Registered {export.name!r}: full weights at {export.path}")
