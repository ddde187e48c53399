"""Write a workspace's rows and the bytes of its blobs to one tar file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.catalog.models import Workspace
from webapp.runs.backup import backup


class Command(BaseCommand):
    help = (
        "Back up a workspace (memberships, datasets, checkpoints, activations, runs, results, "
        "selections and the bytes of every blob they use) to a tar file; "
        "restore it with restore_workspace."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the workspace")
        parser.add_argument("file", type=Path, help="the tar file to write")

    def handle(self, *args: Any, slug: str, file: Path, **options: Any) -> None:
        workspace = Workspace.objects.filter(slug=slug).first()
        if workspace is None:
            raise CommandError(f"no workspace {slug!r}")
        counts = backup(workspace, file)
        rows = ", ".join(f"{n} {label.split('.')[1]}" for label, n in counts.items() if n)
        self.stdout.write(f"backed up {slug} to {file}: {rows}")
