"""The nested-embedding form on the workspace page and the page of a run: curves embedded for
the charts, definitions and provenance; an unlabelled dataset refused in one sentence."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from sklearn.datasets import load_digits

from tests.conftest import run_with_dependencies
from tests.webapp.builders import npz_bytes
from webapp.catalog.ingest import ingest_dataset
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db


def embedded(html: str, name: str) -> dict:
    found = re.search(rf'<script id="{name}" type="application/json">(.*?)</script>', html, re.S)
    assert found, name
    return json.loads(found.group(1))


def test_the_form_asks_for_a_run_and_its_page_draws_the_curves(
    client, owner, ckpt_a, ckpt_b, digits, workspace
):
    client.force_login(owner)
    page = client.get(f"/w/{workspace.slug}/").content.decode()
    assert "New nested-embedding curves" in page and f"/w/{workspace.slug}/nested/new/" in page
    response = client.post(
        f"/w/{workspace.slug}/nested/new/",
        {
            "checkpoints": [ckpt_a.pk, ckpt_b.pk],
            "dataset": digits.pk,
            "layer": "block1",
            "pooling": "mean",
            "metric": "cosine",
        },
    )
    run = Run.objects.get(kind=Run.Kind.NESTED)
    assert response.status_code == 302 and response["Location"] == f"/nested/{run.pk}/"
    waiting = client.get(f"/nested/{run.pk}/").content.decode()
    assert "nested-charts" not in waiting and "this page updates by itself" in waiting

    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    html = client.get(f"/nested/{run.pk}/").content.decode()
    charts = embedded(html, "nested-charts")
    assert charts["dims"] == [8, 16, 32]
    assert set(charts["charts"]) == {"mean_ap", "top1", "top5", "probe_accuracy", "cka"}
    assert [line["name"] for line in charts["charts"]["top1"]["lines"]] == [
        "mlp-seed0",
        "mlp-seed1",
    ]
    assert html.count('class="line-chart"') == 5
    assert "exact leave-one-out accuracy of a ridge classifier" in html
    assert "n = 60 samples" in html and "leave-one-out" in html and "cosine distance" in html
    # the htmx poll of a finished run: its last answer, and polling stops
    poll = client.get(f"/nested/{run.pk}/", HTTP_HX_REQUEST="true")
    assert poll.status_code == 286 and b"nested-charts" in poll.content
    listed = client.get(f"/w/{workspace.slug}/").content.decode()
    assert f'href="/nested/{run.pk}/"' in listed and "2 checkpoints at block1" in listed


def test_an_unlabelled_dataset_is_refused_on_the_form(client, owner, ckpt_a, workspace):
    x = (load_digits().images[:30] / 16).astype(np.float32)[:, None]
    unlabelled, _ = ingest_dataset(
        workspace, owner, io.BytesIO(npz_bytes(x=x)), "unlabelled.npz", "Unlabelled"
    )
    client.force_login(owner)
    response = client.post(
        f"/w/{workspace.slug}/nested/new/",
        {"checkpoints": [ckpt_a.pk], "dataset": unlabelled.pk, "layer": "block1"},
    )
    assert response.status_code == 400
    assert "Unlabelled has no labels: nested-embedding quality needs class or identity labels" in (
        response.content.decode()
    )
    assert not Run.objects.filter(kind=Run.Kind.NESTED).exists()


def test_a_run_of_another_workspace_is_404(client, outsider, owner, ckpt_a, digits):
    from webapp.runs.submit import request_nested

    run, _ = request_nested(owner, [ckpt_a], digits, "block1")
    client.force_login(outsider)
    assert client.get(f"/nested/{run.pk}/").status_code == 404
