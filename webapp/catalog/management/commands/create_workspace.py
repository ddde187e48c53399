"""Create a workspace owned by an existing user (a team server's first workspace)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils.text import slugify

from webapp.catalog.models import Membership, Workspace


class Command(BaseCommand):
    help = "Create a workspace owned by an existing user: create_workspace <slug> <owner>"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the workspace's address, e.g. vision-team")
        parser.add_argument("owner", help="username of its first owner")
        parser.add_argument("--name", default="", help="display name (default: the slug)")

    def handle(self, *args: Any, slug: str, owner: str, name: str, **options: Any) -> None:
        if slugify(slug) != slug:
            raise CommandError(f"{slug!r} is not a valid slug; try {slugify(slug)!r}")
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"no user {owner!r}: create one with createsuperuser first")
        if Workspace.objects.filter(slug=slug).exists():
            raise CommandError(f"a workspace {slug!r} exists already")
        with transaction.atomic():
            workspace = Workspace.objects.create(slug=slug, name=name or slug)
            Membership.objects.create(workspace=workspace, user=user, role=Membership.Role.OWNER)
        self.stdout.write(f"workspace {slug!r} created, owned by {owner}")
