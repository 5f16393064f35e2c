"""`manage.py bootstrap_starter`: build (once) and register the starter model and demo tasks.

Idempotent: artifacts already built for this recipe and seed are reused, and objects that already
exist are left alone. Deterministic for a given seed on a given machine.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs.starter.artifacts import Recipe, artifacts_dir, ensure_artifacts, is_built
from jobs.starter.register import register_starter
from rftconsole.cli import acting_user


class Command(BaseCommand):
    help = "Build and register the starter model, the demo datasets and their rewards."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=Recipe.seed)
        parser.add_argument("--user", help="Owner of the starter objects (default: first admin).")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
        parser.add_argument(
            "--build-only",
            action="store_true",
            help="Only build the artifacts into the cache (no database needed); register nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        recipe = Recipe(seed=options["seed"])
        if options["build_only"]:
            artifacts = ensure_artifacts(recipe, show_progress=not options["no_progress"])
            self.stdout.write(f"Starter artifacts ready: {artifacts}")
            return
        owner = acting_user(options["user"])
        started = time.monotonic()
        if not is_built(artifacts_dir(recipe)):
            self.stdout.write("Building the starter model and demo tasks (first run only)…")
        artifacts = ensure_artifacts(recipe, show_progress=not options["no_progress"])
        result = register_starter(owner, artifacts)
        for name in result.created:
            self.stdout.write(f"  registered {name}")
        if result.existing:
            self.stdout.write(f"  already registered: {len(result.existing)} objects")
        self.stdout.write(f"Starter ready in {time.monotonic() - started:.0f} s: {artifacts}")
