"""POST /api/v1/nested/ and GET /api/v1/nested/{id}/: made once (201, then 200), refused with
the reason, read back in the shape the schema declares."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.conftest import api_client_for, run_with_dependencies
from tests.webapp.builders import npz_bytes
from tests.webapp.test_schema import check, schema  # noqa: F401  (the schema fixture)
from webapp.catalog.ingest import ingest_dataset
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db


def test_ask_then_read_the_curves(schema, api, ckpt_a, ckpt_b, digits):  # noqa: F811
    body = {"checkpoints": [ckpt_b.pk, ckpt_a.pk], "dataset": digits.pk, "layer": "block2"}
    made = check(
        schema, api.post("/api/v1/nested/", body, format="json"), "post", "/api/v1/nested/", 201
    )
    assert made["kind"] == "nested" and made["params"]["metric"] == "cosine"
    assert made["page"].endswith(f"/nested/{made['id']}/")
    again = check(
        schema, api.post("/api/v1/nested/", body, format="json"), "post", "/api/v1/nested/"
    )
    assert again["id"] == made["id"]

    path = "/api/v1/nested/{id}/"
    waiting = check(schema, api.get(f"/api/v1/nested/{made['id']}/"), "get", path)
    assert waiting["curves"] == [] and waiting["provenance"] is None
    run_with_dependencies(Run.objects.get(pk=made["id"]))
    view = check(schema, api.get(f"/api/v1/nested/{made['id']}/"), "get", path)
    assert [c["checkpoint"]["id"] for c in view["curves"]] == [ckpt_b.pk, ckpt_a.pk]
    assert all(c["dims"] == [8, 16] and c["cka"][-1] == pytest.approx(1) for c in view["curves"])
    assert view["provenance"]["n"] == 60 and view["chance"]["cka"] is None


def test_refusals(api, owner, outsider, ckpt_a, digits, workspace):
    x = np.zeros((20, 1, 8, 8), np.float32) + np.arange(20, dtype=np.float32)[:, None, None, None]
    unlabelled, _ = ingest_dataset(
        workspace, owner, io.BytesIO(npz_bytes(x=x)), "u.npz", "Unlabelled"
    )
    response = api.post(
        "/api/v1/nested/",
        {"checkpoints": [ckpt_a.pk], "dataset": unlabelled.pk, "layer": "block1"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Unlabelled has no labels")
    for body, words in (
        ({"checkpoints": [], "dataset": digits.pk, "layer": "block1"}, "checkpoints"),
        ({"checkpoints": [ckpt_a.pk], "dataset": digits.pk, "layer": "nope"}, "'nope'"),
        (
            {"checkpoints": [ckpt_a.pk], "dataset": digits.pk, "layer": "block1", "metric": "l1"},
            "metric",
        ),
    ):
        response = api.post("/api/v1/nested/", body, format="json")
        assert response.status_code == 400 and words in response.json()["detail"], body
    stranger = api_client_for(outsider)
    body = {"checkpoints": [ckpt_a.pk], "dataset": digits.pk, "layer": "block1"}
    assert stranger.post("/api/v1/nested/", body, format="json").status_code == 404
    made = api.post("/api/v1/nested/", body, format="json").json()
    assert stranger.get(f"/api/v1/nested/{made['id']}/").status_code == 404
    assert api.get(f"/api/v1/nested/{made['id'] + 1000}/").status_code == 404
