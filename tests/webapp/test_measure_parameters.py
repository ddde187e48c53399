"""Measures' own parameters: declared once (``Measure.parameters``), settable through the API
and the page, part of the run's identity, recorded with every score; unknown fields and
values out of range are a 400 that names them."""

from __future__ import annotations

import io

import pytest

from analysis.measures.registry import MEASURES
from tests.conftest import (
    checkpoint_from,
    digits_npz_bytes,
    run_with_dependencies,
    torchscript_mlp_bytes,
)
from webapp.catalog.ingest import ingest_dataset
from webapp.pages.forms import MeasureForm
from webapp.runs.models import Run, Score

NON_DEFAULT = {
    "k": 5,
    "metric": "euclidean",
    "fraction": 0.5,
    "bandwidth": "kornblith-2019",
    "rank_tolerance": 1e-6,
    "variance_kept": 0.9,
    "n_splits": 3,
    "alphas": [0.1, 1.0],
    "n_anchors": 20,
}
"""A value other than the default for every declared parameter of every measure."""

pytestmark = pytest.mark.django_db

EVERY_PARAMETER = [(m.id, p.name) for m in MEASURES.values() for p in m.parameters]


def test_every_declared_parameter_has_a_non_default_value_here():
    assert {name for _, name in EVERY_PARAMETER} == set(NON_DEFAULT)
    for measure_id, name in EVERY_PARAMETER:
        (parameter,) = [p for p in MEASURES[measure_id].parameters if p.name == name]
        assert parameter.check(NON_DEFAULT[name]) != parameter.default


@pytest.fixture
def inputs(workspace, owner):
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(200)), "d200.npz", "digits200"
    )
    a = checkpoint_from(workspace, owner, torchscript_mlp_bytes(0), "a")
    b = checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "b")
    return a, b, dataset


def request(a, b, dataset, measure: str, **extra) -> dict:
    return {
        "checkpoint_a": a.pk,
        "checkpoint_b": b.pk,
        "dataset": dataset.pk,
        "layers_a": ["block1"],
        "layers_b": ["block2"],
        "measure": measure,
        "n_permutations": 2,
        "n_bootstrap": 0,
        **extra,
    }


@pytest.mark.parametrize(("measure_id", "name"), EVERY_PARAMETER)
def test_a_parameter_goes_from_the_api_to_the_run_and_the_scores_provenance(
    api, inputs, measure_id, name
):
    value = NON_DEFAULT[name]
    body = request(*inputs, measure_id, measure_params={name: value})
    answer = api.post("/api/v1/comparisons/", body, format="json")
    assert answer.status_code == 201, answer.content
    run = Run.objects.get(pk=answer.json()["id"])
    defaults = MEASURES[measure_id].settings()
    assert run.params["measure_params"] == {**defaults, name: value}

    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    (score,) = Score.objects.filter(run=run)
    assert score.parameters["measure_params"] == {**defaults, name: value}
    assert score.value is not None or score.warnings

    # The same request is the same run; the default value is another run.
    again = api.post("/api/v1/comparisons/", body, format="json")
    assert (again.status_code, again.json()["id"]) == (200, run.pk)
    default = request(*inputs, measure_id)
    other = api.post("/api/v1/comparisons/", default, format="json")
    assert other.status_code == 201 and other.json()["id"] != run.pk


def test_knn_parameters_change_the_estimate(api, inputs):
    cosine = api.post("/api/v1/comparisons/", request(*inputs, "knn/jaccard"), format="json")
    euclid = api.post(
        "/api/v1/comparisons/",
        request(*inputs, "knn/jaccard", measure_params={"k": 5, "metric": "euclidean"}),
        format="json",
    )
    runs = [run_with_dependencies(Run.objects.get(pk=r.json()["id"])) for r in (cosine, euclid)]
    estimators = [Score.objects.get(run=r).estimator for r in runs]
    assert estimators == ["exact k=10, cosine", "exact k=5, euclidean"]


def test_fields_a_request_does_not_take_are_refused_by_name(api, inputs):
    body = request(*inputs, "knn/jaccard", metric="euclidean", k=10)
    answer = api.post("/api/v1/comparisons/", body, format="json")
    assert answer.status_code == 400
    assert set(answer.json()["errors"]) == {"k", "metric"}
    assert "unknown field" in answer.json()["detail"]
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"kk": 3}, "knn/jaccard has no parameter 'kk' (its parameters: k, metric)"),
        ({"k": 0}, "k must be ≥ 1 and ≤ 1000, got 0"),
        ({"k": 2.5}, "k must be an integer"),
        ({"metric": "manhattan"}, "metric must be one of: cosine, euclidean"),
    ],
)
def test_bad_measure_parameters_are_a_400_naming_them(api, inputs, params, message):
    body = request(*inputs, "knn/jaccard", measure_params=params)
    answer = api.post("/api/v1/comparisons/", body, format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"]["measure_params"] == [message]
    assert not Run.objects.exists()


def test_a_measure_without_parameters_refuses_any(api, inputs):
    body = request(*inputs, "cka/linear", measure_params={"k": 3})
    answer = api.post("/api/v1/comparisons/", body, format="json")
    assert answer.status_code == 400
    assert "cka/linear has no parameter 'k'" in answer.json()["detail"]


def test_the_measures_listing_declares_each_parameter(api):
    listed = {m["id"]: m for m in api.get("/api/v1/measures/").json()}
    k = listed["knn/mutual"]["parameters"][0]
    assert k["name"] == "k" and k["type"] == "int" and k["default"] == 10
    assert (k["minimum"], k["maximum"]) == (1, 1000) and k["help"]
    assert listed["cka/linear"]["parameters"] == []


def test_the_page_form_sets_the_chosen_measures_parameters(client, owner, inputs):
    a, b, dataset = inputs
    client.force_login(owner)
    page = client.get(f"/w/{a.workspace.slug}/").content.decode()
    k_field = MeasureForm.parameter_key("knn/jaccard", "k")
    assert f'name="{k_field}"' in page and 'data-measure="knn/jaccard"' in page
    form = {
        "checkpoint_a": a.pk,
        "checkpoint_b": b.pk,
        "dataset": dataset.pk,
        "pooling": "mean",
        "measure": "knn/jaccard",
        "n_permutations": 3,
        "n_bootstrap": 0,
        k_field: 7,
        MeasureForm.parameter_key("knn/mutual", "k"): 99,  # another measure's: ignored
        MeasureForm.parameter_key("regression/ridge-r2", "alphas"): "0.5, 2",
    }
    answer = client.post(f"/w/{a.workspace.slug}/comparisons/new/", form)
    assert answer.status_code == 302, answer.content.decode()[-2000:]
    run = Run.objects.get(kind=Run.Kind.COMPARE)
    assert run.params["measure_params"] == {"k": 7, "metric": "cosine"}
    assert (run.params["n_permutations"], run.params["n_bootstrap"]) == (3, 0)


def test_a_run_kind_parameter_goes_from_the_api_to_the_drill_down(api, inputs):
    body = request(*inputs, "cka/linear", agreement_k=5)
    answer = api.post("/api/v1/comparisons/", body, format="json")
    assert answer.status_code == 201, answer.content
    run = run_with_dependencies(Run.objects.get(pk=answer.json()["id"]))
    assert run.params["agreement_k"] == 5
    assert Score.objects.get(run=run).parameters["knn_k"] == 5
    too_many = api.post("/api/v1/comparisons/", {**body, "agreement_k": 500}, format="json")
    assert too_many.status_code == 400 and "agreement_k" in too_many.json()["errors"]
