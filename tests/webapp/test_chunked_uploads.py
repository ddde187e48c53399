"""Chunked, resumable uploads through the API: bytes in order with Content-Range, the offset
to resume from, identical files answered without sending bytes. Each chunk is an object of its
own in the default storage until a worker checks the complete upload (its sha256 and the file;
``check_uploads`` plays the worker) and deletes them, whatever the outcome."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.files.storage import default_storage

from tests.conftest import (
    api_client_for,
    checked,
    digits_npz_bytes,
    torchscript_mlp_bytes,
)
from webapp.catalog import uploads
from webapp.catalog.models import Blob, Checkpoint, Dataset, Upload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(isolated_media):
    """Blobs and chunks of each test in a folder of their own."""


def stored_chunks(upload_id) -> list[str]:
    """Names of the chunk objects an upload has in the default storage."""
    try:
        return sorted(default_storage.listdir(f"uploads/{upload_id}")[1])
    except FileNotFoundError:
        return []


def declare(api, content: bytes, kind="dataset", filename="digits.npz", **fields):
    body = {
        "workspace": "lab",
        "kind": kind,
        "filename": filename,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        **fields,
    }
    return api.post("/api/v1/uploads/", body, format="json")


def put(api, upload_id: str, content: bytes, first: int, last: int):
    return api.put(
        f"/api/v1/uploads/{upload_id}/",
        content[first : last + 1],
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes {first}-{last}/{len(content)}",
    )


def send(api, upload_id: str, content: bytes, chunk: int) -> None:
    for first in range(0, len(content), chunk):
        last = min(first + chunk, len(content)) - 1
        assert put(api, upload_id, content, first, last).json()["offset"] == last + 1


def test_a_dataset_in_chunks_with_a_resume(api, workspace):
    content = digits_npz_bytes(200)
    declared = declare(api, content, name="digits in pieces")
    assert declared.status_code == 201, declared.content
    upload = declared.json()
    assert upload["offset"] == 0 and upload["state"] == "open" and upload["chunk_size"] > 0
    uid = upload["id"]
    assert put(api, uid, content, 0, 9_999).json()["offset"] == 10_000
    assert stored_chunks(uid) == [f"{0:020d}"]
    # The connection dropped after the client sent bytes the server never got: it asks where
    # to resume, and a chunk from the wrong place is refused with that offset.
    assert api.get(f"/api/v1/uploads/{uid}/").json()["offset"] == 10_000
    stale = put(api, uid, content, 20_000, 29_999)
    assert stale.status_code == 409 and stale.json()["offset"] == 10_000
    early = api.post(f"/api/v1/uploads/{uid}/complete/")
    assert early.status_code == 400 and "10000 of" in early.json()["detail"]
    send_from = 10_000
    for first in range(send_from, len(content), 30_000):
        put(api, uid, content, first, min(first + 30_000, len(content)) - 1)
    offsets = [0, *range(send_from, len(content), 30_000)]
    assert stored_chunks(uid) == [f"{first:020d}" for first in offsets]
    completed = api.post(f"/api/v1/uploads/{uid}/complete/")
    assert completed.status_code == 202, completed.content
    waiting = completed.json()
    assert waiting["state"] == "checking" and waiting["position"] == 1
    assert waiting["result"] is None and not Dataset.objects.exists()
    # Completing again while it waits is harmless: still checking.
    again = api.post(f"/api/v1/uploads/{uid}/complete/")
    assert again.status_code == 202 and again.json()["state"] == "checking"
    done = checked(api, completed)
    assert done["state"] == "done" and done["position"] is None and done["error"] == ""
    dataset = Dataset.objects.get(pk=done["result"]["id"])
    assert dataset.name == "digits in pieces" and dataset.n_samples == 200
    assert dataset.source.sha256 == hashlib.sha256(content).hexdigest()
    assert stored_chunks(uid) == [] and not default_storage.exists(f"uploads/{uid}")
    # Completing again answers the same dataset (200); declaring the same bytes sends nothing.
    finished = api.post(f"/api/v1/uploads/{uid}/complete/")
    assert finished.status_code == 200 and finished.json()["result"]["id"] == dataset.pk
    again = declare(api, content)
    assert again.status_code == 200 and again.json()["result"]["id"] == dataset.pk
    assert again.json()["id"] is None and Upload.objects.count() == 1


def test_a_checkpoint_in_chunks_keeps_its_step(api, workspace):
    content = torchscript_mlp_bytes(0)
    uid = declare(api, content, "checkpoint", "mlp.pt", name="mlp", step=400).json()["id"]
    send(api, uid, content, 4096)
    done = checked(api, api.post(f"/api/v1/uploads/{uid}/complete/"))
    assert done["state"] == "done", done
    checkpoint = Checkpoint.objects.get(pk=done["result"]["id"])
    assert checkpoint.step == 400 and done["result"]["step"] == 400
    assert checkpoint.blob.sha256 == hashlib.sha256(content).hexdigest()


def test_corrupted_bytes_are_refused_and_nothing_is_kept(api, workspace):
    content = digits_npz_bytes(50)
    uid = declare(api, content).json()["id"]
    corrupted = bytearray(content)
    corrupted[100] ^= 0xFF
    send(api, uid, bytes(corrupted), 8192)
    assert stored_chunks(uid)
    refused = checked(api, api.post(f"/api/v1/uploads/{uid}/complete/"))
    assert refused["state"] == "failed" and "corrupted" in refused["error"]
    assert refused["result"] is None and refused["position"] is None
    assert Upload.objects.get(pk=uid).state == "failed" and stored_chunks(uid) == []
    assert not Dataset.objects.exists() and not Blob.objects.exists()
    again = api.post(f"/api/v1/uploads/{uid}/complete/")
    assert again.status_code == 400 and "this upload was refused" in again.json()["detail"]
    assert "corrupted" in again.json()["detail"]


def test_an_invalid_file_is_refused_with_the_reason(api, workspace):
    content = b"not a dataset at all" * 10
    uid = declare(api, content, filename="junk.npz").json()["id"]
    send(api, uid, content, 64)
    refused = checked(api, api.post(f"/api/v1/uploads/{uid}/complete/"))
    assert refused["state"] == "failed" and refused["error"]
    assert "internal error" not in refused["error"]
    assert not Dataset.objects.exists() and not Blob.objects.exists()
    assert stored_chunks(uid) == []


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sha256": "abc"}, "sha256"),
        ({"size": 0}, "size"),
        ({"kind": "model"}, "kind"),
        ({"filename": "weights.safetensors", "kind": "checkpoint"}, "architecture"),
        ({"filename": "model.h5", "kind": "checkpoint"}, "unsupported checkpoint"),
        ({"filename": "acts.npz", "kind": "checkpoint"}, "choose the dataset they belong to"),
        ({"filename": "acts.npz", "kind": "checkpoint", "dataset": 999999}, "no dataset 999999"),
        ({"filename": "bert.zip", "kind": "checkpoint", "dataset": 999999}, "no dataset 999999"),
    ],
)
def test_bad_declarations_are_refused(api, workspace, change, message):
    body = {"workspace": "lab", "kind": "dataset", "filename": "d.npz", "size": 10}
    body["sha256"] = "0" * 64
    response = api.post("/api/v1/uploads/", {**body, **change}, format="json")
    assert response.status_code == 400 and message in response.json()["detail"]
    assert not Upload.objects.exists()


def test_bad_chunks_and_strangers(api, workspace, outsider, settings):
    content = digits_npz_bytes(20)
    uid = declare(api, content).json()["id"]
    cases = [
        ({}, "Content-Range"),
        ({"HTTP_CONTENT_RANGE": f"bytes 0-9/{len(content) + 1}"}, "declared"),
        ({"HTTP_CONTENT_RANGE": f"bytes 0-99/{len(content)}"}, "covers 100"),
    ]
    for headers, message in cases:
        response = api.put(
            f"/api/v1/uploads/{uid}/",
            content[:10],
            content_type="application/octet-stream",
            **headers,
        )
        assert response.status_code == 400 and message in response.json()["detail"], headers
    settings.REPLENS_MAX_UPLOAD_BYTES = 100
    too_big = declare(api, content)
    assert too_big.status_code == 400 and "limit" in too_big.json()["detail"]
    stranger = api_client_for(outsider)
    assert stranger.get(f"/api/v1/uploads/{uid}/").status_code == 404
    assert put(stranger, uid, content, 0, 9).status_code == 404
    assert stranger.post(f"/api/v1/uploads/{uid}/complete/").status_code == 404
    assert declare(stranger, content).status_code == 404  # not their workspace
    assert api.delete(f"/api/v1/uploads/{uid}/").status_code == 204
    assert not Upload.objects.exists()


def test_a_chunk_stored_by_a_failed_request_is_replaced_when_sent_again(api, workspace):
    """A request that stored its chunk and then failed before recording it leaves a stale
    object at the offset to resume from: the chunk sent again there replaces it."""
    content = digits_npz_bytes(100)
    uid = declare(api, content).json()["id"]
    put(api, uid, content, 0, 4_999)
    upload = Upload.objects.get(pk=uid)
    uploads.store_chunk(upload, 5_000, io.BytesIO(b"garbage from a request that failed" * 1000))
    assert api.get(f"/api/v1/uploads/{uid}/").json()["offset"] == 5_000
    send_rest = range(5_000, len(content), 7_000)
    for first in send_rest:
        put(api, uid, content, first, min(first + 7_000, len(content)) - 1)
    done = checked(api, api.post(f"/api/v1/uploads/{uid}/complete/"))
    assert done["state"] == "done", done
    dataset = Dataset.objects.get(pk=done["result"]["id"])
    with dataset.source.open() as f:
        assert f.read() == content
    assert stored_chunks(uid) == []


def test_abort_deletes_the_chunks(api, workspace):
    content = digits_npz_bytes(50)
    uid = declare(api, content).json()["id"]
    for first in range(0, 6_000, 2_000):
        put(api, uid, content, first, first + 1_999)
    assert len(stored_chunks(uid)) == 3
    assert api.delete(f"/api/v1/uploads/{uid}/").status_code == 204
    assert stored_chunks(uid) == [] and not Upload.objects.exists()


def test_a_chunk_missing_from_storage_fails_the_upload(api, workspace):
    content = digits_npz_bytes(50)
    uid = declare(api, content).json()["id"]
    send(api, uid, content, 4_000)
    default_storage.delete(Upload.objects.get(pk=uid).chunk_key(8_000))
    refused = checked(api, api.post(f"/api/v1/uploads/{uid}/complete/"))
    assert refused["state"] == "failed" and "from byte 8000" in refused["error"]
    assert Upload.objects.get(pk=uid).state == "failed" and stored_chunks(uid) == []
    assert not Dataset.objects.exists() and not Blob.objects.exists()
