"""Workspaces made, renamed, archived and listed from Python and from ``replens``, against the
real server."""

from __future__ import annotations

import pytest
from replens_client import ReplensError

from tests.client.test_cli import replens_cli  # noqa: F401  (a fixture)
from webapp.catalog.models import Workspace


def test_the_client_makes_renames_and_archives_a_workspace(
    replens, owner, server, small_digits_file
):
    made = replens.create_workspace("Vision team")
    assert made["slug"] == "vision-team" and made["page"] == f"{server}/w/vision-team/"
    row = Workspace.objects.get(slug="vision-team")
    assert list(row.memberships.values_list("user", "role")) == [(owner.pk, "owner")]
    assert [w["slug"] for w in replens.workspaces()] == ["lab", "vision-team"]

    renamed = replens.rename_workspace("vision-team", "Vision")
    assert renamed["name"] == "Vision" and renamed["slug"] == "vision-team"
    row.refresh_from_db()
    assert row.name == "Vision"

    archived = replens.archive_workspace("vision-team")
    assert archived["archived_at"] is not None
    row.refresh_from_db()
    assert row.archived_at is not None
    assert [w["slug"] for w in replens.workspaces(archived=False)] == ["lab"]
    assert [w["slug"] for w in replens.workspaces(archived=True)] == ["vision-team"]
    # Read-only now: nothing new goes in.
    with pytest.raises(ReplensError) as refused:
        replens.upload_dataset(small_digits_file, "vision-team")
    assert refused.value.status == 404
    assert not row.datasets.exists()

    back = replens.archive_workspace("vision-team", archived=False)
    assert back["archived_at"] is None
    row.refresh_from_db()
    assert row.archived_at is None


def test_the_client_gets_the_servers_refusals(replens, workspace):
    with pytest.raises(ReplensError) as blank:
        replens.rename_workspace("lab", "   ")
    assert blank.value.status == 400 and "name: This field may not be blank." in str(blank.value)
    # Someone else's workspace, or one that does not exist: 404.
    Workspace.objects.create(name="Elsewhere", slug="elsewhere")
    for slug in ("elsewhere", "no-such"):
        with pytest.raises(ReplensError) as missing:
            replens.rename_workspace(slug, "Mine")
        assert missing.value.status == 404, slug
    # What cannot be a slug is refused before any request (``lab/archive`` is another route).
    for slug in ("lab/archive", "lab?x=1", ""):
        with pytest.raises(ValueError, match="is not a workspace slug"):
            replens.archive_workspace(slug)
    workspace.refresh_from_db()
    assert workspace.name == "Lab"
    with pytest.raises(ReplensError) as long:
        replens.create_workspace("x" * 201)
    assert str(long.value) == (
        "name: Ensure this field has no more than 200 characters. (HTTP 400)"
    )
    assert Workspace.objects.count() == 2


def test_replens_workspace_commands_and_ls_workspaces(replens_cli, server):  # noqa: F811
    status, made, err = replens_cli("workspace", "create", "Vision team")
    assert status == 0, err
    page = f"{server}/w/vision-team/"
    assert (
        made["slug"] == "vision-team" and err == f"replens: created workspace vision-team: {page}\n"
    )

    status, text, _ = replens_cli("ls", "workspaces", json_out=False)
    header, *rows = text.splitlines()
    assert header.split() == ["SLUG", "NAME", "ARCHIVED_AT", "CREATED_AT"]
    assert [r.split()[:3] for r in rows] == [["lab", "Lab", "-"], ["vision-team", "Vision", "team"]]

    status, renamed, err = replens_cli("workspace", "rename", "vision-team", "Vision")
    assert status == 0 and renamed["name"] == "Vision"
    assert err == f"replens: renamed workspace vision-team to 'Vision': {page}\n"
    assert Workspace.objects.get(slug="vision-team").name == "Vision"

    status, archived, err = replens_cli("workspace", "archive", "vision-team")
    assert status == 0 and archived["archived_at"] is not None
    assert err == f"replens: workspace vision-team is archived: {page}\n"
    assert Workspace.objects.get(slug="vision-team").archived_at is not None
    status, active, _ = replens_cli("ls", "workspaces", "--active")
    assert [w["slug"] for w in active] == ["lab"]
    status, text, _ = replens_cli("ls", "workspaces", "--archived", json_out=False)
    assert [r.split()[0] for r in text.splitlines()[1:]] == ["vision-team"]

    status, back, err = replens_cli("workspace", "unarchive", "vision-team", json_out=False)
    assert status == 0 and "archived_at  -\n" in back
    assert err == f"replens: workspace vision-team is active: {page}\n"
    assert Workspace.objects.get(slug="vision-team").archived_at is None

    # Refusals: the server's sentence, exit status 1, nothing changed.
    status, out, err = replens_cli("workspace", "rename", "lab", "")
    assert status == 1 and out is None
    assert "name: This field may not be blank." in err
    status, out, err = replens_cli("workspace", "archive", "no-such")
    assert (status, out) == (1, None)
    assert err == "replens: error: No Workspace matches the given query. (HTTP 404)\n"
    assert Workspace.objects.get(slug="lab").name == "Lab"
    with pytest.raises(SystemExit) as usage:
        replens_cli("workspace", "archive", "lab/archive")
    assert usage.value.code == 2
    assert Workspace.objects.get(slug="lab").archived_at is None
