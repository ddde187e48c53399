"""Unit matching as a run kind: the stored result is unit_matching_report's on the stored
activations, refusals are one plain sentence, and the page and its links show it."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.errors import InputError
from analysis.measures.units import heldout_prediction, unit_matching_report
from tests.conftest import checkpoint_from, run_with_dependencies, torchscript_mlp_bytes
from webapp.catalog.models import ActivationSet
from webapp.runs import units
from webapp.runs.models import Report, Run
from webapp.runs.submit import request_comparison
from webapp.runs.units import request_unit_matching, unit_matching_view

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(workspace, owner):
    a = checkpoint_from(workspace, owner, torchscript_mlp_bytes(0), "mlp-seed0")
    b = checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "mlp-seed1")
    return a, b


def matched(owner, a, b, digits, layer_a="block1", layer_b="block1", **parameters):
    run, _ = request_unit_matching(owner, a, b, digits, layer_a, layer_b, **parameters)
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    return run


def stored(checkpoint, digits, layer) -> np.ndarray:
    activations = ActivationSet.objects.get(checkpoint=checkpoint, dataset=digits, layer=layer)
    with activations.memory_map() as x:
        return np.array(x)


def test_the_result_is_the_reports_on_the_stored_activations(owner, pair, digits):
    a, b = pair
    run = matched(owner, a, b, digits, "block1", "block2", n_pairs=3, top_m=4, n_alphas=10)
    x, y = stored(a, digits, "block1"), stored(b, digits, "block2")
    expected = unit_matching_report(x, y, n_alphas=10, n_pairs=3, top_m=4)
    result = Report.objects.get(run=run).result
    assert result["report"] == expected.to_json()
    # the samples beside each pair's unit of B are those that activate it most
    for pair, top in zip(expected.best_pairs, result["top_b"]["best"], strict=True):
        assert top == np.argsort(-y[:, pair.b], kind="stable")[:4].tolist()
    view = unit_matching_view(run)
    report = view["report"]
    assert (report["p"], report["q"], report["n"]) == (32, 16, digits.n_samples)
    assert report["share_hungarian"] == expected.share_hungarian
    assert report["sparse"]["error_at_nonzeros"][0] == pytest.approx(1.0)
    assert [p["correlation"] for p in report["best_pairs"]] == sorted(
        (p["correlation"] for p in report["best_pairs"]), reverse=True
    )
    assert len(report["best_pairs"][0]["samples_a"]) == 4
    assert report["best_pairs"][0]["samples_a"][0]["index"] == expected.best_pairs[0].top_samples[0]
    # the same request again is the same run
    again, created = request_unit_matching(
        owner, a, b, digits, "block1", "block2", n_pairs=3, top_m=4, n_alphas=10
    )
    assert again.pk == run.pk and not created


def test_the_held_out_curve_uses_the_runs_split_and_old_reports_still_show(
    client, owner, pair, digits
):
    """The run's test_fraction and seed reach the library; a Report kept before the held-out
    error existed (no "heldout") still shows, saying so, with the default parameters."""
    a, b = pair
    run = matched(owner, a, b, digits, "block1", "block2", test_fraction=0.4, seed=7)
    x, y = stored(a, digits, "block1"), stored(b, digits, "block2")
    expected = heldout_prediction(x, y, test_fraction=0.4, seed=7)
    assert expected is not None
    view = unit_matching_view(run)
    heldout = view["report"]["heldout"]
    assert heldout["error_at_nonzeros"] == expected.error_at_nonzeros
    assert (heldout["n_test"], heldout["n_train"]) == (len(expected.test), len(expected.train))
    assert heldout["n_test"] == round(0.4 * digits.n_samples)
    assert heldout["lowest_error"] == min(expected.error_at_nonzeros)
    assert view["parameters"]["test_fraction"] == 0.4 and view["parameters"]["seed"] == 7
    client.force_login(owner)
    html = client.get(f"/unit-matchings/{run.pk}/").content.decode()
    assert 'data-testid="heldout-definition"' in html and "held out (share 0.4, seed 7)" in html
    charts = units.unit_matching_charts(view)
    assert charts["sparse"]["heldout"]["y"] == expected.error_at_nonzeros
    # a Report kept before the held-out error existed
    stored_report = Report.objects.get(run=run)
    del stored_report.result["report"]["heldout"]
    stored_report.save()
    run.params = {k: v for k, v in run.params.items() if k not in ("test_fraction", "seed")}
    run.save()
    view = unit_matching_view(run)
    assert view["report"]["heldout"] is None and view["parameters"]["test_fraction"] == 0.25
    assert units.unit_matching_charts(view)["sparse"]["heldout"] is None
    html = client.get(f"/unit-matchings/{run.pk}/").content.decode()
    assert "Not computed for this run" in html


def test_a_unit_matching_of_a_layer_with_itself_pairs_every_unit_with_itself(owner, pair, digits):
    a, _ = pair
    view = unit_matching_view(matched(owner, a, a, digits, "block2", "block2"))
    report = view["report"]
    nonconstant = report["q"] - report["constant_b"]
    assert report["mean_hungarian"] == pytest.approx(nonconstant / report["q"])
    assert all(p["a"] == p["b"] for p in report["best_pairs"])


def test_refusals_are_one_plain_sentence(owner, pair, digits, monkeypatch):
    a, b = pair
    with pytest.raises(InputError, match="layer 'nope' is not in: mlp-seed0"):
        request_unit_matching(owner, a, b, digits, "nope", "block1")
    with pytest.raises(InputError, match="n_pairs"):
        request_unit_matching(owner, a, b, digits, "block1", "block1", n_pairs=0)
    monkeypatch.setattr(units, "MAX_UNITS", 20)
    # not extracted yet: the run refuses, before any work
    run, _ = request_unit_matching(owner, a, b, digits, "block1", "block1")
    run = run_with_dependencies(run)
    assert run.state == Run.State.FAILED
    assert run.error.startswith("mlp-seed0 block1 has 32 units; unit matching takes layers")
    assert run.error.count(". ") == 0
    # extracted: the request itself is refused
    with pytest.raises(InputError, match="has 32 units; unit matching takes layers of at most 20"):
        request_unit_matching(owner, a, b, digits, "block1", "block1", n_pairs=2)
    matched(owner, a, b, digits, "block2", "block2")  # 16 units: within the limit


def test_an_unfinished_run_says_the_width_limit_once(client, owner, pair, digits):
    """Before the result, the page says which layers are refused and why, in one sentence
    (it repeated its opening words: "Layers wider than 256 units are refused: layers …")."""
    a, b = pair
    run, _ = request_unit_matching(owner, a, b, digits, "block2", "block2")
    client.force_login(owner)
    html = client.get(f"/unit-matchings/{run.pk}/").content.decode()
    said = f"wider than {units.MAX_UNITS} units are refused"
    assert html.count(said) == 1, html
    assert f"Layers {said}: the lasso path" in html


def test_pages_forms_and_links(client, owner, outsider, workspace, pair, digits):
    a, b = pair
    client.force_login(owner)
    html = client.get(f"/w/{workspace.slug}/").content.decode()
    assert "New unit matching" in html and 'id="unit-matchings"' in html
    refused = client.post(
        f"/w/{workspace.slug}/unit-matchings/new/",
        {
            "checkpoint_a": a.pk,
            "layer_a": "head",
            "checkpoint_b": b.pk,
            "layer_b": "block1",
            "dataset": digits.pk,
            "n_pairs": 0,
        },
    )
    assert refused.status_code == 400
    asked = client.post(
        f"/w/{workspace.slug}/unit-matchings/new/",
        {
            "checkpoint_a": a.pk,
            "layer_a": "block1",
            "checkpoint_b": b.pk,
            "layer_b": "block1",
            "dataset": digits.pk,
        },
    )
    assert asked.status_code == 302
    run = Run.objects.get(kind=Run.Kind.UNITS)
    assert asked["Location"] == f"/unit-matchings/{run.pk}/"
    assert "this page updates by itself" in client.get(asked["Location"]).content.decode()
    run_with_dependencies(run)
    html = client.get(f"/unit-matchings/{run.pk}/").content.decode()
    assert 'data-units-chart="share"' in html and 'data-units-chart="sparse"' in html
    assert f"/datasets/{digits.pk}/samples/" in html  # the pairs' thumbnails
    assert "Worst-matched unit pairs" in html and "Hungarian" in html
    assert f"/unit-matchings/{run.pk}/" in client.get(f"/w/{workspace.slug}/").content.decode()
    # from a cell of a comparison: a button, then a link to the run it made
    comparison = run_with_dependencies(
        request_comparison(owner, a, b, digits, ["block1"], ["block2"], n_permutations=1)[0]
    )
    cell = f"/comparisons/{comparison.pk}/pairs/0/0/"
    assert 'data-testid="unit-matching-pair"' in client.get(cell).content.decode()
    made = client.post(cell + "units/")
    from_pair = Run.objects.get(kind=Run.Kind.UNITS, params__layer_b="block2")
    assert made["Location"] == f"/unit-matchings/{from_pair.pk}/"
    assert f"/unit-matchings/{from_pair.pk}/" in client.get(cell).content.decode()
    client.force_login(outsider)
    assert client.get(f"/unit-matchings/{run.pk}/").status_code == 404
