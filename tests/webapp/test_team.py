"""Teams: members and roles, invitation links, API tokens made and revoked in the site, and
the API's rate limit per token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import api_client_for
from webapp.catalog.models import Invitation, Membership

pytestmark = pytest.mark.django_db


def test_an_owner_invites_a_colleague_who_joins_once(client, owner, workspace, outsider):
    client.force_login(owner)
    response = client.post("/w/lab/members/invite/", {"role": "viewer"}, follow=True)
    invitation = Invitation.objects.get()
    assert f"/invitations/{invitation.token}/" in response.content.decode()
    client.force_login(outsider)
    page = client.get(f"/invitations/{invitation.token}/")
    assert page.status_code == 200 and "Join as viewer" in page.content.decode()
    joined = client.post(f"/invitations/{invitation.token}/")
    assert joined.status_code == 302 and joined["Location"] == "/w/lab/"
    assert Membership.objects.get(workspace=workspace, user=outsider).role == "viewer"
    assert client.get("/w/lab/").status_code == 200
    # Used: it no longer exists, for anyone.
    assert client.get(f"/invitations/{invitation.token}/").status_code == 404
    assert client.post(f"/invitations/{invitation.token}/").status_code == 404
    # A viewer sees the members but cannot manage them.
    assert client.get("/w/lab/members/").status_code == 200
    assert client.post("/w/lab/members/invite/", {"role": "owner"}).status_code == 404
    assert client.post(f"/w/lab/members/{owner.pk}/remove/").status_code == 404
    assert client.post(f"/w/lab/members/{owner.pk}/role/", {"role": "viewer"}).status_code == 404


def test_expired_and_unknown_invitations_do_not_exist(client, owner, workspace, outsider):
    expired = Invitation.objects.create(
        workspace=workspace, role="editor", expires_at=timezone.now() - timedelta(seconds=1)
    )
    client.force_login(outsider)
    assert client.get(f"/invitations/{expired.token}/").status_code == 404
    assert client.post(f"/invitations/{expired.token}/").status_code == 404
    assert client.get("/invitations/not-a-token/").status_code == 404
    assert not Membership.objects.filter(user=outsider, workspace=workspace).exists()


def test_owners_change_roles_and_remove_members_but_keep_an_owner(client, owner, member):
    client.force_login(owner)
    assert client.post(f"/w/lab/members/{member.pk}/role/", {"role": "viewer"}).status_code == 302
    assert Membership.objects.get(user=member).role == "viewer"
    alone = client.post(f"/w/lab/members/{owner.pk}/role/", {"role": "editor"})
    assert alone.status_code == 400 and "needs an owner" in alone.content.decode()
    assert client.post(f"/w/lab/members/{owner.pk}/remove/").status_code == 400
    assert client.post(f"/w/lab/members/{member.pk}/role/", {"role": "god"}).status_code == 400
    assert client.post(f"/w/lab/members/{member.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(user=member).exists()
    client.force_login(member)
    assert client.get("/w/lab/").status_code == 404  # gone with the membership


def test_a_person_creates_replaces_and_revokes_their_api_token(client, owner, workspace):
    client.force_login(owner)
    created = client.post("/account/token/", {"action": "create"}).content.decode()
    key = Token.objects.get(user=owner).key
    assert key in created
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/workspaces/").status_code == 200
    assert key not in client.get("/account/token/").content.decode()  # shown once
    client.post("/account/token/", {"action": "create"})
    assert api.get("/api/v1/workspaces/").status_code == 401  # replaced: the old one is dead
    client.post("/account/token/", {"action": "revoke"})
    assert not Token.objects.filter(user=owner).exists()


def test_the_api_rate_limit_is_per_token(settings, owner, member, workspace):
    settings.REPLENS_API_RATE = "3/minute"
    cache.clear()
    api, other = api_client_for(owner), api_client_for(member)
    assert [api.get("/api/v1/workspaces/").status_code for _ in range(3)] == [200] * 3
    limited = api.get("/api/v1/workspaces/")
    assert limited.status_code == 429 and "throttled" in limited.json()["detail"].lower()
    assert "Retry-After" in limited
    assert other.get("/api/v1/workspaces/").status_code == 200  # another token is not limited
    cache.clear()


def test_members_through_the_api(owner, member, outsider, workspace):
    api = api_client_for(owner)
    listed = api.get("/api/v1/workspaces/lab/members/").json()
    assert {(m["username"], m["role"]) for m in listed} == {
        ("owner", "owner"),
        ("member", "editor"),
    }
    changed = api.patch(
        f"/api/v1/workspaces/lab/members/{member.pk}/", {"role": "viewer"}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["role"] == "viewer"
    refused = api.patch(
        f"/api/v1/workspaces/lab/members/{owner.pk}/", {"role": "editor"}, format="json"
    )
    assert refused.status_code == 400 and "needs an owner" in refused.json()["detail"]
    invited = api.post("/api/v1/workspaces/lab/invitations/", {"role": "editor"}, format="json")
    assert invited.status_code == 201 and "/invitations/" in invited.json()["url"]
    # A viewer reads the members but manages nothing; an outsider sees no workspace at all.
    viewer = api_client_for(member)
    assert viewer.get("/api/v1/workspaces/lab/members/").status_code == 200
    assert (
        viewer.post(
            "/api/v1/workspaces/lab/invitations/", {"role": "owner"}, format="json"
        ).status_code
        == 404
    )
    assert viewer.delete(f"/api/v1/workspaces/lab/members/{owner.pk}/").status_code == 404
    stranger = api_client_for(outsider)
    assert stranger.get("/api/v1/workspaces/lab/members/").status_code == 404
    assert api.delete(f"/api/v1/workspaces/lab/members/{member.pk}/").status_code == 204
    assert not Membership.objects.filter(user=member).exists()
