"""Projections: request, worker, stored coordinates, binary endpoints, explorer page."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.errors import InputError
from analysis.explorer.projection import project
from tests.conftest import run_with_dependencies
from webapp.catalog.models import ActivationSet
from webapp.runs.models import Run
from webapp.runs.submit import request_projection

pytestmark = pytest.mark.django_db


def test_projection_stores_every_sample_and_serves_them_as_binary(
    client, owner, outsider, digits, ckpt_a
):
    run, created = request_projection(owner, ckpt_a, digits, "block1", method="pca")
    assert created and run.params == {
        "layer": "block1",
        "pooling": "mean",
        "method": "pca",
        "seed": 0,
    }
    client.force_login(owner)
    assert client.get(f"/projections/{run.pk}/coords.f32").status_code == 404  # not yet
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    activations = ActivationSet.objects.get(checkpoint=ckpt_a, dataset=digits, layer="block1")
    expected = project(activations.load(), "pca")
    stored = run.projection.coordinates.load_array()
    assert stored.shape == (digits.n_samples, 2) and np.array_equal(stored, expected.coordinates)
    assert run.projection.explained_variance == pytest.approx(expected.explained_variance)

    raw = client.get(f"/projections/{run.pk}/coords.f32")
    assert raw["Content-Type"] == "application/octet-stream"
    assert np.array_equal(np.frombuffer(raw.content, dtype="<f4").reshape(-1, 2), stored)
    labels = np.frombuffer(client.get(f"/projections/{run.pk}/labels.u16").content, dtype="<u2")
    assert np.array_equal(labels, digits.column("y"))

    # Each sample's neighbours in the original space, and what the picture keeps of them.
    from analysis.explorer.projection import neighbourhoods

    near = neighbourhoods(activations.load(), stored)
    projection = run.projection
    assert np.array_equal(projection.neighbours.load_array(), near.indices)
    assert np.array_equal(projection.kept.load_array(), near.kept)
    panel = client.get(f"/projections/{run.pk}/points/5/").content.decode()
    first = digits.samples([int(near.indices[5, 0])])[0]
    assert first["id"] in panel and f"{near.distances[5, 0]:.2f}" in panel
    assert f"<strong>{round(float(near.kept[5]) * 10)} of its 10</strong>" in panel
    assert client.get(f"/projections/{run.pk}/points/{digits.n_samples}/").status_code == 404
    page = client.get(f"/projections/{run.pk}/").content.decode()
    assert f"keeps {round(100 * float(near.kept.mean()))}%" in page
    # Below the exact limit the lists are exact, and the page and the parameters say so.
    assert projection.parameters["neighbours"]["method"] == "exact"
    assert "neighbour lists are exact" in page
    # The layer's geometry is stored with the projection and shown beside it.
    from analysis.explorer.geometry import geometry

    shape = geometry(activations.load(), digits.column("y"))
    stored_shape, expected_shape = dict(projection.geometry), shape.to_json()
    assert stored_shape.pop("spectrum") == pytest.approx(expected_shape.pop("spectrum"))
    assert stored_shape == pytest.approx(expected_shape)
    assert f"{shape.effective_rank:.2f}" in page and f"{shape.knn_accuracy:.3f}" in page
    # beside each accuracy its chance level: always guessing the most frequent label
    chance = np.bincount(digits.column("y")).max() / digits.n_samples
    assert f'{shape.linear_probe_accuracy:.3f} <span class="muted">(ridge classifier' in page
    assert f"chance {chance:.3f}, always the most frequent label)" in page
    assert f"k = {shape.knn_k}; chance {chance:.3f})" in page
    assert f'{shape.participation_ratio:.2f} <span class="muted">((Σλ)² / Σλ²' in page
    assert "<polyline" in page

    client.force_login(outsider)
    assert client.get(f"/projections/{run.pk}/points/5/").status_code == 404
    for url in ("", "coords.f32", "labels.u16"):
        assert client.get(f"/projections/{run.pk}/{url}").status_code == 404


def test_explorer_page_polls_until_done_and_keeps_projections_side_by_side(
    client, owner, digits, ckpt_a
):
    client.force_login(owner)
    form = {
        "dataset": digits.pk,
        "layer": "block2",
        "pooling": "mean",
        "method": "umap",
        "n_neighbors": 8,
        "min_dist": 0.2,
        "metric": "cosine",
        "perplexity": 30,
        "seed": 1,
    }
    response = client.post(f"/checkpoints/{ckpt_a.pk}/project/", form)
    umap_run = Run.objects.get(kind=Run.Kind.PROJECT)
    assert response.status_code == 302 and response["Location"] == f"/projections/{umap_run.pk}/"
    assert umap_run.params == {
        "layer": "block2",
        "pooling": "mean",
        "method": "umap",
        "n_neighbors": 8,
        "min_dist": 0.2,
        "metric": "cosine",
        "seed": 1,
    }
    assert client.get(f"/projections/{umap_run.pk}/", HTTP_HX_REQUEST="true").status_code == 200
    pca_run, _ = request_projection(owner, ckpt_a, digits, "block2")
    umap_run, pca_run = run_with_dependencies(umap_run), run_with_dependencies(pca_run)
    assert umap_run.state == pca_run.state == Run.State.SUCCEEDED, umap_run.error
    page = client.get(f"/projections/{umap_run.pk}/").content.decode()
    assert 'class="scatter"' in page and f"/projections/{umap_run.pk}/coords.f32" in page
    assert f'href="/projections/{pca_run.pk}/"' in page  # the other projection, kept
    assert client.get(f"/projections/{umap_run.pk}/", HTTP_HX_REQUEST="true").status_code == 286
    listed = client.get(f"/checkpoints/{ckpt_a.pk}/").content.decode()
    assert f'href="/projections/{umap_run.pk}/"' in listed


def test_bad_projection_requests_are_refused(client, owner, digits, ckpt_a):
    with pytest.raises(InputError, match="method must be one of: pca, umap, tsne"):
        request_projection(owner, ckpt_a, digits, "block1", method="isomap")
    with pytest.raises(InputError, match="not in"):
        request_projection(owner, ckpt_a, digits, "nope")
    client.force_login(owner)
    bad = client.post(
        f"/checkpoints/{ckpt_a.pk}/project/",
        {
            "dataset": digits.pk,
            "layer": "block1",
            "pooling": "mean",
            "method": "tsne",
            "n_neighbors": 15,
            "min_dist": 0.1,
            "metric": "euclidean",
            "perplexity": 0.5,
            "seed": 0,
        },
    )
    assert bad.status_code == 400 and "perplexity" in bad.content.decode()
    assert not Run.objects.filter(kind=Run.Kind.PROJECT).exists()


def test_projection_through_the_api(owner, outsider, digits, ckpt_a):
    from tests.conftest import api_client_for

    api = api_client_for(owner)
    body = {"checkpoint": ckpt_a.pk, "dataset": digits.pk, "layer": "head", "method": "pca"}
    response = api.post("/api/v1/projections/", body, format="json")
    assert response.status_code == 201, response.content
    pk = response.json()["id"]
    assert api.post("/api/v1/projections/", body, format="json").status_code == 200
    assert api.get(f"/api/v1/projections/{pk}/").status_code == 404  # not finished
    run = run_with_dependencies(Run.objects.get(pk=pk))
    meta = api.get(f"/api/v1/projections/{pk}/").json()
    assert (meta["method"], meta["n"], meta["layer"]) == ("pca", digits.n_samples, "head")
    assert meta["coordinates"].endswith(f"/api/v1/projections/{pk}/coordinates/")
    raw = api.get(f"/api/v1/projections/{pk}/coordinates/").content
    stored = run.projection.coordinates.load_array()
    assert np.array_equal(np.frombuffer(raw, dtype="<f4").reshape(-1, 2), stored)
    bad = api.post("/api/v1/projections/", {**body, "method": "isomap"}, format="json")
    assert bad.status_code == 400 and "method" in bad.json()["detail"]
    stranger = api_client_for(outsider)
    assert stranger.get(f"/api/v1/projections/{pk}/coordinates/").status_code == 404
    assert stranger.post("/api/v1/projections/", body, format="json").status_code == 404
