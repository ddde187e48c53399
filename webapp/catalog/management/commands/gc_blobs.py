"""Delete blobs no row references and chunked uploads abandoned open."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.defaultfilters import filesizeformat

from webapp.catalog.retention import collect_garbage


class Command(BaseCommand):
    help = (
        "Delete blobs (rows and stored bytes) that no row references and that are older than "
        "--min-age-hours, chunked uploads left open with no chunk for "
        "--upload-max-age-days (rows and the chunks received), and the records of uploads "
        "checked that long ago."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument(
            "--min-age-hours",
            type=float,
            default=24,
            help="keep younger blobs: an upload or a run in flight stores its blobs first "
            "(default 24)",
        )
        parser.add_argument("--upload-max-age-days", type=float, default=7, help="default 7")

    def handle(
        self,
        *args: Any,
        dry_run: bool,
        min_age_hours: float,
        upload_max_age_days: float,
        **options: Any,
    ) -> None:
        if min_age_hours < 0 or upload_max_age_days < 0:
            raise CommandError("ages must not be negative")
        freed = collect_garbage(
            timedelta(hours=min_age_hours), timedelta(days=upload_max_age_days), dry_run
        )
        verb = "would free" if dry_run else "freed"
        self.stdout.write(
            f"{verb} {freed.blobs} blob(s), {filesizeformat(freed.blob_bytes)} "
            f"({freed.blob_bytes} bytes), and {freed.uploads} stale upload(s), "
            f"{filesizeformat(freed.upload_bytes)} ({freed.upload_bytes} bytes)"
        )
