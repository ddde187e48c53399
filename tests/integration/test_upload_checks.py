"""Uploads are checked by real worker processes, never by the web process: every format, valid
and refused; a refused file keeps nothing but its reason; checks go ahead of queued batch
work; a check whose worker fell silent goes back to the queue, then is refused."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import timedelta

import numpy as np
import pytest
import torch
from django.core.files.storage import default_storage
from django.utils import timezone

from tests.conftest import digits_npz_bytes, node_name, torchscript_mlp_bytes, worker_process
from tests.formats import onnx_bytes, small_cnn, tiny_bert_dir, zip_dir
from tests.integration.test_execution_core import comparison, stored_layers
from tests.integration.test_reliability import state_of, wait_for
from tests.webapp.builders import mlp_safetensors
from webapp.catalog import uploads
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.catalog.models import Blob, Checkpoint, Dataset, Upload
from webapp.runs.models import Run

pytestmark = pytest.mark.integration


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def many_files_zip(count: int) -> bytes:
    """A small zip of ``count`` empty files (a model directory nobody should unpack)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        for i in range(count):
            z.writestr(f"m/f{i}", b"")
    return buffer.getvalue()


def send(owner, workspace, kind: str, filename: str, content: bytes, **fields) -> Upload:
    """What the web process does with a one-shot upload: store and queue, never parse."""
    upload, found = uploads.receive(owner, workspace, kind, io.BytesIO(content), filename, **fields)
    assert found is None and upload.state == Upload.State.CHECKING
    return upload


def chunks_left(upload: Upload) -> list[str]:
    try:
        return default_storage.listdir(upload.chunk_prefix)[1]
    except FileNotFoundError:
        return []


def test_every_format_is_checked_by_a_worker_and_a_refused_file_keeps_nothing(
    tmp_path, transactional_db, owner, workspace
):
    digits, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(64)), "base.npz", "base"
    )
    rows = np.random.default_rng(0).standard_normal((64, 5)).astype(np.float32)
    ids = digits.column("ids")
    cases = [
        ("dataset", "digits.npz", digits_npz_bytes(40), {}, None),
        ("dataset", "notes.npz", b"these are not arrays\n" * 500, {}, "not an .npz archive"),
        ("checkpoint", "mlp.pt", torchscript_mlp_bytes(3), {}, None),
        ("checkpoint", "broken.pt", b"\x80\x02not torchscript" * 100, {}, "TorchScript"),
        (
            "checkpoint",
            "mlp.safetensors",
            mlp_safetensors(0, tmp_path),
            {"architecture": "mlp"},
            None,
        ),
        (
            "checkpoint",
            "cnn.safetensors",
            mlp_safetensors(1, tmp_path),
            {"architecture": "small-cnn"},
            "small-cnn",
        ),
        ("checkpoint", "bert.zip", zip_dir(tiny_bert_dir(tmp_path / "bert")), {}, None),
        ("checkpoint", "many.zip", many_files_zip(5000), {}, "1000"),
        ("checkpoint", "cnn.onnx", onnx_bytes(small_cnn(), torch.zeros(1, 1, 8, 8)), {}, None),
        ("checkpoint", "broken.onnx", b"not a protobuf at all" * 50, {}, "ONNX"),
        (
            "checkpoint",
            "acts.npz",
            npz(ids=ids, hidden=rows),
            {"dataset": digits.pk},
            None,
        ),
        (
            "checkpoint",
            "short.npz",
            npz(ids=ids[:10], hidden=rows[:10]),
            {"dataset": digits.pk},
            "samples",
        ),
    ]
    limit = {"REPLENS_ARCHIVE_MAX_FILES": "1000"}  # many.zip has 5,000 files
    with worker_process(tmp_path / "worker.log", **limit) as worker:
        sent = [
            (send(owner, workspace, kind, name, content, **fields), content, refusal)
            for kind, name, content, fields, refusal in cases
        ]
        wait_for(
            lambda: all(
                Upload.objects.get(pk=u.pk).state in (Upload.State.DONE, Upload.State.FAILED)
                for u, _, _ in sent
            ),
            240,
            "every upload to be checked",
        )
        assert worker.poll() is None
    for upload, content, refusal in sent:
        upload.refresh_from_db()
        assert upload.worker == node_name("pytest"), upload.filename  # not the web process
        assert chunks_left(upload) == [], upload.filename
        if refusal is None:
            assert upload.state == Upload.State.DONE, (upload.filename, upload.error)
            made = uploads.result_of(upload)
            assert made is not None and made.filename == upload.filename
        else:
            assert upload.state == Upload.State.FAILED, upload.filename
            assert refusal in upload.error, (upload.filename, upload.error)
            assert "/tmp" not in upload.error and "Traceback" not in upload.error
            sha = hashlib.sha256(content).hexdigest()
            assert not Blob.objects.filter(sha256=sha).exists(), upload.filename
    valid = [u.filename for u, _, refusal in sent if refusal is None]
    made = [*Dataset.objects.exclude(pk=digits.pk), *Checkpoint.objects.all()]
    assert sorted(m.filename for m in made) == sorted(valid)


def test_a_check_goes_ahead_of_queued_batch_work(tmp_path, transactional_db, owner, workspace):
    digits, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(64)), "base.npz", "base"
    )
    model, _ = ingest_checkpoint(
        workspace, owner, io.BytesIO(torchscript_mlp_bytes(0)), "m.pt", "m"
    )
    layers = stored_layers(digits, model, 12, n=64, d=32)
    with worker_process(tmp_path / "worker.log", queues=("cpu",)):
        batch = [comparison(owner, digits, model, layer, bootstrap=200) for layer in layers]
        wait_for(lambda: state_of(batch[0]) != Run.State.QUEUED, 60, "the batch to start")
        upload = send(owner, workspace, "dataset", "digits.npz", digits_npz_bytes(50))
        wait_for(
            lambda: Upload.objects.get(pk=upload.pk).state == Upload.State.DONE,
            120,
            "the upload's check",
        )
        upload.refresh_from_db()
        later = Run.objects.filter(pk__in=[r.pk for r in batch], started_at__gt=upload.created_at)
        # At most the run the worker had in hand when the upload came went first.
        assert all(r.started_at > upload.started_at for r in later.order_by("started_at")[1:])
        assert Run.objects.filter(pk__in=[r.pk for r in batch], state=Run.State.QUEUED).exists()
        Run.objects.filter(state=Run.State.QUEUED).update(state=Run.State.CANCELLED)


def test_a_check_whose_worker_fell_silent_is_given_back_then_refused(db, owner, workspace):
    upload = send(owner, workspace, "dataset", "digits.npz", digits_npz_bytes(20))
    assert uploads.position(upload) == 1
    for attempt in (1, 2):
        claimed = uploads.take_next("cpu", "gone@host")
        assert claimed is not None and claimed.pk == upload.pk and claimed.attempts == attempt
        assert uploads.position(claimed) is None
        Upload.objects.filter(pk=upload.pk).update(
            heartbeat_at=timezone.now() - timedelta(seconds=300)
        )
        found = uploads.reap(stale_after_s=120, max_attempts=2)
        if attempt == 1:
            assert found == {"queued": [upload.pk], "failed": []}
            assert uploads.position(Upload.objects.get(pk=upload.pk)) == 1
    assert found == {"queued": [], "failed": [upload.pk]}
    upload.refresh_from_db()
    assert upload.state == Upload.State.FAILED and "stopped responding (2 attempts)" in upload.error
    assert chunks_left(upload) == []
    assert uploads.take_next("cpu") is None
