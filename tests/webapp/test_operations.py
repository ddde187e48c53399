"""Operating a team server: health checks, the workers page and API, garbage collection of
blobs and abandoned uploads, backup and restore of a workspace, and the queue settings that
must hold together."""

from __future__ import annotations

import hashlib
import io
import tarfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.utils import timezone

from tests.conftest import checkpoint_from, run_with_dependencies, torchscript_mlp_bytes
from tests.webapp.test_settings import load_settings
from webapp import status
from webapp.catalog import uploads
from webapp.catalog.fits import check_fits
from webapp.catalog.models import Blob, Checkpoint, Membership, Upload, Workspace
from webapp.catalog.retention import blob_references
from webapp.runs.backup import LEFT_OUT, PARTS
from webapp.runs.explorer import select_indices
from webapp.runs.kinds import QUEUE_OF_KIND
from webapp.runs.models import Run, Selection, Worker
from webapp.runs.results import comparison_matrix, model_matrix
from webapp.runs.submit import (
    request_aligned_projections,
    request_alignment,
    request_comparison,
    request_compatibility,
    request_dynamics,
    request_extraction,
    request_model_matrix,
    request_probe,
    request_projection,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_status():
    """Each test asks the broker itself whether it is reachable (cached a few seconds)."""
    cache.delete(status.CACHE_KEY)
    yield
    cache.delete(status.CACHE_KEY)


@pytest.fixture
def broker_down(monkeypatch):
    """The broker at a port where nothing listens (Celery reads the variable first)."""
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")


# --------------------------------------------------------------------------- health checks


def test_healthz_says_ok_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_names_the_broker_when_it_is_down_and_nothing_else(client, broker_down):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "ok", "broker": "error"}


def test_healthz_names_the_database_when_it_is_down(client, monkeypatch):
    def refuse():
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "error", "broker": "ok"}


def test_healthz_of_the_workers_is_503_while_none_answers(client):
    response = client.get("/healthz/workers")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "workers": 0}


def test_healthz_refuses_writes(client):
    assert client.post("/healthz").status_code == 405


# --------------------------------------------------------------------------- workers page, API


@pytest.fixture
def queued(owner, ckpt_a, digits):
    """One run of the lab waiting for a worker (its message is never sent: the test's
    transaction does not commit)."""
    return request_extraction(owner, ckpt_a, digits, ["block1"])[0]


def test_the_workers_page_counts_every_teams_runs_and_names_none(client, outsider, queued):
    client.force_login(outsider)
    response = client.get("/workers/")
    assert response.status_code == 200
    rows = dict(response.context["runs"])
    assert rows["Extract activations"] == [1, 0, 0, 0, 0]  # queued, running, succeeded, …
    assert sum(sum(counts) for counts in rows.values()) == 1
    html = response.content.decode()
    assert "No worker is alive" in html
    for queue in ("cpu", "default", "gpu"):
        assert f'<td class="mono">{queue}</td>' in html
    for name in ("Lab", "Digits", "mlp-seed0", "digits.npz"):
        assert name not in html
    partial = client.get("/workers/", HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="status"') and "<html" not in partial


def test_the_workers_page_needs_a_login(client):
    response = client.get("/workers/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_workers_api_gives_the_same_counts(api, queued):
    body = api.get("/api/v1/workers/").json()
    assert body["broker"] == "ok" and body["workers"] == [] and body["silent"] == []
    waiting = {q["name"]: q["waiting"] for q in body["queues"]}
    assert waiting == {"cpu": 0, "default": 0, "gpu": 0, QUEUE_OF_KIND[queued.kind]: 1}
    assert body["runs"] == [{"kind": "extract", "state": "queued", "count": 1}]


def test_workers_are_those_that_said_they_are_alive_with_the_runs_that_name_them(
    api, settings, queued, ckpt_a, digits, owner
):
    settings.REPLENS_HEARTBEAT_S = 10
    now = timezone.now()
    Worker.objects.create(
        name="gpu@a",
        queues=["gpu"],
        concurrency=1,
        started_at=now - timedelta(hours=1),
        seen_at=now - timedelta(seconds=5),
    )
    Worker.objects.create(  # silent for 4 heartbeats: gone without saying so
        name="gpu@b",
        queues=["gpu"],
        concurrency=1,
        started_at=now - timedelta(hours=1),
        seen_at=now - timedelta(seconds=40),
    )
    Worker.objects.create(  # silent for two hours: no longer listed
        name="cpu@c",
        queues=["cpu"],
        concurrency=2,
        started_at=now - timedelta(hours=3),
        seen_at=now - timedelta(hours=2),
    )
    running = request_projection(owner, ckpt_a, digits, "block1")[0]
    assert running.claim("task", "gpu@a")
    finished = request_projection(owner, ckpt_a, digits, "block2")[0]
    Run.objects.filter(pk=finished.pk).update(
        state=Run.State.SUCCEEDED, worker="gpu@a", finished_at=now - timedelta(minutes=1)
    )
    before = request_projection(owner, ckpt_a, digits, "head")[0]  # by its previous start
    Run.objects.filter(pk=before.pk).update(
        state=Run.State.SUCCEEDED, worker="gpu@a", finished_at=now - timedelta(hours=2)
    )
    body = api.get("/api/v1/workers/").json()
    assert [(w["name"], w["active"], w["processed"]) for w in body["workers"]] == [("gpu@a", 1, 1)]
    assert [w["name"] for w in body["silent"]] == ["gpu@b"] and body["silent_after_s"] == 30
    waiting = {q["name"]: (q["waiting"], q["workers"]) for q in body["queues"]}
    queued_runs = Run.objects.filter(state=Run.State.QUEUED)
    assert queued_runs.count() >= 1 and sum(n for n, _ in waiting.values()) == queued_runs.count()
    for run in queued_runs:
        assert waiting[QUEUE_OF_KIND[run.kind]][0] >= 1
    assert waiting["gpu"][1] == 1 and waiting["cpu"][1] == 0
    assert api.get("/healthz/workers").json() == {"status": "ok", "workers": 1}


def test_the_workers_api_says_when_the_broker_is_unreachable(api, broker_down, queued):
    body = api.get("/api/v1/workers/").json()
    assert body["broker"] == "unreachable"
    assert sum(q["waiting"] for q in body["queues"]) == 1  # the runs are in the database


# --------------------------------------------------------------------------- settings


def test_a_visibility_timeout_below_the_hard_time_limit_stops_start_up():
    limits = {"CELERY_TASK_SOFT_TIME_LIMIT": "600", "CELERY_TASK_TIME_LIMIT": "900"}
    redis = {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0", **limits}
    refused = load_settings({**redis, "CELERY_VISIBILITY_TIMEOUT": "900"})
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr
    assert "CELERY_VISIBILITY_TIMEOUT (900 s) must be above CELERY_TASK_TIME_LIMIT (900 s)" in (
        refused.stderr
    )
    assert load_settings({**redis, "CELERY_VISIBILITY_TIMEOUT": "960"}).returncode == 0
    hard_below_soft = load_settings({**redis, "CELERY_TASK_TIME_LIMIT": "500"})
    assert hard_below_soft.returncode != 0 and "CELERY_TASK_TIME_LIMIT" in hard_below_soft.stderr


# --------------------------------------------------------------------------- gc_blobs


def age(queryset, hours: float) -> None:
    queryset.update(created_at=timezone.now() - timedelta(hours=hours))


def stored_files(media: Path) -> set[Path]:
    return {p for p in media.rglob("*") if p.is_file()}


def gc(*args) -> str:
    out = io.StringIO()
    call_command("gc_blobs", *args, stdout=out)
    return out.getvalue()


def test_blob_references_are_found_in_every_app():
    found = {(model._meta.label, field.name) for model, field in blob_references()}
    assert {
        ("catalog.Dataset", "source"),
        ("catalog.Checkpoint", "blob"),
        ("catalog.ActivationSet", "blob"),
        ("runs.Score", "sample_agreement"),
        ("runs.Projection", "kept"),
        ("runs.Selection", "indices"),
    } <= found


def test_gc_deletes_old_unreferenced_blobs_only(owner, digits, ckpt_a, isolated_media):
    selection = select_indices(owner, digits, [1, 2, 3], "kept by a selection")
    orphan = Blob.store_array(np.arange(1000, dtype=np.int64))
    age(Blob.objects.all(), hours=48)
    young = Blob.store_array(np.arange(7))  # an upload in flight may not reference it yet
    files = stored_files(isolated_media)

    dry = gc("--dry-run")
    assert f"would free 1 blob(s), {orphan.size / 1024:.1f}" in dry.replace("\xa0", " ")
    assert f"({orphan.size} bytes)" in dry
    assert Blob.objects.filter(pk=orphan.pk).exists() and stored_files(isolated_media) == files

    out = gc()
    assert "freed 1 blob(s)" in out and f"({orphan.size} bytes)" in out
    assert not Blob.objects.filter(pk=orphan.pk).exists()
    assert not default_storage.exists(orphan.key)
    assert stored_files(isolated_media) == files - {isolated_media / orphan.key}
    assert Blob.objects.filter(pk=young.pk).exists()
    kept = [digits.source, digits.arrays, ckpt_a.blob, selection.indices]
    assert all(default_storage.exists(b.key) for b in kept)

    # A selection of the runs app was the only holder of its blob: gone, the blob goes too.
    Selection.objects.filter(pk=selection.pk).delete()
    assert "freed 1 blob(s)" in gc("--min-age-hours", "1")
    assert not Blob.objects.filter(pk=selection.indices_id).exists()
    assert Blob.objects.filter(pk=young.pk).exists()  # younger than an hour


def test_gc_deletes_uploads_abandoned_open_and_old_records(owner, workspace, isolated_media):
    def upload_of(content: bytes):
        upload, _ = uploads.start(
            owner,
            workspace,
            "dataset",
            "d.npz",
            len(content) * 2,
            hashlib.sha256(content * 2).hexdigest(),
        )
        return uploads.append(upload, 0, io.BytesIO(content), len(content))

    before = stored_files(isolated_media)
    stale = upload_of(b"x" * 1000)
    fresh = upload_of(b"y" * 10)
    finished = upload_of(b"z" * 10)
    Upload.objects.filter(pk=finished.pk).update(state=Upload.State.DONE)
    # Waiting for its check, however long: the reaper's business (a silent worker), not gc's.
    checking = upload_of(b"c" * 10)
    Upload.objects.filter(pk=checking.pk).update(state=Upload.State.CHECKING)
    refused = upload_of(b"r" * 10)
    Upload.objects.filter(pk=refused.pk).update(state=Upload.State.FAILED, error="bad")
    chunks = stored_files(isolated_media) - before
    assert chunks
    old = timezone.now() - timedelta(days=8)
    aged = [stale.pk, finished.pk, checking.pk, refused.pk]
    Upload.objects.filter(pk__in=aged).update(updated_at=old)

    out = gc("--upload-max-age-days", "7")
    # The open one's chunks, and the records of those made or refused that long ago.
    assert "3 stale upload(s)" in out and "(1000 bytes)" in out
    kept = {fresh.pk, checking.pk}
    assert set(Upload.objects.values_list("pk", flat=True)) == kept
    assert default_storage.listdir(checking.chunk_prefix)[1]  # the check will read them
    left = stored_files(isolated_media) - before
    assert left and left < chunks  # the fresh upload's chunks are kept, the stale one's gone


def test_gc_refuses_a_negative_age():
    with pytest.raises(CommandError, match="negative"):
        gc("--min-age-hours", "-1")


# --------------------------------------------------------------------------- backup, restore


def test_every_model_of_a_workspace_is_backed_up_or_said_why_not():
    found = {
        *apps.get_app_config("catalog").get_models(),
        *apps.get_app_config("runs").get_models(),
    }
    assert found == {model for model, _ in PARTS} | set(LEFT_OUT)


def snapshot(workspace: Workspace) -> dict[str, list[dict]]:
    """Every row of the workspace as plain values: ids replaced by the position of the row
    they name (rows in order of creation), blobs by their sha256, users by username."""
    rows = {
        model: list(model.objects.filter(**{lookup: workspace.pk}).order_by("pk"))
        for model, lookup in PARTS
    }
    position = {(type(o), o.pk): i for objects in rows.values() for i, o in enumerate(objects)}

    def plain(obj, f):
        value = getattr(obj, f.attname)
        if value is None or not f.is_relation:
            return value
        if f.related_model is Blob:
            return Blob.objects.get(pk=value).sha256
        if f.related_model is get_user_model():
            return get_user_model().objects.get(pk=value).username
        return position[(f.related_model, value)]

    found = {}
    for model, objects in rows.items():
        if model is Workspace:
            continue
        found[model._meta.label] = [
            {
                **{
                    f.name: plain(o, f)
                    for f in model._meta.concrete_fields
                    if not f.primary_key
                    and f.related_model is not Workspace
                    and f.name not in ("request_key", "celery_task_id", "worker")
                },
                **{
                    f.name: sorted(
                        position[(f.related_model, r.pk)] for r in getattr(o, f.name).all()
                    )
                    for f in model._meta.many_to_many
                },
            }
            for o in objects
        ]
    for run in found["runs.Run"]:  # the ids in parameters
        p = run["params"]
        if "checkpoints" in p:
            p["checkpoints"] = [position[(Checkpoint, c)] for c in p["checkpoints"]]
        if "spaces" in p:
            p["spaces"] = [[position[(Checkpoint, c)], layer] for c, layer in p["spaces"]]
        if "aligned" in p:
            p["aligned"] = position[(Run, p["aligned"])]
    return found


@pytest.fixture
def lab(owner, member, workspace, digits, ckpt_a):
    """A lab with a member, two checkpoints (one the parent of the other, and the next step
    of a training run) that read its dataset (checked), one finished run of
    every kind with its results (extractions, scores with per-sample blobs, a model matrix, an
    alignment, compatibility, projections, aligned ones, a probe), a selection, and a run
    still queued."""
    a, d = ckpt_a, digits
    b = checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "mlp-seed1")
    b.parent = a
    a.seed_group = b.seed_group = "run"  # a training run of two steps
    a.step, b.step = 0, 1
    a.save()
    b.save()
    check_fits(d)  # which of the two models read the digits (both do)
    quick = {"n_permutations": 2, "n_bootstrap": 0}
    for run, _ in [
        request_comparison(owner, a, b, d, **quick),
        request_model_matrix(owner, [a, b], d, "block1", **quick),
        request_alignment(owner, a, b, d, "block1", "block1"),
        request_compatibility(owner, [a, b], d, "block2"),
        request_projection(owner, a, d, "block1"),
        request_aligned_projections(owner, [(a, "block1"), (b, "block1")], d, method="pca"),
        request_probe(owner, a, d, ["block1"], families={"image/noise": [0.0, 0.1]}),
        # its cells, statistics and kNN graphs kept apart from the run (and its Report)
        request_dynamics(owner, workspace, "run", d, ["block1"], measure="knn/jaccard"),
    ]:
        assert run_with_dependencies(run).state == Run.State.SUCCEEDED, run.error
    select_indices(owner, d, [0, 5, 9], "picked", ["a"])
    request_extraction(owner, b, d, ["head"], "flatten")  # left queued
    return workspace


def blob_bytes(workspace: Workspace) -> dict[str, bytes]:
    found = {}
    for model, lookup in PARTS:
        for field in [f for f in model._meta.concrete_fields if f.related_model is Blob]:
            ids = model.objects.filter(**{lookup: workspace.pk}).values_list(
                field.attname, flat=True
            )
            for blob in Blob.objects.filter(pk__in=[i for i in ids if i]):
                with blob.open() as f:
                    found[blob.sha256] = f.read()
    return found


def restore(path: Path, *args) -> str:
    out = io.StringIO()
    call_command("restore_workspace", str(path), *args, stdout=out)
    return out.getvalue()


def test_a_workspace_restored_from_its_backup_equals_the_original(
    lab, owner, tmp_path, django_capture_on_commit_callbacks
):
    original = snapshot(lab)
    assert all(original[m._meta.label] for m, _ in PARTS if m is not Workspace), original.keys()
    contents = blob_bytes(lab)
    archive = tmp_path / "lab.tar"
    call_command("backup_workspace", "lab", str(archive), stdout=io.StringIO())

    with pytest.raises(CommandError, match="'lab' exists"):
        restore(archive)
    with django_capture_on_commit_callbacks() as enqueued:
        out = restore(archive, "--slug", "lab-copy")
    assert "restored lab-copy" in out
    copy = Workspace.objects.get(slug="lab-copy")
    assert copy.name == lab.name
    assert snapshot(copy) == original
    assert len(enqueued) == 1  # the run left queued is queued again
    assert set(Run.objects.filter(workspace=copy).values_list("pk", flat=True)).isdisjoint(
        Run.objects.filter(workspace=lab).values_list("pk", flat=True)
    )

    # The results read back the same, and asking again finds the restored runs.
    old_matrix = Run.objects.get(workspace=lab, kind=Run.Kind.MODEL_MATRIX)
    new_matrix = Run.objects.get(workspace=copy, kind=Run.Kind.MODEL_MATRIX)
    assert model_matrix(new_matrix)["value"] == model_matrix(old_matrix)["value"]
    assert set(new_matrix.params["checkpoints"]) == set(
        copy.checkpoints.values_list("pk", flat=True)
    )
    a, b = copy.checkpoints.get(name="mlp-seed0"), copy.checkpoints.get(name="mlp-seed1")
    dataset = copy.datasets.get()
    again, created = request_comparison(owner, a, b, dataset, n_permutations=2, n_bootstrap=0)
    assert not created and again.workspace == copy and again.state == Run.State.SUCCEEDED
    old_comparison = Run.objects.get(workspace=lab, kind=Run.Kind.COMPARE)
    assert comparison_matrix(again)["value"] == comparison_matrix(old_comparison)["value"]

    # On a server that has lost everything (the blobs too), and without one of the members.
    Workspace.objects.all().delete()
    gc("--min-age-hours", "0")
    assert not Blob.objects.exists()
    get_user_model().objects.filter(username="member").delete()
    out = restore(archive)
    assert "no account here for member" in out
    restored = Workspace.objects.get(slug="lab")
    assert list(restored.memberships.values_list("user__username", "role")) == [("owner", "owner")]
    again = snapshot(restored)
    assert {k: v for k, v in again.items() if k != "catalog.Membership"} == {
        k: v for k, v in original.items() if k != "catalog.Membership"
    }
    assert blob_bytes(restored) == contents


def corrupted_copy(archive: Path, out: Path) -> None:
    """The archive with one byte of its largest blob changed."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        blobs = [m for m in src.getmembers() if m.name.startswith("blobs/")]
        victim = max(blobs, key=lambda m: m.size)
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member is victim:
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.addfile(member, io.BytesIO(data))


def test_a_corrupted_backup_restores_nothing(lab, tmp_path, isolated_media):
    archive, corrupted = tmp_path / "lab.tar", tmp_path / "bad.tar"
    call_command("backup_workspace", "lab", str(archive), stdout=io.StringIO())
    corrupted_copy(archive, corrupted)
    rows = {model: model.objects.count() for model, _ in PARTS} | {Blob: Blob.objects.count()}
    files = stored_files(isolated_media)

    with pytest.raises(CommandError, match=r"blobs/[0-9a-f]{64} is corrupted"):
        restore(corrupted, "--slug", "lab-copy")
    assert {model: model.objects.count() for model in rows} == rows
    assert stored_files(isolated_media) == files

    (tmp_path / "not.tar").write_bytes(b"not a tar file")
    with pytest.raises(CommandError, match="cannot be read as a tar file"):
        restore(tmp_path / "not.tar", "--slug", "x")


def test_backup_of_an_unknown_workspace_is_refused(tmp_path):
    with pytest.raises(CommandError, match="no workspace 'nope'"):
        call_command("backup_workspace", "nope", str(tmp_path / "x.tar"))
    assert not (tmp_path / "x.tar").exists()


@pytest.mark.django_db
def test_create_workspace_makes_the_first_owner(owner):
    out = io.StringIO()
    call_command("create_workspace", "vision-team", "owner", name="Vision", stdout=out)
    workspace = Workspace.objects.get(slug="vision-team")
    assert workspace.name == "Vision" and "created" in out.getvalue()
    assert workspace.memberships.get().user == owner
    assert workspace.memberships.get().role == Membership.Role.OWNER
    for args, message in [
        (("vision-team", "owner"), "exists already"),
        (("Vision Team", "owner"), "not a valid slug"),
        (("other", "nobody"), "no user 'nobody'"),
    ]:
        with pytest.raises(CommandError, match=message):
            call_command("create_workspace", *args)
    assert Workspace.objects.filter(slug="other").count() == 0
