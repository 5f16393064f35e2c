"""`manage.py rotate_encryption_key [--dry-run]`: re-encrypt all stored data with the primary key.

Rotation: put the new key first and keep the old one after it (RFT_ENCRYPTION_KEY="new,old" or the
key file), restart, run this command, then remove the old key. Safe to run again.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rftconsole.security.crypto import at_rest_enabled, configured_keys
from rftconsole.security.key_rotation import rotate_all


class Command(BaseCommand):
    help = (
        "Re-encrypt dataset files, invocation logs, rollouts and judge API keys with the first "
        "(primary) encryption key; data stored plain before a key was set is encrypted too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Only check that every item decrypts with the configured keys; change nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not at_rest_enabled():
            raise CommandError(
                "Encryption at rest is off: set RFT_ENCRYPTION_KEY or RFT_ENCRYPTION_KEY_FILE "
                "(new key first, old keys after it) and run this again."
            )
        dry_run = options["dry_run"]
        self.stdout.write(f"{len(configured_keys())} key(s) configured; the first one encrypts.")
        outcomes = rotate_all(dry_run=dry_run)
        for outcome in outcomes:
            self.stdout.write(outcome.line(dry_run))
            for message in outcome.skipped + outcome.failed:
                self.stdout.write(f"  {message}")
        failed = sum(len(outcome.failed) for outcome in outcomes)
        if failed:
            raise CommandError(
                f"{failed} item(s) could not be decrypted and were left as they are: add the key "
                "they were encrypted with (after the primary) and run this again."
            )
        if not dry_run:
            self.stdout.write("Done: every item is encrypted with the primary key.")
