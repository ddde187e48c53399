"""A model that cannot read a dataset is refused when a run is asked for, with the reason:
the first sample of each dataset is run through each model in a model host when the later
upload of the pair has been checked (webapp.catalog.fits)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from analysis.errors import InputError
from tests.conftest import checked, checkpoint_from, torchscript_mlp_bytes
from webapp.catalog.fits import check_fits, refusal
from webapp.catalog.ingest import ingest_dataset
from webapp.catalog.models import Dataset, Fit
from webapp.runs.models import Run
from webapp.runs.submit import request_comparison, request_extraction

pytestmark = pytest.mark.django_db


def vectors_npz(d: int) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buffer, x=rng.normal(size=(40, d)).astype(np.float32))
    return buffer.getvalue()


def test_a_pair_that_cannot_work_is_refused_with_the_models_reason(owner, workspace, digits):
    vectors, _ = ingest_dataset(workspace, owner, io.BytesIO(vectors_npz(16)), "v.npz", "vectors")
    mlp = checkpoint_from(workspace, owner, torchscript_mlp_bytes(0), "mlp")  # reads 64 numbers
    assert refusal(mlp, vectors) == ""  # not checked yet: the run would find out

    check_fits(mlp)  # as the worker does once the checkpoint's upload is checked
    fits = {f.dataset.name: f.reason for f in Fit.objects.filter(checkpoint=mlp)}
    assert fits["Digits"] == ""
    assert fits["vectors"] and "Traceback" not in fits["vectors"] and "/" not in fits["vectors"]
    assert "\n" not in fits["vectors"]

    with pytest.raises(InputError, match="mlp fails on the first sample of vectors: ") as refused:
        request_extraction(owner, mlp, vectors)
    assert fits["vectors"] in str(refused.value)
    other = checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "mlp-1")
    with pytest.raises(InputError, match="fails on the first sample of vectors"):
        request_comparison(owner, other, mlp, vectors)  # the first side is unknown, not the second
    assert not Run.objects.filter(dataset=vectors).exists()  # nothing half-made
    run, _ = request_extraction(owner, mlp, digits)
    assert run.state == Run.State.QUEUED


def test_a_new_dataset_is_checked_against_every_model_of_the_workspace(owner, workspace, ckpt_a):
    wide, _ = ingest_dataset(workspace, owner, io.BytesIO(vectors_npz(64)), "w.npz", "wide")
    narrow, _ = ingest_dataset(workspace, owner, io.BytesIO(vectors_npz(8)), "n.npz", "narrow")
    check_fits(wide)
    check_fits(narrow)
    assert Fit.objects.get(checkpoint=ckpt_a, dataset=wide).reason == ""  # 64 numbers: it reads
    assert Fit.objects.get(checkpoint=ckpt_a, dataset=narrow).reason != ""


def test_the_upload_check_records_the_fits_and_a_request_is_refused(api, owner, ckpt_a):
    data = {"workspace": "lab", "file": SimpleUploadedFile("n.npz", vectors_npz(8))}
    state = checked(api, api.post("/api/v1/datasets/", data, format="multipart"))
    assert state["state"] == "done", state
    narrow = Dataset.objects.get(pk=state["result"]["id"])
    assert Fit.objects.get(checkpoint=ckpt_a, dataset=narrow).reason != ""
    body = {"checkpoint": ckpt_a.pk, "dataset": narrow.pk, "layers": ["block1"]}
    refused = api.post("/api/v1/extractions/", body, format="json")
    assert refused.status_code == 400
    assert "mlp-seed0 fails on the first sample of" in refused.json()["detail"]


def test_out_of_time_the_remaining_models_are_left_unknown(owner, workspace, ckpt_a, monkeypatch):
    from webapp.catalog import fits

    monkeypatch.setattr(fits, "BUDGET_S", -1.0)  # spent before the first model
    narrow, _ = ingest_dataset(workspace, owner, io.BytesIO(vectors_npz(8)), "n.npz", "narrow")
    check_fits(narrow)
    assert not Fit.objects.exists() and refusal(ckpt_a, narrow) == ""
