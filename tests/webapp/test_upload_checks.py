"""Uploads are checked by workers, never by the web process (``check_uploads`` plays the
worker in-process): a request only stores the bytes and queues the upload; the same bytes
sent again while they are checked are that upload; a withdrawn upload leaves nothing for the
worker; workers serve the person with the fewest files being checked first; the workspace
page lists what is being checked and what was refused, with the reason, until dismissed.
(Real worker processes: tests/integration/test_upload_checks.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django.utils.html import escape

from tests.conftest import (
    api_client_for,
    check_uploads,
    checked,
    digits_npz_bytes,
    torchscript_mlp_bytes,
)
from tests.webapp.test_chunked_uploads import declare
from webapp.catalog import uploads
from webapp.catalog.models import Blob, Checkpoint, Dataset, Upload
from workers.tasks import check_upload

pytestmark = pytest.mark.django_db

POLLING = 'hx-trigger="every 2s"'


@pytest.fixture(autouse=True)
def _media(isolated_media):
    """Blobs and chunks of each test in a folder of their own."""


@pytest.fixture
def woken(monkeypatch) -> list[str]:
    """The queues whose workers a request woke (once its transaction committed)."""
    queues: list[str] = []
    monkeypatch.setattr("webapp.dispatch.wake", queues.append)
    return queues


@pytest.fixture
def browser(client, owner, workspace):
    client.force_login(owner)
    return client


def stored_chunks(upload_id) -> list[str]:
    try:
        return sorted(default_storage.listdir(f"uploads/{upload_id}")[1])
    except FileNotFoundError:
        return []


def one_shot(api, kind: str, filename: str, content: bytes, **fields):
    """``POST /api/v1/datasets/`` or ``/checkpoints/`` with the whole file."""
    data = {"workspace": "lab", "file": SimpleUploadedFile(filename, content), **fields}
    return api.post(f"/api/v1/{kind}/", data, format="multipart")


def chunked(api, content: bytes, filename: str) -> str:
    """Declare a dataset, send its bytes and complete it: the upload's id (now checking)."""
    declared = declare(api, content, "dataset", filename)
    assert declared.status_code == 201, declared.content
    uid = declared.json()["id"]
    sent = api.put(
        f"/api/v1/uploads/{uid}/",
        content,
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes 0-{len(content) - 1}/{len(content)}",
    )
    assert sent.status_code == 200, sent.content
    completed = api.post(f"/api/v1/uploads/{uid}/complete/")
    assert completed.status_code == 202 and completed.json()["state"] == "checking"
    return uid


def uploads_partial(client):
    """The workspace's uploads as htmx polls them."""
    return client.get("/w/lab/uploads/", HTTP_HX_REQUEST="true")


# --------------------------------------------------------------------------- never parsed


FILES = {
    "checkpoint": ("checkpoints", "mlp.pt", lambda: torchscript_mlp_bytes(0), "gpu", Checkpoint),
    "dataset": ("datasets", "digits.npz", lambda: digits_npz_bytes(40), "cpu", Dataset),
}


@pytest.mark.parametrize("kind", list(FILES))
def test_the_web_request_never_parses_the_file(
    api, workspace, monkeypatch, woken, django_capture_on_commit_callbacks, kind
):
    """The request stores the bytes and wakes a worker of the file's queue (a model's where
    models run); nothing that parses a file is called until the worker's check."""
    path, filename, make, queue, model = FILES[kind]
    content = make()

    def parse(*args, **kwargs):
        raise AssertionError("the web request parsed the uploaded file")

    for parser in (
        "webapp.catalog.ingest.run_in_host",
        "webapp.catalog.ingest.read_dataset",
        "webapp.catalog.uploads.ingest_checkpoint",
        "webapp.catalog.uploads.ingest_dataset",
    ):
        monkeypatch.setattr(parser, parse)
    with django_capture_on_commit_callbacks(execute=True):
        response = one_shot(api, path, filename, content, name="mine")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "checking" and body["kind"] == kind and body["result"] is None
    assert body["offset"] == body["size"] == len(content) and body["position"] == 1
    assert woken == [queue]
    assert not model.objects.exists() and not Blob.objects.exists()
    assert stored_chunks(body["id"])  # only its bytes are kept, until the check
    assert api.get(f"/api/v1/uploads/{body['id']}/").json()["state"] == "checking"

    monkeypatch.undo()  # the worker parses
    assert [(str(u.pk), u.state) for u in check_uploads()] == [(body["id"], "done")]
    made = model.objects.get()
    assert made.name == "mine"
    state = api.get(f"/api/v1/uploads/{body['id']}/").json()
    assert state["state"] == "done" and state["position"] is None
    assert state["result"]["id"] == made.pk and state["result"]["name"] == "mine"
    assert stored_chunks(body["id"]) == []
    assert check_uploads() == []  # checked once


# --------------------------------------------------------------------------- the same bytes


def test_the_same_bytes_while_they_are_checked_are_that_upload(api, browser, workspace):
    content = torchscript_mlp_bytes(0)
    first = one_shot(api, "checkpoints", "mlp.pt", content, name="scripted")
    assert first.status_code == 202, first.content
    uid = first.json()["id"]
    # Again in one request, declared for chunks, from the browser: nothing new to check.
    again = one_shot(api, "checkpoints", "copy.pt", content, name="copy")
    assert again.status_code == 200, again.content
    assert again.json()["id"] == uid and again.json()["state"] == "checking"
    declared = declare(api, content, "checkpoint", "mlp.pt")
    assert declared.status_code == 200 and declared.json()["id"] == uid
    page = browser.post(
        "/w/lab/checkpoints/upload/", {"file": SimpleUploadedFile("mlp.pt", content)}
    )
    assert page.status_code == 302 and page["Location"] == "/w/lab/#uploads"
    assert Upload.objects.count() == 1 and not Checkpoint.objects.exists()

    # Taken by a worker: still that upload, no longer waiting in line.
    claimed = uploads.take_next("gpu", "worker-1")
    assert str(claimed.pk) == uid
    during = one_shot(api, "checkpoints", "mlp.pt", content)
    assert during.status_code == 200 and during.json()["id"] == uid
    assert during.json()["position"] is None

    check_upload(claimed)
    checkpoint = Checkpoint.objects.get()
    assert checkpoint.name == "scripted"  # the first upload's fields
    after = one_shot(api, "checkpoints", "mlp.pt", content)
    assert after.status_code == 200 and after.json()["id"] is None
    assert after.json()["result"]["id"] == checkpoint.pk
    assert Upload.objects.count() == 1 and Checkpoint.objects.count() == 1


def test_refused_bytes_can_be_uploaded_again(api, workspace):
    """A refused upload does not stand for its bytes: sending them again is a new upload
    (a refusal may have been the worker's, not the file's)."""
    content = b"not a dataset at all" * 10
    first = checked(api, one_shot(api, "datasets", "junk.npz", content))
    assert first["state"] == "failed"
    again = one_shot(api, "datasets", "junk.npz", content)
    assert again.status_code == 202 and again.json()["id"] != first["id"]
    assert Upload.objects.count() == 2


# --------------------------------------------------------------------------- withdrawing


def test_withdrawing_a_checking_upload_leaves_nothing_to_check(api, workspace):
    content = torchscript_mlp_bytes(0)
    response = one_shot(api, "checkpoints", "mlp.pt", content)
    assert response.status_code == 202
    uid = response.json()["id"]
    assert stored_chunks(uid)
    assert api.delete(f"/api/v1/uploads/{uid}/").status_code == 204
    assert not Upload.objects.exists() and stored_chunks(uid) == []
    assert not default_storage.exists(f"uploads/{uid}")
    assert api.get(f"/api/v1/uploads/{uid}/").status_code == 404
    assert check_uploads() == []
    assert not Checkpoint.objects.exists() and not Blob.objects.exists()
    # Withdrawn, the bytes can be sent again: a new upload.
    assert one_shot(api, "checkpoints", "mlp.pt", content).status_code == 202


@pytest.mark.parametrize("kind", list(FILES))
def test_withdrawn_while_a_worker_checks_it_keeps_nothing(api, workspace, monkeypatch, kind):
    """Withdrawn in the middle of the check (the file assembled, being parsed): whatever the
    check makes is not kept, and the upload is not brought back."""
    path, filename, make, queue, model = FILES[kind]
    response = one_shot(api, path, filename, make())
    uid = response.json()["id"]
    parser = f"ingest_{kind}"
    real = getattr(uploads, parser)

    def withdrawn_meanwhile(*args, **kwargs):
        assert api.delete(f"/api/v1/uploads/{uid}/").status_code == 204
        return real(*args, **kwargs)

    monkeypatch.setattr(uploads, parser, withdrawn_meanwhile)
    claimed = uploads.take_next(queue, "worker-1")
    assert str(claimed.pk) == uid
    check_upload(claimed)
    assert not Upload.objects.exists() and stored_chunks(uid) == []
    assert not model.objects.exists()


# --------------------------------------------------------------------------- fairness


def test_one_persons_files_do_not_hold_up_anothers(api, member, workspace):
    """A has three files to check, then B one: workers take A's first, then B's, then A's
    other two (the person with the fewest files being checked first, then the oldest)."""
    b_api = api_client_for(member)
    a_ids = [chunked(api, digits_npz_bytes(20 + i), f"a{i}.npz") for i in range(3)]
    b_id = chunked(b_api, digits_npz_bytes(40), "b.npz")
    expected = [a_ids[0], b_id, a_ids[1], a_ids[2]]
    assert [str(u.pk) for u in uploads.waiting("cpu")] == expected
    assert uploads.waiting("gpu") == []  # datasets are the cpu workers' to check
    positions = [
        (b_api if uid == b_id else api).get(f"/api/v1/uploads/{uid}/").json()["position"]
        for uid in expected
    ]
    assert positions == [1, 2, 3, 4]

    first = uploads.take_next("cpu", "worker-1")
    assert str(first.pk) == a_ids[0]
    assert first.worker == "worker-1" and first.started_at is not None and first.attempts == 1
    assert api.get(f"/api/v1/uploads/{a_ids[0]}/").json()["position"] is None
    # A has a file being checked, B none: B's comes before A's second, though younger.
    assert [str(u.pk) for u in uploads.waiting("cpu")] == [b_id, a_ids[1], a_ids[2]]
    second = uploads.take_next("cpu", "worker-2")
    assert str(second.pk) == b_id
    rest = [uploads.take_next("cpu", "worker-3"), uploads.take_next("cpu", "worker-4")]
    assert [str(u.pk) for u in rest] == a_ids[1:]
    assert uploads.take_next("cpu", "worker-5") is None  # two workers never take the same

    for upload in (first, second, *rest):
        check_upload(upload)
    assert set(Upload.objects.values_list("state", flat=True)) == {"done"}
    assert Dataset.objects.count() == 4
    assert Dataset.objects.get(filename="b.npz").created_by == member


# --------------------------------------------------------------------------- the page


def test_the_workspace_page_lists_uploads_being_checked_and_refused(browser, workspace):
    good = browser.post(
        "/w/lab/datasets/upload/",
        {"file": SimpleUploadedFile("digits.npz", digits_npz_bytes(30)), "name": "Digits"},
    )
    assert good.status_code == 302 and good["Location"] == "/w/lab/#uploads"
    bad = browser.post(
        "/w/lab/datasets/upload/",
        {"file": SimpleUploadedFile("junk.npz", b"not a dataset at all" * 10)},
    )
    assert bad.status_code == 302
    page = browser.get("/w/lab/").content.decode()
    assert "junk.npz is uploaded. A worker checks it now" in page
    assert '<div id="uploads"' in page and 'hx-get="/w/lab/uploads/"' in page

    waiting = uploads_partial(browser)
    assert waiting.status_code == 200  # polled while files are being checked
    html = waiting.content.decode()
    assert "<html" not in html and POLLING in html
    assert html.count("checking</span>") == 2 and "Withdraw" in html
    assert "next for a free worker" in html and "waiting behind 1 other file" in html

    check_uploads()
    junk = Upload.objects.get(filename="junk.npz")
    assert junk.state == "failed" and junk.error
    dataset = Dataset.objects.get()
    done = uploads_partial(browser)
    assert done.status_code == 286  # nothing left to wait for: polling stops
    html = done.content.decode()
    assert POLLING not in html and "checking</span>" not in html
    assert "refused" in html and escape(junk.error) in html and "Dismiss" in html
    assert f'action="/w/lab/uploads/{junk.pk}/dismiss/"' in html
    assert "ready" in html and f'href="/datasets/{dataset.pk}/">Digits</a>' in html
    assert "Withdraw" not in html

    dismissed = browser.post(f"/w/lab/uploads/{junk.pk}/dismiss/")
    assert dismissed.status_code == 302 and dismissed["Location"] == "/w/lab/#uploads"
    assert not Upload.objects.filter(pk=junk.pk).exists()
    html = browser.get("/w/lab/").content.decode()
    assert "junk.npz" not in html and "Digits</a>" in html
    assert Dataset.objects.count() == 1  # dismissing touches nothing else

    # A file that became a dataset is listed for an hour; then the section is gone.
    Upload.objects.update(updated_at=timezone.now() - timedelta(hours=2))
    assert "<h2>Uploads</h2>" not in browser.get("/w/lab/").content.decode()


def test_withdrawing_from_the_page(browser, workspace):
    response = browser.post(
        "/w/lab/checkpoints/upload/",
        {"file": SimpleUploadedFile("mlp.pt", torchscript_mlp_bytes(0))},
    )
    assert response.status_code == 302
    upload = Upload.objects.get()
    assert upload.state == "checking" and stored_chunks(upload.pk)
    withdrawn = browser.post(f"/w/lab/uploads/{upload.pk}/dismiss/")
    assert withdrawn.status_code == 302
    assert not Upload.objects.exists() and stored_chunks(upload.pk) == []
    assert check_uploads() == [] and not Checkpoint.objects.exists()
    assert "<h2>Uploads</h2>" not in browser.get("/w/lab/").content.decode()
