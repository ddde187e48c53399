"""Team pages: a workspace's members and invitations, and a person's API token.

Only owners manage members: they invite (a link with a role, used once, expiring), change
roles and remove members, and a workspace always keeps at least one owner. Everyone else gets
404 for these actions, as for anything they may not see.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from rest_framework.authtoken.models import Token

from analysis.errors import InputError
from webapp.catalog import team
from webapp.catalog.models import (
    Invitation,
    Membership,
    Workspace,
    owned_workspaces_of,
    workspaces_of,
)

if TYPE_CHECKING:
    from webapp.access import SignedInRequest


def _owned(request: SignedInRequest, slug: str) -> Workspace:
    return get_object_or_404(owned_workspaces_of(request.user), slug=slug)


@login_required
def members(request: SignedInRequest, slug: str, status: int = 200) -> HttpResponse:
    workspace = get_object_or_404(workspaces_of(request.user), slug=slug)
    is_owner = owned_workspaces_of(request.user).filter(pk=workspace.pk).exists()
    context = {
        "workspace": workspace,
        "members": workspace.memberships.select_related("user").order_by("user__username"),
        "is_owner": is_owner,
        "roles": team.ROLES,
        "invitations": workspace.invitations.filter(
            accepted_at__isnull=True, expires_at__gt=timezone.now()
        ).order_by("-created_at")
        if is_owner
        else [],
    }
    return render(request, "pages/members.html", context, status=status)


@login_required
@require_POST
def invite(request: SignedInRequest, slug: str) -> HttpResponse:
    workspace = _owned(request, slug)
    try:
        invitation = team.invite(workspace, request.POST.get("role", ""), request.user)
    except InputError as err:
        messages.error(request, str(err))
        return members(request, slug, status=400)
    link = request.build_absolute_uri(f"/invitations/{invitation.token}/")
    messages.success(request, f"Send this link to the person to invite (valid once): {link}")
    return redirect("members", slug=slug)


@login_required
@require_POST
def change_role(request: SignedInRequest, slug: str, user_id: int) -> HttpResponse:
    membership = get_object_or_404(_owned(request, slug).memberships, user_id=user_id)
    try:
        team.set_role(membership, request.POST.get("role", ""))
    except InputError as err:
        messages.error(request, str(err))
        return members(request, slug, status=400)
    return redirect("members", slug=slug)


@login_required
@require_POST
def remove_member(request: SignedInRequest, slug: str, user_id: int) -> HttpResponse:
    membership = get_object_or_404(_owned(request, slug).memberships, user_id=user_id)
    try:
        team.remove(membership)
    except InputError as err:
        messages.error(request, str(err))
        return members(request, slug, status=400)
    if membership.user_id == request.user.pk:
        return redirect("home")
    return redirect("members", slug=slug)


@login_required
def invitation(request: SignedInRequest, token: str) -> HttpResponse:
    """Open an invitation; POST accepts it. Used or expired ones do not exist any more."""
    found = get_object_or_404(Invitation.objects.select_related("workspace"), token=token)
    if not found.usable:
        raise Http404("this invitation was used or has expired")
    if request.method == "POST":
        with transaction.atomic():
            claimed = Invitation.objects.filter(pk=found.pk, accepted_at__isnull=True).update(
                accepted_at=timezone.now(), accepted_by=request.user
            )
            if not claimed:
                raise Http404("this invitation was used or has expired")
            Membership.objects.get_or_create(
                workspace=found.workspace, user=request.user, defaults={"role": found.role}
            )
        return redirect("workspace", slug=found.workspace.slug)
    return render(request, "pages/invitation.html", {"invitation": found})


@login_required
def api_token(request: SignedInRequest) -> HttpResponse:
    """The person's API token: create (or replace) it, shown once, or revoke it."""
    shown = None
    if request.method == "POST":
        Token.objects.filter(user=request.user).delete()
        if request.POST.get("action") == "create":
            shown = Token.objects.create(user=request.user).key
    token = Token.objects.filter(user=request.user).first()
    return render(request, "pages/token.html", {"token": token, "shown": shown})
