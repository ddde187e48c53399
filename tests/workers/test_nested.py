"""Nested (Matryoshka) embedding runs: the curves over prefix dimensions for one layer of
several checkpoints, the full-width point equal to the same statistics of the whole
embedding computed independently, and the requests refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sklearn.datasets import load_digits

from analysis.errors import InputError
from analysis.explorer.geometry import linear_probe_accuracy
from tests.conftest import run_with_dependencies
from tests.webapp.builders import npz_bytes
from webapp.catalog.ingest import ingest_dataset
from webapp.catalog.models import ActivationSet, Workspace
from webapp.runs.models import Report, Run
from webapp.runs.results import nested_charts, nested_view
from webapp.runs.submit import request_nested

pytestmark = pytest.mark.django_db


def finished(run: Run) -> Run:
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    return run


def loo_retrieval(x: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Top-1, top-5 and mAP of leave-one-out cosine retrieval, by brute force."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    distance = 1 - unit @ unit.T
    top1, top5, aps = [], [], []
    for i in range(len(x)):
        others = np.delete(np.arange(len(x)), i)
        ranked = others[np.argsort(distance[i, others], kind="stable")]
        relevant = labels[ranked] == labels[i]
        if not relevant.any():
            continue
        top1.append(relevant[0])
        top5.append(relevant[:5].any())
        hits = np.flatnonzero(relevant)
        aps.append(np.mean(np.arange(1, len(hits) + 1) / (hits + 1)))
    return float(np.mean(top1)), float(np.mean(top5)), float(np.mean(aps))


def test_curves_per_checkpoint_and_the_full_width_equals_the_whole_embedding(
    owner, ckpt_a, ckpt_b, digits
):
    run, created = request_nested(owner, [ckpt_a, ckpt_b], digits, "block1")
    assert created and run.params == {
        "checkpoints": [ckpt_a.pk, ckpt_b.pk],
        "layer": "block1",
        "pooling": "mean",
        "metric": "cosine",
    }
    assert request_nested(owner, [ckpt_a, ckpt_b], digits, "block1")[0].pk == run.pk
    assert nested_view(run)["curves"] == []  # nothing before it has run
    view = nested_view(finished(run))
    assert [c["checkpoint"]["name"] for c in view["curves"]] == ["mlp-seed0", "mlp-seed1"]
    labels = digits.column("y")
    for curve, checkpoint in zip(view["curves"], (ckpt_a, ckpt_b), strict=True):
        assert curve["dims"] == [8, 16, 32] and curve["d"] == 32
        x = ActivationSet.objects.get(checkpoint=checkpoint, dataset=digits, layer="block1").load()
        top1, top5, mean_ap = loo_retrieval(x, labels)
        assert curve["top1"][-1] == pytest.approx(top1)
        assert curve["top5"][-1] == pytest.approx(top5)
        assert curve["mean_ap"][-1] == pytest.approx(mean_ap)
        assert curve["probe_accuracy"][-1] == pytest.approx(linear_probe_accuracy(x, labels))
        assert curve["cka"][-1] == pytest.approx(1.0)
        # a prefix is the first coordinates: its probe is the probe of those columns
        assert curve["probe_accuracy"][0] == pytest.approx(linear_probe_accuracy(x[:, :8], labels))
        assert all(0 <= v <= 1 for key in ("top1", "top5", "mean_ap", "cka") for v in curve[key])
    counts = np.bincount(labels)
    assert view["chance"]["probe_accuracy"] == pytest.approx(counts.max() / len(labels))
    assert 0 < view["chance"]["top1"] < 0.2 and view["chance"]["cka"] is None
    assert view["provenance"]["n"] == 60 and view["provenance"]["protocol"] == "leave-one-out"
    assert view["provenance"]["metric"] == "cosine"
    charts = nested_charts(view)
    assert charts["dims"] == [8, 16, 32]
    assert list(charts["charts"]) == ["mean_ap", "top1", "top5", "probe_accuracy", "cka"]
    top = charts["charts"]["top1"]
    assert top["range"] == [0, 1] and top["chance"] == view["chance"]["top1"]
    assert [line["y"] for line in top["lines"]] == [c["top1"] for c in view["curves"]]
    assert Report.objects.get(run=run).code_version == run.code_version


def test_one_checkpoint_euclidean(owner, ckpt_a, digits):
    run = finished(request_nested(owner, [ckpt_a], digits, "block2", metric="euclidean")[0])
    view = nested_view(run)
    (curve,) = view["curves"]
    assert curve["dims"] == [8, 16] and view["provenance"]["metric"] == "euclidean"


def test_refusals(owner, ckpt_a, digits, workspace):
    x = (load_digits().images[:30] / 16).astype(np.float32)[:, None]
    unlabelled, _ = ingest_dataset(
        workspace, owner, io.BytesIO(npz_bytes(x=x)), "unlabelled.npz", "Unlabelled"
    )
    with pytest.raises(InputError, match="^Unlabelled has no labels: nested-embedding"):
        request_nested(owner, [ckpt_a], unlabelled, "block1")
    with pytest.raises(InputError, match="at least one checkpoint"):
        request_nested(owner, [], digits, "block1")
    with pytest.raises(InputError, match="'nope' is not in: mlp-seed0"):
        request_nested(owner, [ckpt_a], digits, "nope")
    with pytest.raises(InputError, match="metric"):
        request_nested(owner, [ckpt_a], digits, "block1", metric="manhattan")
    with pytest.raises(InputError, match="no parameter .measure."):
        request_nested(owner, [ckpt_a], digits, "block1", measure="cka/linear")
    other = Workspace.objects.create(name="Other", slug="other")
    elsewhere, _ = ingest_dataset(
        other, owner, io.BytesIO(npz_bytes(x=x, y=np.arange(30) % 3)), "d.npz", "Elsewhere"
    )
    with pytest.raises(InputError, match="same workspace"):
        request_nested(owner, [ckpt_a], elsewhere, "block1")
    assert not Run.objects.filter(kind=Run.Kind.NESTED).exists()


def test_the_demo_trains_and_ingests_its_pair_once_and_asks_for_their_curves(
    owner, workspace, digits, tmp_path
):
    from demo.nested import LAYER, MATRYOSHKA, PLAIN
    from webapp.runs.management.commands.build_demo import Command

    command = Command()
    pair = command._nested_pair(workspace, owner, tmp_path / "first")
    assert set(pair) == {MATRYOSHKA, PLAIN}
    assert all(LAYER in c.layers and c.format == "torchscript" for c in pair.values())
    again = command._nested_pair(workspace, owner, tmp_path / "again")
    assert {k: c.pk for k, c in again.items()} == {k: c.pk for k, c in pair.items()}
    assert not (tmp_path / "again").exists()  # found, not trained again
    run = finished(request_nested(owner, [pair[MATRYOSHKA], pair[PLAIN]], digits, LAYER)[0])
    curves = nested_view(run)["curves"]
    assert [c["checkpoint"]["name"] for c in curves] == [MATRYOSHKA, PLAIN]
    assert all(c["dims"] == [8, 16, 32, 64] for c in curves)


def test_above_the_leave_one_out_limit_queries_search_a_gallery(owner, ckpt_a, digits, monkeypatch):
    import workers.tasks

    monkeypatch.setattr(workers.tasks, "MAX_LOO_SAMPLES", 50)  # the digits fixture has 60
    view = nested_view(finished(request_nested(owner, [ckpt_a], digits, "block1")[0]))
    provenance = view["provenance"]
    assert provenance["protocol"] == "query/gallery" and provenance["n"] == 60
    assert (
        0 < provenance["n_queries"] < 30 and provenance["n_queries"] + provenance["n_gallery"] == 60
    )
    (curve,) = view["curves"]
    assert curve["dims"] == [8, 16, 32] and curve["cka"][-1] == pytest.approx(1.0)
