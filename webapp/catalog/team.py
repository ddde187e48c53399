"""Membership rules, for the pages and the API alike: roles are owner, editor and viewer, and
a workspace always keeps at least one owner."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from analysis.errors import InputError
from webapp.catalog.models import Invitation, Membership, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User

ROLES = [role for role, _ in Membership.Role.choices]


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(f"choose a role: {', '.join(ROLES)}")
    return role


def invite(workspace: Workspace, role: str, by: User) -> Invitation:
    """A one-use invitation link's row (its token is the link)."""
    return Invitation.objects.create(workspace=workspace, role=check_role(role), created_by=by)


def _other_owners(membership: Membership) -> bool:
    return (
        Membership.objects.filter(workspace=membership.workspace, role=Membership.Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


def set_role(membership: Membership, role: str) -> Membership:
    check_role(role)
    with transaction.atomic():
        if role != Membership.Role.OWNER and not _other_owners(membership):
            raise InputError("a workspace needs an owner: make someone else owner first")
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def remove(membership: Membership) -> None:
    with transaction.atomic():
        if membership.role == Membership.Role.OWNER and not _other_owners(membership):
            raise InputError("a workspace needs an owner: make someone else owner first")
        membership.delete()
