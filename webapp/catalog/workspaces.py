"""Workspaces made, renamed and archived by people in the site: whoever makes one owns it;
only its owners rename or archive it. An archived workspace is read-only (see
:func:`webapp.catalog.models.editable_workspaces_of`) and listed apart until brought back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from analysis.errors import InputError
from webapp.catalog.models import Membership, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User

NAME_MAX = 200


def clean_name(value: str) -> str:
    """A name a person typed: trimmed, not empty, at most :data:`NAME_MAX` characters."""
    name = value.strip()
    if not name:
        raise InputError("a name cannot be empty")
    if len(name) > NAME_MAX:
        raise InputError(f"a name has at most {NAME_MAX} characters")
    return name


def _free_slug(name: str) -> str:
    """A slug from ``name`` that no workspace has (``-2``, ``-3`` … appended where taken)."""
    base = slugify(name)[:40].strip("-") or "workspace"
    slug, n = base, 1
    while Workspace.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def create(user: User, name: str) -> Workspace:
    """A new workspace owned by ``user``."""
    name = clean_name(name)
    with transaction.atomic():
        workspace = Workspace.objects.create(name=name, slug=_free_slug(name))
        Membership.objects.create(workspace=workspace, user=user, role=Membership.Role.OWNER)
    return workspace


def rename(workspace: Workspace, name: str) -> None:
    """A new name; the slug, and so every link to the workspace, stays."""
    workspace.name = clean_name(name)
    workspace.save(update_fields=["name"])


def archive(workspace: Workspace, archived: bool) -> None:
    """Archive the workspace (read-only, listed apart) or bring it back. Archiving an
    archived workspace keeps the day it was archived (a request sent twice changes nothing)."""
    if archived and workspace.archived_at is not None:
        return
    workspace.archived_at = timezone.now() if archived else None
    workspace.save(update_fields=["archived_at"])
