"""Workspaces through the API: made by anyone signed in (who owns them), renamed and archived
by their owners only (the site's rules, :mod:`webapp.catalog.workspaces`); and the measures
listed with the definitions pages write beside their values."""

from __future__ import annotations

import hashlib
import json

import pytest

from analysis.measures.registry import DEFINITIONS, MEASURES
from tests.conftest import api_client_for, digits_npz_bytes
from tests.webapp.test_schema import check
from webapp.catalog.models import Membership, Upload, Workspace

pytestmark = pytest.mark.django_db


def test_anyone_signed_in_makes_a_workspace_and_owns_it(outsider, workspace):
    api = api_client_for(outsider)
    response = api.post("/api/v1/workspaces/", {"name": "  Vision team "}, format="json")
    assert response.status_code == 201, response.content
    made = response.json()
    assert made["name"] == "Vision team" and made["slug"] == "vision-team"
    assert made["archived_at"] is None and made["page"].endswith("/w/vision-team/")
    row = Workspace.objects.get(slug="vision-team")
    assert list(row.memberships.values_list("user", "role")) == [(outsider.pk, "owner")]
    # Its maker lists it with their other workspace, and may upload into it at once.
    listed = [w["slug"] for w in api.get("/api/v1/workspaces/").json()["results"]]
    assert listed == ["elsewhere", "vision-team"]
    data = digits_npz_bytes(12)
    declared = {
        "workspace": "vision-team",
        "kind": "dataset",
        "filename": "d.npz",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert api.post("/api/v1/uploads/", declared, format="json").status_code == 201
    # The same name again gets a slug of its own.
    again = api.post("/api/v1/workspaces/", {"name": "Vision team"}, format="json").json()
    assert again["slug"] == "vision-team-2"


@pytest.mark.parametrize(
    "body, detail",
    [
        ({}, "name: This field is required."),
        ({"name": "   "}, "name: This field may not be blank."),
        ({"name": "x" * 201}, "name: Ensure this field has no more than 200 characters."),
    ],
)
def test_a_workspace_without_a_usable_name_is_a_400_that_says_why(api, body, detail):
    before = Workspace.objects.count()
    response = api.post("/api/v1/workspaces/", body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == detail
    assert Workspace.objects.count() == before


def test_owners_rename_a_workspace_and_its_slug_stays(api, workspace, member):
    response = api.patch("/api/v1/workspaces/lab/", {"name": "The lab"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "The lab" and response.json()["slug"] == "lab"
    workspace.refresh_from_db()
    assert workspace.name == "The lab" and workspace.slug == "lab"
    refused = api.patch("/api/v1/workspaces/lab/", {"name": ""}, format="json")
    assert refused.status_code == 400
    assert refused.json()["detail"] == "name: This field may not be blank."
    workspace.refresh_from_db()
    assert workspace.name == "The lab"


def test_only_owners_rename_or_archive_everyone_else_gets_404(
    django_user_model, workspace, member, outsider
):
    """Editors and viewers see the workspace but may not change it; an outsider does not
    see it at all: the same 404 as for a workspace that does not exist."""
    viewer = django_user_model.objects.create_user("viewer")
    Membership.objects.create(workspace=workspace, user=viewer, role=Membership.Role.VIEWER)
    for user in (member, viewer, outsider):
        api = api_client_for(user)
        for method, path, body in (
            ("patch", "/api/v1/workspaces/lab/", {"name": "Mine"}),
            ("post", "/api/v1/workspaces/lab/archive/", None),
            ("delete", "/api/v1/workspaces/lab/archive/", None),
        ):
            response = getattr(api, method)(path, body, format="json")
            assert response.status_code == 404, (user.username, method, path)
            ghost = getattr(api, method)(path.replace("/lab/", "/no-such/"), body, format="json")
            assert ghost.content == response.content
    workspace.refresh_from_db()
    assert workspace.name == "Lab" and workspace.archived_at is None


def test_an_archived_workspace_is_listed_apart_and_read_only_until_brought_back(
    api, client, workspace, member, digits
):
    editor = api_client_for(member)
    upload, _ = _declared_upload(editor)
    response = api.post("/api/v1/workspaces/lab/archive/")
    assert response.status_code == 200, response.content
    archived_at = response.json()["archived_at"]
    assert archived_at is not None
    workspace.refresh_from_db()
    assert workspace.archived_at is not None
    # Asked again (a retried request): it stays archived since the first time.
    assert api.post("/api/v1/workspaces/lab/archive/").json()["archived_at"] == archived_at

    # Listed apart, as the site's home page does: not among the active ones.
    def slugs(query: str) -> list[str]:
        return [w["slug"] for w in editor.get(f"/api/v1/workspaces/{query}").json()["results"]]

    assert slugs("?archived=false") == [] and slugs("?archived=true") == ["lab"]
    assert slugs("") == ["lab"]  # both, each with its archived_at
    client.force_login(member)  # the site's home page lists it apart too
    home = client.get("/").content.decode()
    assert home.index("<h2>Archived</h2>") < home.index('href="/w/lab/"')
    # Read-only: its open upload is out of reach (uploads are for changing it), nothing new
    # goes in, and its datasets are not renamed, even by its owner.
    assert editor.get(f"/api/v1/uploads/{upload}/").status_code == 404
    _, refused = _declared_upload(editor, n=20)
    assert refused == 404
    renamed = api.patch(f"/api/v1/datasets/{digits.pk}/", {"name": "x"}, format="json")
    assert renamed.status_code == 404
    # What was in it is still there to read.
    assert editor.get(f"/api/v1/datasets/{digits.pk}/").json()["name"] == digits.name

    response = api.delete("/api/v1/workspaces/lab/archive/")
    assert response.status_code == 200 and response.json()["archived_at"] is None
    workspace.refresh_from_db()
    assert workspace.archived_at is None
    assert slugs("?archived=false") == ["lab"] and slugs("?archived=true") == []
    assert editor.get(f"/api/v1/uploads/{upload}/").json()["state"] == "open"


def test_an_archived_filter_that_is_not_true_or_false_is_a_400(api, workspace):
    response = api.get("/api/v1/workspaces/?archived=yes")
    assert response.status_code == 400
    assert response.json()["detail"] == "archived must be true or false"


def _declared_upload(api, n: int = 12) -> tuple[str | None, int]:
    """Declare an upload of ``n`` digits into the lab: its id (None if refused) and status."""
    data = digits_npz_bytes(n)
    body = {
        "workspace": "lab",
        "kind": "dataset",
        "filename": f"d{n}.npz",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    response = api.post("/api/v1/uploads/", body, format="json")
    made = response.json().get("id") if response.status_code == 201 else None
    assert made is None or Upload.objects.filter(pk=made).exists()
    return made, response.status_code


# --------------------------------------------------------------------------- measures


def test_measures_carry_the_definition_and_chance_level_the_pages_show(api):
    listed = {m["id"]: m for m in api.get("/api/v1/measures/").json()}
    assert list(listed) == list(MEASURES)
    for measure_id, measure in MEASURES.items():
        described = listed[measure_id]
        # The registry's line, the one pages write beside scores (``definition`` filter).
        assert described["definition"] == DEFINITIONS[measure_id]
        assert described["exact_baseline"] is measure.exact_baseline
        assert described["baseline_warning_at"] == measure.baseline_warning_at()
    assert listed["cka/linear"]["definition"].startswith("‖YᵀX‖²_F")
    # A distance is flagged at half its maximum, a similarity at 0.5.
    angular = listed["procrustes/angular"]
    assert angular["baseline_warning_at"] == pytest.approx(angular["range"][1] / 2)
    assert listed["cka/linear"]["baseline_warning_at"] == 0.5


# --------------------------------------------------------------------------- the schema


def test_workspace_answers_match_the_schema(api, workspace):
    response = api.get("/api/v1/schema/?format=json")
    schema = json.loads(
        b"".join(response.streaming_content) if response.streaming else response.content
    )
    parameters = schema["paths"]["/api/v1/workspaces/"]["get"]["parameters"]
    assert "archived" in {p["name"] for p in parameters if p["in"] == "query"}
    made = api.post("/api/v1/workspaces/", {"name": "Audio"}, format="json")
    check(schema, made, "post", "/api/v1/workspaces/", 201)
    renamed = api.patch("/api/v1/workspaces/audio/", {"name": "Sound"}, format="json")
    check(schema, renamed, "patch", "/api/v1/workspaces/{slug}/")
    archive = "/api/v1/workspaces/{slug}/archive/"
    check(schema, api.post("/api/v1/workspaces/audio/archive/"), "post", archive)
    check(schema, api.delete("/api/v1/workspaces/audio/archive/"), "delete", archive)
    check(schema, api.get("/api/v1/workspaces/?archived=false"), "get", "/api/v1/workspaces/")
    refused = api.post("/api/v1/workspaces/", {"name": ""}, format="json")
    check(schema, refused, "post", "/api/v1/workspaces/", 400)
