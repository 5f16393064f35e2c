"""`manage.py import_dataset FILE --name NAME [--dry-run] [--user U]`: the upload's validation and
conversion, from the command line. Prints each problem, then one summary line; exits non-zero and
stores nothing when there are problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.datasets.importer import DatasetError, ImportReport, import_file
from rftconsole.cli import acting_user


class Command(BaseCommand):
    help = "Validate a JSONL training file, convert Converse/invoke bodies, and store it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="A JSONL file: one training row per line.")
        parser.add_argument("--name", required=True, help="Name shown in the console.")
        parser.add_argument("--description", default="")
        parser.add_argument("--dry-run", action="store_true", help="Check only; store nothing.")
        parser.add_argument("--user", help="Owner (default: the first admin).")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        owner = acting_user(options["user"])
        try:
            dataset, report = import_file(
                owner,
                options["name"],
                path,
                description=options["description"],
                dry_run=options["dry_run"],
            )
        except DatasetError as error:
            if error.report is None:
                raise CommandError(str(error)) from None
            self._print(error.report)
            raise CommandError(error.report.summary()) from None
        self._print(report)
        if not report.ok:  # a dry run with problems
            raise CommandError(report.summary())
        if dataset is not None:
            self.stdout.write(f"Stored dataset {dataset.name!r} ({dataset.path})")
        self.stdout.write(report.summary())

    def _print(self, report: ImportReport) -> None:
        for line, problem in report.problems:
            self.stderr.write(f"line {line}: {problem}" if line else problem)
        if report.problem_count > len(report.problems):
            self.stderr.write(f"… and {report.problem_count - len(report.problems)} more problems")
        for warning in report.warnings:
            self.stdout.write(f"warning: {warning}")
