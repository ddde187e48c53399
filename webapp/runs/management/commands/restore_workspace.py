"""Restore a workspace from a tar file written by backup_workspace, as a new workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.runs.backup import ArchiveError, restore


class Command(BaseCommand):
    help = (
        "Restore a backup of a workspace as a new workspace with new ids (every blob checked "
        "against its sha256, all or nothing). Members are matched by username; those without "
        "an account here are left out. Runs that were queued or running are queued again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="a tar file written by backup_workspace")
        parser.add_argument(
            "--slug", help="the new workspace's slug (default: the one backed up; must be free)"
        )

    def handle(self, *args: Any, file: Path, slug: str | None, **options: Any) -> None:
        try:
            restored = restore(file, slug)
        except ArchiveError as err:
            raise CommandError(str(err)) from None
        rows = ", ".join(f"{n} {label.split('.')[1]}" for label, n in restored.counts.items())
        self.stdout.write(f"restored {restored.workspace.slug}: {rows}")
        if restored.missing_users:
            self.stdout.write(
                "no account here for " + ", ".join(sorted(restored.missing_users)) + ": "
                "their memberships were not restored"
            )
