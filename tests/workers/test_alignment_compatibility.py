"""Alignment and compatibility runs: request, worker, stored results, pages and API."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.template.defaultfilters import floatformat

from analysis.errors import InputError
from analysis.measures.alignment import fit_alignment
from analysis.measures.compatibility import query_gallery_split, retrieval
from tests.conftest import (
    api_client_for,
    checkpoint_from,
    nudged_mlp_bytes,
    run_with_dependencies,
)
from tests.webapp.test_schema import check
from webapp.catalog.ingest import ingest_dataset
from webapp.catalog.models import ActivationSet
from webapp.runs.models import Run
from webapp.runs.submit import request_alignment, request_comparison, request_compatibility

pytestmark = pytest.mark.django_db


def activations(checkpoint, dataset, layer: str) -> np.ndarray:
    return ActivationSet.objects.get(checkpoint=checkpoint, dataset=dataset, layer=layer).load()


def test_alignment_of_a_layer_with_itself_is_perfect(owner, digits, ckpt_a):
    run, created = request_alignment(owner, ckpt_a, ckpt_a, digits, "block1", "block1")
    assert created
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    a = run.alignment
    assert a.r2 == pytest.approx(1.0, abs=1e-9) and a.retrieval_top1 == 1.0
    assert a.r2_shuffled < 0.5
    assert (a.n_train + a.n_test, a.n_test) == (60, 12)
    residuals, test = a.residuals.load_array(), a.test_mask.load_array()
    assert residuals.shape == (60,) and test.dtype == bool and test.sum() == 12
    assert residuals.max() < 1e-9


def test_alignment_stores_what_the_library_computes(owner, digits, ckpt_a, ckpt_b):
    run, _ = request_alignment(owner, ckpt_a, ckpt_b, digits, "block2", "block1", method="ridge")
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    expected = fit_alignment(
        activations(ckpt_a, digits, "block2"), activations(ckpt_b, digits, "block1"), "ridge"
    )
    a = run.alignment
    assert (a.method, a.d_a, a.d_b) == ("ridge", 16, 32)
    assert a.r2 == pytest.approx(expected.r2, abs=1e-12)
    assert a.retrieval_top5 == pytest.approx(expected.retrieval_top5)
    assert np.array_equal(a.test_mask.load_array(), expected.test)
    assert np.allclose(a.residuals.load_array(), expected.residuals)
    again, created = request_alignment(
        owner, ckpt_a, ckpt_b, digits, "block2", "block1", method="ridge"
    )
    assert again.pk == run.pk and not created


def test_alignment_refuses_bad_requests(owner, digits, ckpt_a, ckpt_b):
    with pytest.raises(InputError, match="method must be one of: procrustes"):
        request_alignment(owner, ckpt_a, ckpt_b, digits, "block1", "block1", method="magic")
    with pytest.raises(InputError, match="not in"):
        request_alignment(owner, ckpt_a, ckpt_b, digits, "block1", "nope")
    with pytest.raises(InputError, match="test_fraction"):
        request_alignment(owner, ckpt_a, ckpt_b, digits, "block1", "block1", test_fraction=1.0)
    assert not Run.objects.filter(kind=Run.Kind.ALIGN).exists()


def test_pair_page_fits_a_map_and_shows_the_worst_aligned_samples(
    client, owner, outsider, digits, ckpt_a, ckpt_b
):
    comparison, _ = request_comparison(
        owner, ckpt_a, ckpt_b, digits, n_permutations=1, n_bootstrap=0
    )
    comparison = run_with_dependencies(comparison)
    client.force_login(owner)
    pair = f"/comparisons/{comparison.pk}/pairs/1/0/"
    page = client.get(pair).content.decode()
    assert page.count("+ Fit") == 4  # one button per method
    response = client.post(f"{pair}align/", {"method": "procrustes-scaled"})
    assert response.status_code == 302 and response["Location"] == pair
    run = Run.objects.get(kind=Run.Kind.ALIGN)
    layers = comparison.params["layers_a"][1], comparison.params["layers_b"][0]
    assert (run.params["layer_a"], run.params["layer_b"], run.params["method"]) == (
        *layers,
        "procrustes-scaled",
    )
    assert client.get(pair, HTTP_HX_REQUEST="true").status_code == 200  # still queued: poll
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    page = client.get(pair).content.decode()
    assert "Held-out samples that align worst" in page
    assert f"{run.alignment.r2:.3f}" in page
    a = run.alignment  # chance beside each retrieval accuracy: k / the samples held out
    assert a.retrieval_chance_top1 == 1 / a.n_test
    assert f'<td class="chance">1/{a.n_test} · 5/{a.n_test}</td>' in page
    run_page = client.get(f"/runs/{run.pk}/").content.decode()  # there too, at both k
    assert f"the {a.n_test} held out: 1/{a.n_test} · 5/{a.n_test})" in run_page
    assert client.get(pair, HTTP_HX_REQUEST="true").status_code == 286
    client.force_login(outsider)
    assert client.post(f"{pair}align/", {"method": "ridge"}).status_code == 404
    assert Run.objects.filter(kind=Run.Kind.ALIGN).count() == 1


def test_alignment_through_the_api(owner, outsider, digits, ckpt_a, ckpt_b):
    api = api_client_for(owner)
    body = {
        "checkpoint_a": ckpt_a.pk,
        "checkpoint_b": ckpt_b.pk,
        "dataset": digits.pk,
        "layer_a": "block1",
        "layer_b": "block1",
        "method": "anchors",
    }
    response = api.post("/api/v1/alignments/", body, format="json")
    assert response.status_code == 201, response.content
    pk = response.json()["id"]
    assert api.get(f"/api/v1/alignments/{pk}/").status_code == 404  # not finished yet
    run = run_with_dependencies(Run.objects.get(pk=pk))
    summary = api.get(f"/api/v1/alignments/{pk}/").json()
    assert summary["method"] == "anchors" and summary["r2"] == pytest.approx(run.alignment.r2)
    assert summary["provenance"]["seed"] == 0 and summary["layer_a"] == "block1"
    raw = b"".join(api.get(f"/api/v1/alignments/{pk}/residuals/").streaming_content)
    assert np.allclose(np.load(io.BytesIO(raw)), run.alignment.residuals.load_array())
    bad = api.post("/api/v1/alignments/", {**body, "layer_b": "nope"}, format="json")
    assert bad.status_code == 400 and "nope" in bad.json()["detail"]
    stranger = api_client_for(outsider)
    assert stranger.get(f"/api/v1/alignments/{pk}/").status_code == 404
    assert stranger.post("/api/v1/alignments/", body, format="json").status_code == 404


def test_compatibility_run_matches_the_library(owner, digits, ckpt_a, ckpt_b):
    run, created = request_compatibility(owner, [ckpt_a, ckpt_b], digits, "block2")
    assert created and run.depends_on.count() == 2
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    result = run.compatibility.result
    labels = digits.column("y")
    query, gallery = query_gallery_split(labels, seed=0)
    assert run.compatibility.query_indices == query.tolist()
    x = {c.pk: activations(c, digits, "block2") for c in (ckpt_a, ckpt_b)}
    for i, qi in enumerate((ckpt_a, ckpt_b)):
        for j, gj in enumerate((ckpt_a, ckpt_b)):
            expected = retrieval(x[qi.pk][query], x[gj.pk][gallery], labels[query], labels[gallery])
            assert result["top1"][i][j] == pytest.approx(expected.top1)
            assert result["mean_ap"][i][j] == pytest.approx(expected.mean_ap)
    # Two independently initialised networks: the new one's queries cannot search the old
    # gallery as well as the old model did.
    assert result["ecc"] == {"1,0": False} and result["ac"] == 0.0
    assert result["top1"][1][0] < result["top1"][0][0]


def test_compatibility_page_and_api(client, owner, outsider, digits, ckpt_a, ckpt_b):
    client.force_login(owner)
    data = {"checkpoints": [ckpt_b.pk, ckpt_a.pk], "dataset": digits.pk, "layer": "block2"}
    response = client.post(
        "/w/lab/compatibility/new/",
        {**data, "pooling": "mean", "metric": "cosine", "criterion": "top1"},
    )
    run = Run.objects.get(kind=Run.Kind.COMPATIBILITY)
    assert response.status_code == 302 and response["Location"] == f"/compatibility/{run.pk}/"
    assert run.params["checkpoints"] == [ckpt_a.pk, ckpt_b.pk]  # oldest first
    assert client.get(f"/compatibility/{run.pk}/", HTTP_HX_REQUEST="true").status_code == 200
    run = run_with_dependencies(run)
    page = client.get(f"/compatibility/{run.pk}/").content.decode()
    assert 'id="matrix-data"' in page and "Negative flips" in page and "AC" in page
    n_flips = len(run.compatibility.result["flips"]["1,0"])
    assert f"<td>{n_flips}</td>" in page
    api = api_client_for(owner)
    body = api.get(f"/api/v1/compatibility/{run.pk}/").json()
    assert body["value"][0][1] is None and body["value"][1][0] is not None  # lower triangle
    assert body["result"]["names"] == [ckpt_a.name, ckpt_b.name]
    again = api.post("/api/v1/compatibility/", {**data, "checkpoints": [ckpt_a.pk, ckpt_b.pk]})
    assert again.status_code == 200 and again.json()["id"] == run.pk
    client.force_login(outsider)
    assert client.get(f"/compatibility/{run.pk}/").status_code == 404
    assert api_client_for(outsider).get(f"/api/v1/compatibility/{run.pk}/").status_code == 404


def test_an_update_that_changes_nothing_is_not_distinguishable(
    client, owner, workspace, digits, ckpt_a
):
    """A new version a hair away from the old one: its point estimates may differ by a query,
    but the page says the queries cannot tell it from no change, with every interval, and
    names what the colours are (retrieval, not similarity) with the chance levels."""
    nudged = checkpoint_from(workspace, owner, nudged_mlp_bytes(0, 1e-3), "mlp-seed0-nudged")
    run, _ = request_compatibility(owner, [ckpt_a, nudged], digits, "block2", criterion="mean_ap")
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    result = run.compatibility.result
    low, high = result["difference_ci"]["1,0"]
    assert low <= 0 <= high and result["verdict"] == {"1,0": "not distinguishable"}
    assert result["n_bootstrap"] == 1000 and result["seed"] == run.params["seed"]

    client.force_login(owner)
    page = client.get(f"/compatibility/{run.pk}/").content.decode()
    verdict = page.split('<td class="verdict">')[1].split("</td>")[0]
    assert "not distinguishable" in verdict and ">yes<" not in verdict
    assert f"{floatformat(low, 4)} – {floatformat(high, 4)}" in page  # the difference's interval
    assert f"1000 resamples of the {result['n_queries']} queries" in page
    chance = result["chance"]
    assert f"mAP {chance['mean_ap']:.3f}" in page and f"top-1 {chance['top1']:.3f}" in page
    assert "gallery ranked at random" in page
    api = api_client_for(owner)
    schema = api.get("/api/v1/schema/?format=json")
    schema = json.loads(b"".join(schema.streaming_content) if schema.streaming else schema.content)
    body = check(schema, api.get(f"/api/v1/compatibility/{run.pk}/"), "get",
                 "/api/v1/compatibility/{id}/")  # fmt: skip
    assert body["measure"]["reading"] == "higher = better retrieval"
    assert body["ci_low"][1][0] <= body["value"][1][0] <= body["ci_high"][1][0]
    assert body["ci_low"][0][1] is None  # lower triangle, as the values


def test_compatibility_refuses_unlabelled_data_and_one_model(
    workspace, owner, digits, ckpt_a, ckpt_b
):
    buffer = io.BytesIO()
    np.savez(buffer, x=np.random.default_rng(0).random((20, 64), dtype=np.float32))
    unlabelled, _ = ingest_dataset(workspace, owner, buffer, "vectors.npz", "vectors")
    with pytest.raises(InputError, match="no labels"):
        request_compatibility(owner, [ckpt_a, ckpt_b], unlabelled, "block1")
    with pytest.raises(InputError, match="at least two"):
        request_compatibility(owner, [ckpt_a], digits, "block1")


def test_run_pages_link_to_what_alignment_and_compatibility_runs_made(
    client, owner, digits, ckpt_a, ckpt_b
):
    align, _ = request_alignment(owner, ckpt_a, ckpt_b, digits, "block1", "block2")
    series, _ = request_compatibility(owner, [ckpt_a, ckpt_b], digits, "block2")
    align, series = run_with_dependencies(align), run_with_dependencies(series)
    client.force_login(owner)
    page = client.get(f"/runs/{align.pk}/").content.decode()
    assert "block1 → block2" in page and f"{align.alignment.r2:.4f}" in page
    assert (
        f'href="/compatibility/{series.pk}/"' in client.get(f"/runs/{series.pk}/").content.decode()
    )
    runs = client.get("/w/lab/").content.decode()
    assert (
        f'href="/compatibility/{series.pk}/"' in runs
        and "mlp-seed0 block1 → mlp-seed1 block2" in runs
    )


def test_alignment_and_compatibility_export_as_csv(client, owner, outsider, digits, ckpt_a, ckpt_b):
    import csv

    align, _ = request_alignment(owner, ckpt_a, ckpt_b, digits, "block1", "block1")
    series, _ = request_compatibility(owner, [ckpt_a, ckpt_b], digits, "block2")
    client.force_login(owner)
    assert client.get(f"/alignments/{align.pk}/residuals.csv").status_code == 404  # not yet
    align, series = run_with_dependencies(align), run_with_dependencies(series)

    rows = list(
        csv.DictReader(
            io.StringIO(client.get(f"/alignments/{align.pk}/residuals.csv").content.decode())
        )
    )
    residuals, held_out = (
        align.alignment.residuals.load_array(),
        align.alignment.test_mask.load_array(),
    )
    assert len(rows) == digits.n_samples == len(residuals)
    assert [float(r["residual"]) for r in rows] == pytest.approx(residuals.tolist())
    assert [r["held_out"] == "True" for r in rows] == held_out.tolist()
    assert rows[0]["id"] == "digit-0000" and rows[0]["method"] == "procrustes"

    text = client.get(f"/compatibility/{series.pk}/matrix.csv").content.decode()
    cells = {(r["query_model"], r["gallery_model"]): r for r in csv.DictReader(io.StringIO(text))}
    result = series.compatibility.result
    assert len(cells) == 4
    new_old = cells[(ckpt_b.name, ckpt_a.name)]
    assert float(new_old["top1"]) == pytest.approx(result["top1"][1][0])
    assert new_old["ecc"] == "False" and int(new_old["negative_flips"]) == len(
        result["flips"]["1,0"]
    )
    assert new_old["layer"] == "block2" and new_old["criterion"] == "top1"
    low, high = result["difference_ci"]["1,0"]
    assert (float(new_old["difference_ci_low"]), float(new_old["difference_ci_high"])) == (
        low,
        high,
    )
    assert new_old["verdict"] == result["verdict"]["1,0"]
    assert float(new_old["criterion_ci_low"]) == result["ci_low"][1][0]
    assert float(new_old["chance_top1"]) == result["chance"]["top1"]
    assert new_old["n_bootstrap"] == "1000"
    assert cells[(ckpt_a.name, ckpt_b.name)]["ecc"] == ""  # only (new, old) pairs have criteria
    client.force_login(outsider)
    assert client.get(f"/compatibility/{series.pk}/matrix.csv").status_code == 404
    assert client.get(f"/alignments/{align.pk}/residuals.csv").status_code == 404
