"""Renaming and deleting what a workspace holds, workspaces made, renamed and archived, the
workspace page's runs table (pages, filters) and the checkpoint page's one dataset choice."""

from __future__ import annotations

import io
import threading

import pytest
from django.db import connection

from analysis.errors import InputError
from tests.conftest import run_with_dependencies
from tests.webapp.builders import media_files, npz_bytes
from webapp.catalog.ingest import ingest_dataset
from webapp.catalog.models import ActivationSet, Blob, Checkpoint, Dataset, Membership, Workspace
from webapp.runs import lifecycle
from webapp.runs.explorer import select_indices
from webapp.runs.models import Run, Score, Selection
from webapp.runs.submit import request_comparison, request_extraction, request_projection

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, owner, workspace):
    client.force_login(owner)
    return client


@pytest.fixture
def compared(owner, ckpt_a, ckpt_b, digits):
    """A finished comparison of the two checkpoints, and a finished projection of A."""
    run, _ = request_comparison(owner, ckpt_a, ckpt_b, digits, n_permutations=2, n_bootstrap=2)
    run = run_with_dependencies(run)
    projection = run_with_dependencies(request_projection(owner, ckpt_a, digits, "block1")[0])
    assert run.state == projection.state == Run.State.SUCCEEDED
    return run, projection


def blob_ids() -> set[int]:
    return set(Blob.objects.values_list("pk", flat=True))


# --------------------------------------------------------------------------- delete


def test_deleting_a_checkpoint_shows_then_removes_what_uses_it_and_its_blobs(
    browser, compared, ckpt_a, ckpt_b, digits, isolated_media, django_capture_on_commit_callbacks
):
    comparison, projection = compared
    extractions_b = set(
        Run.objects.filter(kind=Run.Kind.EXTRACT, checkpoint=ckpt_b).values_list("pk", flat=True)
    )
    b_blobs = set(ActivationSet.objects.filter(checkpoint=ckpt_b).values_list("blob", flat=True))
    a_blobs = {ckpt_a.blob_id} | set(
        ActivationSet.objects.filter(checkpoint=ckpt_a).values_list("blob", flat=True)
    )
    a_blobs -= b_blobs  # identical activations (the flattened input) are one blob
    a_keys = {Blob.objects.get(pk=pk).key for pk in a_blobs}

    page = browser.get(f"/checkpoints/{ckpt_a.pk}/delete/")
    assert page.status_code == 200
    text = page.content.decode()
    assert f'href="/comparisons/{comparison.pk}/"' in text  # the comparison with B goes too
    assert f'href="/projections/{projection.pk}/"' in text
    assert Checkpoint.objects.filter(pk=ckpt_a.pk).exists()  # asking deletes nothing

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(f"/checkpoints/{ckpt_a.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/w/lab/"
    assert not Checkpoint.objects.filter(pk=ckpt_a.pk).exists()
    assert not Run.objects.filter(pk__in=[comparison.pk, projection.pk]).exists()
    assert not Run.objects.filter(checkpoint=ckpt_a.pk).exists()
    assert not Score.objects.filter(run=comparison.pk).exists()
    assert not ActivationSet.objects.filter(checkpoint=ckpt_a.pk).exists()
    # What only A's rows held is gone, rows and bytes; B, its runs and its blobs stay.
    assert not blob_ids() & a_blobs
    stored = {p.relative_to(isolated_media).as_posix() for p in media_files(isolated_media)}
    assert not stored & a_keys
    assert b_blobs | {ckpt_b.blob_id} <= blob_ids()
    assert set(Run.objects.filter(checkpoint=ckpt_b).values_list("pk", flat=True)) == extractions_b
    assert Dataset.objects.filter(pk=digits.pk).exists()


def test_deleting_a_dataset_removes_its_runs_selections_and_precomputed_checkpoints(
    owner, workspace, compared, digits, ckpt_a
):
    select_indices(owner, digits, [1, 2, 3], "three")
    other, _ = ingest_dataset(
        workspace, owner, io.BytesIO(npz_bytes(x=[[1.0, 2.0]] * 4, y=[0, 1, 0, 1])), "v.npz", "V"
    )
    removal = lifecycle.plan(digits)
    assert {r.pk for r in removal.runs} == set(
        Run.objects.filter(dataset=digits).values_list("pk", flat=True)
    )
    assert [s.name for s in removal.selections] == ["three"]
    lifecycle.delete(digits)
    assert not Run.objects.filter(workspace=workspace).exists()
    assert not Selection.objects.exists()
    assert not ActivationSet.objects.exists()
    assert Checkpoint.objects.filter(pk=ckpt_a.pk).exists()  # a model outlives a dataset
    assert Dataset.objects.filter(pk=other.pk).exists()


def test_deleting_a_run_removes_the_runs_that_depend_on_it(compared, ckpt_a):
    comparison, projection = compared
    extraction = comparison.depends_on.get(checkpoint=ckpt_a)
    gone = {r.pk for r in lifecycle.plan(extraction).runs}
    # The projection used activations this extraction made: it goes too, with the extraction
    # it asked for (finished, its activations gone, it would never run again).
    own = projection.depends_on.get()
    assert gone == {extraction.pk, comparison.pk, projection.pk, own.pk}
    lifecycle.delete(extraction)
    assert not Run.objects.filter(pk__in=gone).exists()
    assert not Score.objects.filter(run=comparison.pk).exists()


def test_a_blob_another_workspace_holds_is_kept(owner, workspace, digits, outsider):
    theirs = Workspace.objects.create(name="Theirs", slug="theirs")
    Membership.objects.create(workspace=theirs, user=outsider, role="owner")
    with digits.source.open() as f:
        copy, _ = ingest_dataset(theirs, outsider, io.BytesIO(f.read()), "digits.npz", "Copy")
    assert copy.source_id == digits.source_id
    lifecycle.delete(digits)
    assert Blob.objects.filter(pk=copy.source_id).exists()
    assert Blob.objects.filter(pk=copy.arrays_id).exists()


def test_delete_is_refused_while_a_run_is_queued(browser, ckpt_a, digits):
    queued, _ = request_extraction(ckpt_a.created_by, ckpt_a, digits, ["head"], "mean")
    response = browser.post(f"/datasets/{digits.pk}/delete/")
    assert response.status_code == 400
    assert f"{queued} is queued" in response.content.decode()
    assert Dataset.objects.filter(pk=digits.pk).exists()
    assert Run.objects.filter(pk=queued.pk).exists()


def test_viewers_and_outsiders_cannot_rename_or_delete(client, workspace, digits, outsider):
    viewer = type(outsider).objects.create_user("viewer")
    workspace.memberships.create(user=viewer, role="viewer")
    for user in (viewer, outsider):
        client.force_login(user)
        assert client.get(f"/datasets/{digits.pk}/delete/").status_code == 404
        assert client.post(f"/datasets/{digits.pk}/delete/").status_code == 404
        assert client.post(f"/datasets/{digits.pk}/rename/", {"name": "x"}).status_code == 404
    digits.refresh_from_db()
    assert digits.name == "Digits"


# --------------------------------------------------------------------------- rename


def test_rename_dataset_checkpoint_and_run(browser, ckpt_a, digits):
    run, _ = request_extraction(ckpt_a.created_by, ckpt_a, digits, ["head"], "mean")
    assert browser.post(f"/datasets/{digits.pk}/rename/", {"name": " New "}).status_code == 302
    assert browser.post(f"/checkpoints/{ckpt_a.pk}/rename/", {"name": "A2"}).status_code == 302
    response = browser.post(f"/runs/{run.pk}/rename/", {"name": "first try"})
    assert response["Location"] == "/w/lab/#runs"
    digits.refresh_from_db(), ckpt_a.refresh_from_db(), run.refresh_from_db()
    assert (digits.name, ckpt_a.name, run.name) == ("New", "A2", "first try")
    assert "<strong>first try</strong>" in browser.get("/w/lab/").content.decode()
    refused = browser.post(f"/datasets/{digits.pk}/rename/", {"name": "   "})
    assert refused.status_code == 400
    assert "Not renamed" in refused.content.decode()
    digits.refresh_from_db()
    assert digits.name == "New"


# --------------------------------------------------------------------------- workspaces


def test_workspaces_are_made_renamed_and_archived(client, owner, workspace, member, digits):
    client.force_login(member)
    response = client.post("/workspaces/new/", {"name": "Vision team"})
    assert response.status_code == 302 and response["Location"] == "/w/vision-team/"
    made = Workspace.objects.get(slug="vision-team")
    assert made.memberships.get().user == member and made.memberships.get().role == "owner"
    assert client.post("/workspaces/new/", {"name": "Vision team"})["Location"].endswith("-2/")
    assert client.post("/workspaces/new/", {"name": " "}).status_code == 400
    # An editor of the lab may not rename or archive it; its owner may.
    assert client.post("/w/lab/rename/", {"name": "Mine"}).status_code == 404
    assert client.post("/w/lab/archive/", {"archived": "1"}).status_code == 404
    client.force_login(owner)
    assert client.post("/w/lab/rename/", {"name": "The lab"}).status_code == 302
    assert client.post("/w/lab/archive/", {"archived": "1"}).status_code == 302
    workspace.refresh_from_db()
    assert workspace.name == "The lab" and workspace.archived_at is not None
    # Archived: read-only for everyone, listed apart.
    client.force_login(member)
    assert client.post(f"/datasets/{digits.pk}/rename/", {"name": "x"}).status_code == 404
    home = client.get("/").content.decode()
    assert "<h2>Archived</h2>" in home and home.index("Vision team") < home.index("Archived")
    client.force_login(owner)
    assert client.post("/w/lab/archive/", {"archived": "0"}).status_code == 302
    workspace.refresh_from_db()
    assert workspace.archived_at is None


# --------------------------------------------------------------------------- the runs table


def _runs(workspace, dataset, checkpoint, users, n):
    return Run.objects.bulk_create(
        Run(
            workspace=workspace,
            kind=(Run.Kind.EXTRACT, Run.Kind.PROJECT)[i % 2],
            state=(Run.State.SUCCEEDED, Run.State.FAILED)[i % 3 == 0],
            params={"layers": ["head"], "pooling": "mean", "layer": "head", "method": "pca"},
            request_key=f"key-{i}",
            dataset=dataset,
            checkpoint=checkpoint,
            created_by=users[i % len(users)],
        )
        for i in range(n)
    )


def test_runs_table_is_paginated_and_filtered(browser, workspace, owner, member, ckpt_a, digits):
    _runs(workspace, digits, ckpt_a, [owner, member], 60)
    first = browser.get("/w/lab/").content.decode()
    assert "page 1 of 3" in first and "60 runs" in first
    second = browser.get("/w/lab/runs/?page=2", HTTP_HX_REQUEST="true")
    assert second.status_code == 286  # nothing active: nothing to poll for
    assert "page 2 of 3" in second.content.decode()
    failed = browser.get(
        f"/w/lab/runs/?kind=project&state=failed&person={member.pk}", HTTP_HX_REQUEST="true"
    )
    expected = [i for i in range(60) if i % 2 == 1 and i % 3 == 0]  # the member's: odd i
    assert f"{len(expected)} runs" in failed.content.decode()
    assert failed.content.decode().count('<tr class="state-failed">') == len(expected)
    named = Run.objects.get(request_key="key-7")
    named.name = "the long one"
    named.save()
    found = browser.get("/w/lab/runs/?q=LONG one", HTTP_HX_REQUEST="true").content.decode()
    assert "1 run<" in found and "the long one" in found
    bad = browser.get("/w/lab/?state=exploded")
    assert bad.status_code == 400
    assert "exploded is not one of the available choices" in bad.content.decode()


def test_workspace_page_lists_projections_and_probes_and_opens_forms_on_demand(browser, compared):
    _, projection = compared
    text = browser.get("/w/lab/").content.decode()
    assert f'href="/projections/{projection.pk}/"' in text
    assert text.index('id="uploads"') < text.index('id="datasets"') < text.index("New comparison")
    assert "<summary>New comparison</summary>" in text
    assert "<summary>Upload a dataset</summary>" in text


# --------------------------------------------------------------------------- checkpoint page


def test_checkpoint_page_asks_for_the_dataset_once_and_offers_what_fits(
    browser, workspace, owner, ckpt_a, digits
):
    vectors, _ = ingest_dataset(
        workspace, owner, io.BytesIO(npz_bytes(x=[[1.0] * 64] * 6, y=[0, 1] * 3)), "v.npz", "Vec"
    )
    text = browser.get(f"/checkpoints/{ckpt_a.pk}/?dataset={vectors.pk}").content.decode()
    for name in ("dataset", "aligned-dataset", "probe-dataset"):
        assert f'<input type="hidden" name="{name}" value="{vectors.pk}"' in text, name
    assert 'value="vector/noise"' in text and "image/rotation" not in text
    assert 'value="cls"' not in text  # a token's pooling: for text models only
    images = browser.get(f"/checkpoints/{ckpt_a.pk}/?dataset={digits.pk}").content.decode()
    assert 'value="image/rotation"' in images and "vector/noise" not in images


def test_checkpoint_lineage_is_shown_and_edited(browser, workspace, owner, ckpt_a, ckpt_b):
    response = browser.post(
        f"/checkpoints/{ckpt_b.pk}/lineage/",
        {"seed_group": "mlp", "step": 500, "parent": ckpt_a.pk},
    )
    assert response.status_code == 302
    ckpt_b.refresh_from_db()
    assert (ckpt_b.seed_group, ckpt_b.step, ckpt_b.parent_id) == ("mlp", 500, ckpt_a.pk)
    cycle = browser.post(f"/checkpoints/{ckpt_a.pk}/lineage/", {"parent": ckpt_b.pk})
    assert cycle.status_code == 400 and "cannot be its parent" in cycle.content.decode()
    ckpt_a.refresh_from_db()
    assert ckpt_a.parent_id is None
    page = browser.get(f"/checkpoints/{ckpt_a.pk}/").content.decode()
    assert f'href="/checkpoints/{ckpt_b.pk}/">mlp-seed1</a> <span class="muted">(step 500)' in page


def test_checkpoint_page_lists_every_result_that_uses_it(browser, compared, ckpt_b):
    comparison, _ = compared
    page = browser.get(f"/checkpoints/{ckpt_b.pk}/").content.decode()
    assert f'href="/comparisons/{comparison.pk}/"' in page


# --------------------------------------------------------------------------- the API


def test_the_api_renames_and_deletes(api, compared, ckpt_a, digits):
    comparison, _ = compared
    renamed = api.patch(f"/api/v1/runs/{comparison.pk}/", {"name": "seeds"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "seeds"
    assert (
        api.patch(f"/api/v1/datasets/{digits.pk}/", {"name": ""}, format="json").status_code == 400
    )
    queued, _ = request_extraction(ckpt_a.created_by, ckpt_a, digits, ["head"], "flatten")
    refused = api.delete(f"/api/v1/checkpoints/{ckpt_a.pk}/")
    assert refused.status_code == 400 and f"{queued} is queued" in refused.json()["detail"]
    queued.cancel()
    assert api.delete(f"/api/v1/checkpoints/{ckpt_a.pk}/").status_code == 204
    assert not Run.objects.filter(pk=comparison.pk).exists()
    assert api.get(f"/api/v1/checkpoints/{ckpt_a.pk}/").status_code == 404


def test_a_run_asked_for_again_while_a_delete_is_planned_is_not_deleted(
    transactional_db, monkeypatch, owner, digits, ckpt_a
):
    """A failed run queued again (a conditional UPDATE, as Run.submit does) after the delete
    read the states but before it deleted: the delete reads them again under a lock, sees a
    queued run and refuses, instead of deleting a run a worker is about to take."""
    run, _ = request_extraction(owner, ckpt_a, digits, ["head"], "mean")
    run.finish(Run.State.FAILED, "out of memory")
    planned, go = threading.Event(), threading.Event()
    plan = lifecycle.plan

    def slow_plan(target):
        found = plan(target)
        planned.set()
        assert go.wait(30)
        return found

    monkeypatch.setattr(lifecycle, "plan", slow_plan)
    refused: list[str] = []

    def delete():
        try:
            lifecycle.delete(digits)
        except InputError as err:
            refused.append(str(err))
        finally:
            connection.close()

    deleting = threading.Thread(target=delete)
    deleting.start()
    assert planned.wait(30)
    assert Run.objects.filter(pk=run.pk, state=Run.State.FAILED).update(state="queued") == 1
    go.set()
    deleting.join(30)
    assert refused == [f"{run} is queued: cancel it or wait until it ends, then delete again"]
    assert Run.objects.get(pk=run.pk).state == Run.State.QUEUED
    assert Dataset.objects.filter(pk=digits.pk).exists()
