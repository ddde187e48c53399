"""Nested (Matryoshka) embeddings (analysis/explorer/nested.py): prefix dimensions, the full
prefix equal to the embedding itself, monotone curves where the information sits first, and
agreement with scikit-learn on the probe and the retrieval."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier
from sklearn.metrics import average_precision_score
from sklearn.metrics.pairwise import cosine_distances, euclidean_distances
from sklearn.model_selection import LeaveOneOut, cross_val_predict

from analysis.errors import InputError
from analysis.explorer.geometry import linear_probe_accuracy
from analysis.explorer.nested import nested_quality, prefix_dims
from analysis.measures.compatibility import chance_levels, query_gallery_split, retrieval

SEEDS = [0, 1, 2]


def clustered(seed: int, n: int = 60, d: int = 24, classes: int = 4) -> tuple:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    means = rng.standard_normal((classes, d))
    return means[labels] + 1.5 * rng.standard_normal((n, d)), labels


def test_prefix_dims():
    assert prefix_dims(768) == [8, 16, 32, 64, 128, 256, 512, 768]
    assert prefix_dims(64) == [8, 16, 32, 64]
    assert prefix_dims(9) == [8, 9]
    assert prefix_dims(8) == [8]
    assert prefix_dims(3) == [3]
    assert prefix_dims(1) == [1]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_full_prefix_equals_the_embedding(seed, metric):
    x, labels = clustered(seed)
    query, gallery = query_gallery_split(labels, seed=seed)
    split = nested_quality(x, labels, metric=metric, query_idx=query, gallery_idx=gallery)
    direct = retrieval(x[query], x[gallery], labels[query], labels[gallery], metric=metric)
    assert split.dims[-1] == 24 and split.protocol == "query/gallery"
    assert split.cka[-1] == 1.0
    assert split.mean_ap[-1] == direct.mean_ap
    assert split.top1[-1] == direct.top1 and split.top5[-1] == direct.top5
    assert split.probe_accuracy[-1] == linear_probe_accuracy(x, labels)
    loo = nested_quality(x, labels, metric=metric)
    assert loo.cka[-1] == 1.0 and loo.protocol == "leave-one-out"
    assert loo.probe_accuracy[-1] == split.probe_accuracy[-1]
    # leave-one-out at m = d is each sample retrieving against all the others
    per_query = [
        retrieval(x[[i]], np.delete(x, i, 0), labels[[i]], np.delete(labels, i), metric=metric)
        for i in range(len(x))
    ]
    assert loo.mean_ap[-1] == pytest.approx(np.mean([r.mean_ap for r in per_query]), abs=1e-12)
    assert loo.top1[-1] == pytest.approx(np.mean([r.top1 for r in per_query]), abs=1e-12)
    assert loo.top5[-1] == pytest.approx(np.mean([r.top5 for r in per_query]), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_information_in_the_first_coordinates_gives_rising_curves(seed):
    """Every coordinate carries the class with the same signal-to-noise ratio, scaled down
    geometrically: each further dimension adds information and little distortion, so the
    accuracies rise and level off; CKA to the full embedding rises to 1."""
    rng = np.random.default_rng(seed)
    n, d, classes = 240, 64, 6
    labels = np.repeat(np.arange(classes), n // classes)
    means = rng.standard_normal((classes, d))
    scale = 0.95 ** np.arange(d)
    x = (means[labels] + 1.5 * rng.standard_normal((n, d))) * scale
    result = nested_quality(x, labels)
    assert result.dims == [8, 16, 32, 64]
    for curve in (result.top1, result.mean_ap, result.probe_accuracy):
        assert np.all(np.diff(curve) >= -0.03), curve
        assert curve[-1] > curve[0] + 0.1, curve
    assert np.all(np.diff(result.cka) > 0) and result.cka[-1] == 1.0
    assert result.mean_ap[-1] > 2 * result.chance["mean_ap"]
    assert result.probe_accuracy[-1] > 2 * result.chance["probe"]


def test_cka_of_orthogonal_columns_is_the_cumulative_share():
    """With centred orthogonal columns of norms s_j, CKA(X[:, :m], X) = √(Σ_{j≤m} s_j⁴ / Σ s_j⁴)."""
    rng = np.random.default_rng(0)
    n, d = 50, 20
    q = np.linalg.qr(rng.standard_normal((n, d)) - rng.standard_normal((n, d)).mean(axis=0))[0]
    q = np.linalg.qr(q - q.mean(axis=0))[0]  # centred orthonormal columns
    s = np.linspace(3, 0.5, d)
    x = q * s + 7.0
    labels = np.arange(n) % 3
    result = nested_quality(x, labels, dims=range(1, d + 1))
    expected = np.sqrt(np.cumsum(s**4) / np.sum(s**4))
    np.testing.assert_allclose(result.cka, expected, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_probe_agrees_with_sklearn_leave_one_out(seed):
    """One relative penalty a: sklearn's RidgeClassifier at α = a‖X_c‖²_F of the prefix,
    refitted without each sample, predicts the same classes."""
    x, labels = clustered(seed, n=36, d=12, classes=3)
    a = 1e-2
    result = nested_quality(x, labels, alphas=(a,))
    assert result.dims == [8, 12]
    for m, accuracy in zip(result.dims, result.probe_accuracy, strict=True):
        prefix = x[:, :m]
        alpha = a * np.sum((prefix - prefix.mean(axis=0)) ** 2)
        predicted = cross_val_predict(
            RidgeClassifier(alpha=alpha), prefix, labels, cv=LeaveOneOut()
        )
        assert accuracy == pytest.approx(np.mean(predicted == labels), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_retrieval_agrees_with_sklearn(seed, metric):
    """mAP from sklearn's average_precision_score per query on negated distances, top-k from
    a sort of sklearn's distances: leave-one-out (self dropped) and a query/gallery split."""
    x, labels = clustered(seed, n=40, d=16, classes=4)
    distances = (cosine_distances if metric == "cosine" else euclidean_distances)(x[:, :8])

    def expected(queries, gallery):
        ap, top1, top5 = [], [], []
        for i in queries:
            others = gallery[gallery != i]
            relevant = labels[others] == labels[i]
            ap.append(average_precision_score(relevant, -distances[i, others]))
            ranked = relevant[np.argsort(distances[i, others])]
            top1.append(ranked[0])
            top5.append(ranked[:5].any())
        return np.mean(ap), np.mean(top1), np.mean(top5)

    loo = nested_quality(x, labels, metric=metric)
    everyone = np.arange(len(x))
    np.testing.assert_allclose(
        (loo.mean_ap[0], loo.top1[0], loo.top5[0]), expected(everyone, everyone), atol=1e-12
    )
    query, gallery = query_gallery_split(labels, query_fraction=0.3, seed=seed)
    split = nested_quality(x, labels, metric=metric, query_idx=query, gallery_idx=gallery)
    np.testing.assert_allclose(
        (split.mean_ap[0], split.top1[0], split.top5[0]), expected(query, gallery), atol=1e-12
    )
    assert split.chance == {
        **chance_levels(labels[query], labels[gallery]),
        "probe": np.bincount(labels).max() / len(labels),
    }


def test_leave_one_out_chance_is_the_mean_over_queries():
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2 + [3])
    x = np.random.default_rng(0).standard_normal((len(labels), 4))
    result = nested_quality(x, labels)
    per_query = [
        chance_levels(labels[[i]], np.delete(labels, i)) for i in range(len(labels)) if i != 10
    ]
    for key in ("top1", "top5", "mean_ap"):
        assert result.chance[key] == pytest.approx(np.mean([c[key] for c in per_query]), abs=1e-12)
    assert result.chance["probe"] == 5 / 11
    assert result.n_queries == 10 and result.n_gallery == 10
    assert result.warnings == ["1 label(s) occur once: their samples are left out as queries"]


def test_small_width_and_json():
    x, labels = clustered(0, d=3)
    result = nested_quality(x, labels)
    assert result.dims == [3] and result.cka == [1.0]
    payload = json.loads(json.dumps(result.to_json()))
    assert payload["dims"] == [3] and set(payload["chance"]) == {"top1", "top5", "mean_ap", "probe"}
    assert all(len(payload[key]) == 1 for key in ("top1", "top5", "mean_ap", "probe_accuracy"))


def test_refusals():
    x, labels = clustered(0)
    with pytest.raises(InputError, match="two classes"):
        nested_quality(x, np.zeros(len(x)))
    with pytest.raises(InputError, match="increase"):
        nested_quality(x, labels, dims=[16, 8])
    with pytest.raises(InputError, match="increase"):
        nested_quality(x, labels, dims=[8, 25])
    with pytest.raises(InputError, match="both"):
        nested_quality(x, labels, query_idx=np.arange(5))
    with pytest.raises(InputError, match="both query and gallery"):
        nested_quality(x, labels, query_idx=np.arange(5), gallery_idx=np.arange(3, 60))
    with pytest.raises(InputError, match="once"):
        nested_quality(x[:6], np.arange(6))
    zero = x.copy()
    zero[3, :8] = 0
    with pytest.raises(InputError, match="prefix of 8 dimensions"):
        nested_quality(zero, labels)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_leave_one_out_breaks_ties_like_retrieval(metric):
    """A discrete embedding with many equal distances (duplicated rows): leave-one-out ranks
    ties by index, exactly as retrieval against the gallery of the other samples does."""
    rng = np.random.default_rng(0)
    x = rng.integers(1, 3, size=(40, 3)).astype(float)
    labels = rng.integers(0, 3, 40)
    result = nested_quality(x, labels, metric=metric)
    per_query = [
        retrieval(x[[i]], np.delete(x, i, 0), labels[[i]], np.delete(labels, i), metric=metric)
        for i in range(len(x))
    ]
    assert result.mean_ap == [pytest.approx(np.mean([r.mean_ap for r in per_query]), abs=1e-12)]
    assert result.top1 == [pytest.approx(np.mean([r.top1 for r in per_query]), abs=1e-12)]
    assert result.top5 == [pytest.approx(np.mean([r.top5 for r in per_query]), abs=1e-12)]
