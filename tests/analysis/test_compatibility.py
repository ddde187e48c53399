"""Compatibility between model versions (analysis/measures/compatibility.py): retrieval quality
against an
independent implementation, a hand-computed series, the BCT criteria on models built to be
compatible or not, invariances, blocking, ties, the query/gallery split and bad input; chance
levels against every ranking enumerated; the bootstrap's coverage, its agreement with scipy's,
and the verdict it gives."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import bootstrap, ortho_group
from sklearn.metrics import average_precision_score

from analysis.errors import InputError
from analysis.measures.compatibility import (
    ROLES,
    bootstrap_means,
    chance_levels,
    compatibility,
    percentile_interval,
    query_gallery_split,
    retrieval,
    verdict,
)

SEEDS = [0, 1, 2, 3, 4]
METRICS = ["cosine", "euclidean"]


def clustered(rng: np.random.Generator, n_classes: int, per_class: int, d: int, noise: float):
    """Samples around random class centres: (embeddings, labels)."""
    labels = np.repeat(np.arange(n_classes), per_class)
    centres = rng.standard_normal((n_classes, d))
    return centres[labels] + noise * rng.standard_normal((labels.size, d)), labels


def reference(queries, gallery, query_labels, gallery_labels, metric, k=(1, 5)):
    """Top-k by brute-force sorting and mAP by sklearn's average_precision_score per query,
    over the queries that have a relevant gallery item."""
    distances = cdist(queries, gallery, metric=metric)
    top = {kk: [] for kk in k}
    precisions = []
    for row, label in zip(distances, query_labels, strict=True):
        relevant = gallery_labels == label
        if not relevant.any():
            continue
        nearest = np.argsort(row, kind="stable")
        for kk in k:
            top[kk].append(relevant[nearest[:kk]].any())
        precisions.append(average_precision_score(relevant, -row))
    return {kk: np.mean(hits) for kk, hits in top.items()}, np.mean(precisions)


# --- retrieval ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", METRICS)
def test_retrieval_agrees_with_independent_implementation(seed, metric):
    rng = np.random.default_rng(seed)
    queries = rng.standard_normal((40, 8)) + 0.5
    gallery = rng.standard_normal((120, 8)) + 0.5
    query_labels = rng.integers(0, 6, 40)  # label 5 has no gallery item: left out
    gallery_labels = rng.integers(0, 5, 120)
    result = retrieval(queries, gallery, query_labels, gallery_labels, metric=metric)
    top, mean_ap = reference(queries, gallery, query_labels, gallery_labels, metric)
    assert result.top1 == pytest.approx(top[1], abs=1e-12)
    assert result.top5 == pytest.approx(top[5], abs=1e-12)
    assert result.mean_ap == pytest.approx(mean_ap, abs=1e-12)
    np.testing.assert_array_equal(result.has_relevant, query_labels < 5)
    assert (result.n_queries, result.n_gallery) == (40, 120)
    nearest = cdist(queries, gallery, metric=metric).argmin(axis=1)
    np.testing.assert_array_equal(result.correct_top1, gallery_labels[nearest] == query_labels)


def test_hand_computed_retrieval():
    """1-D points: AP of the query at 1.8 (label A) is (1/2 + 2/3) / 2 — its ranking is
    B(1), A(3), A(0), C(10)."""
    gallery = np.array([[0.0], [1.0], [3.0], [10.0]])
    queries = np.array([[0.2], [0.9], [1.8]])
    result = retrieval(queries, gallery, list("ABA"), list("ABAC"), metric="euclidean")
    assert result.top1 == pytest.approx(2 / 3)
    assert result.top5 == 1.0
    assert result.mean_ap == pytest.approx((5 / 6 + 1 + 7 / 12) / 3)
    np.testing.assert_array_equal(result.correct_top1, [True, True, False])


@pytest.mark.parametrize("metric", METRICS)
def test_equal_distances_are_ranked_by_gallery_index(metric):
    queries = np.array([[1.0, 0.0]])
    gallery = np.array([[1.0, 1.0], [1.0, -1.0]])  # equally near for both metrics
    first_wins = retrieval(queries, gallery, ["A"], ["A", "B"], metric=metric)
    second_wins = retrieval(queries, gallery, ["A"], ["B", "A"], metric=metric)
    assert (first_wins.top1, first_wins.mean_ap) == (1.0, 1.0)
    assert (second_wins.top1, second_wins.mean_ap) == (0.0, 0.5)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("block_size", [1, 7, None])
def test_duplicated_gallery_items_are_ranked_by_index(metric, block_size):
    """Queries that are copies of gallery items, each item present twice under two labels:
    the copy with the lower index comes first, whatever round-off the matrix product makes."""
    rng = np.random.default_rng(0)
    items = rng.standard_normal((50, 16)) + 1e3  # a large offset: many round-off near-ties
    gallery = np.concatenate([items, items])
    labels = np.arange(50)
    first = retrieval(items, gallery, labels, np.concatenate([labels, labels + 50]),
                      metric=metric, block_size=block_size)  # fmt: skip
    second = retrieval(items, gallery, labels, np.concatenate([labels + 50, labels]),
                       metric=metric, block_size=block_size)  # fmt: skip
    assert (first.top1, first.mean_ap) == (1.0, 1.0)
    assert (second.top1, second.top5, second.mean_ap) == (0.0, 1.0, 0.5)


def test_mirror_images_at_equal_distance_are_ranked_by_index():
    """Each query (c, c) has as nearest items two mirror images (c + a, c + b) and (c + b, c + a):
    exactly as far, but a matrix product on shifted rows rounds their distances apart (a plain
    sort gets about a quarter of these ties wrong); the one with the lower index comes first."""
    rng = np.random.default_rng(0)
    c = 10.0 * np.arange(30) + rng.uniform(0, 1, 30)
    queries = np.c_[c, c]
    offsets = rng.uniform(-1, 1, (30, 2))
    gallery = np.concatenate([queries + offsets, queries + offsets[:, ::-1], [[1e3, -7e2]]])
    labels = np.arange(30)
    first = retrieval(queries, gallery, labels, np.r_[labels, labels + 30, -1], metric="euclidean")
    second = retrieval(queries, gallery, labels, np.r_[labels + 30, labels, -1], metric="euclidean")
    assert (first.top1, first.mean_ap) == (1.0, 1.0)
    assert (second.top1, second.top5, second.mean_ap) == (0.0, 1.0, 0.5)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", METRICS)
def test_block_size_does_not_change_the_result(seed, metric):
    rng = np.random.default_rng(seed)
    x, labels = clustered(rng, 6, 20, 10, noise=1.5)
    whole = retrieval(x[:37], x[37:], labels[:37], labels[37:], metric=metric, block_size=37)
    for block_size in (1, 5, 36, None):
        part = retrieval(x[:37], x[37:], labels[:37], labels[37:], metric=metric,
                         block_size=block_size)  # fmt: skip
        assert (part.top1, part.top5, part.mean_ap) == (whole.top1, whole.top5, whole.mean_ap)
        np.testing.assert_array_equal(part.correct_top1, whole.correct_top1)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", METRICS)
def test_invariant_to_rotation_and_scaling_of_both_sides(seed, metric):
    rng = np.random.default_rng(seed)
    x, labels = clustered(rng, 5, 30, 12, noise=1.5)
    q, g, ql, gl = x[:50], x[50:], labels[:50], labels[50:]
    base = retrieval(q, g, ql, gl, metric=metric)
    rotation = ortho_group.rvs(12, random_state=seed)
    shift = rng.standard_normal(12) if metric == "euclidean" else 0.0  # translation: Euclidean
    for scale in (1.0, 3.7, 1e-3):
        moved = retrieval(scale * (q @ rotation) + shift, scale * (g @ rotation) + shift, ql, gl,
                          metric=metric)  # fmt: skip
        assert moved.top1 == pytest.approx(base.top1, abs=1e-12)
        assert moved.top5 == pytest.approx(base.top5, abs=1e-12)
        assert moved.mean_ap == pytest.approx(base.mean_ap, abs=1e-12)
        np.testing.assert_array_equal(moved.correct_top1, base.correct_top1)


def test_cosine_ignores_the_length_of_each_sample():
    rng = np.random.default_rng(0)
    x, labels = clustered(rng, 5, 30, 12, noise=1.5)
    lengths = rng.uniform(0.1, 10.0, (150, 1))
    base = retrieval(x[:50], x[50:], labels[:50], labels[50:])
    scaled = retrieval(x[:50] * lengths[:50], x[50:] * lengths[50:], labels[:50], labels[50:])
    assert scaled.mean_ap == pytest.approx(base.mean_ap, abs=1e-12)
    np.testing.assert_array_equal(scaled.correct_top1, base.correct_top1)


# --- compatibility ------------------------------------------------------------------------

# Samples g0 q0 g1 q1 g2 q2 g3 on a line (second coordinate 0); queries at positions 1, 3, 5.
HAND_LABELS = np.array(list("AABBAAC"))
HAND_QUERIES, HAND_GALLERY = np.array([1, 3, 5]), np.array([0, 2, 4, 6])
HAND_MODELS = [
    ("old", [0.0, 0.2, 1.0, 0.9, 3.0, 1.8, 10.0]),  # query 2 (at 1.8) is nearest to B
    ("new", [0.0, 0.2, 0.5, 0.4, 3.0, 2.6, 10.0]),  # query 1 (at 0.4) is nearest to old A
    ("newer", [0.0, 0.2, 1.0, 0.9, 3.0, 2.4, 10.0]),  # the old gallery, every query right
]


def hand_series(criterion: str):
    embeddings = [(name, np.c_[xs, np.zeros(7)]) for name, xs in HAND_MODELS]
    return compatibility(embeddings, HAND_LABELS, HAND_QUERIES, HAND_GALLERY,
                         metric="euclidean", criterion=criterion)  # fmt: skip


def test_hand_computed_series():
    """Worked by hand from the rankings: e.g. M(new, old) for query 1 at 0.4 ranks
    A(0), B(1), A(3), C(10), so it is wrong at top-1 with AP 1/2."""
    result = hand_series("top1")
    np.testing.assert_allclose(
        result.top1, [[2 / 3, 1, 2 / 3], [2 / 3, 1, 2 / 3], [1, 1, 1]], atol=1e-15
    )
    assert result.top5 == [[1.0] * 3] * 3  # 4 gallery items: every relevant one is in the top 5
    np.testing.assert_allclose(
        result.mean_ap, np.array([[29, 32, 29], [26, 32, 26], [32, 32, 32]]) / 36, atol=1e-15
    )
    assert result.ecc == {(1, 0): False, (2, 0): True, (2, 1): False}
    assert result.update_gain[(1, 0)] == pytest.approx(0.0, abs=1e-15)
    assert result.update_gain[(2, 0)] == pytest.approx(1.0)
    assert result.update_gain[(2, 1)] is None  # M(newer, newer) = M(new, new)
    assert result.ac == pytest.approx(1 / 3)
    assert result.am == pytest.approx((2 / 3 + 2 / 3 + 1 + 1 + 1 + 1) / 6)
    assert {key: value.tolist() for key, value in result.flips.items()} == {
        (1, 0): [1],
        (2, 0): [],
        (2, 1): [],
    }
    assert (result.names, result.n_queries, result.n_gallery) == (["old", "new", "newer"], 3, 4)
    assert result.warnings == []


def test_hand_computed_series_by_mean_ap():
    result = hand_series("mean_ap")
    assert result.criterion == "mean_ap"
    assert result.ecc == {(1, 0): False, (2, 0): True, (2, 1): False}
    assert result.update_gain[(1, 0)] == pytest.approx(-1.0)
    assert result.update_gain[(2, 0)] == pytest.approx(1.0)
    assert result.ac == pytest.approx(1 / 3)
    assert result.am == pytest.approx((29 + 26 + 32 + 32 + 32 + 32) / 36 / 6)
    assert result.flips[(1, 0)].tolist() == [1]  # flips are by top-1 whatever the criterion


@pytest.mark.parametrize("criterion", ["top1", "top5", "mean_ap"])
def test_identical_models_are_not_strictly_compatible(criterion):
    rng = np.random.default_rng(0)
    x, labels = clustered(rng, 5, 20, 8, noise=1.5)
    query, gallery = query_gallery_split(labels, seed=0)
    result = compatibility([("a", x), ("b", x.copy()), ("c", x)], labels, query, gallery,
                           criterion=criterion)  # fmt: skip
    for table in (result.top1, result.top5, result.mean_ap):
        assert len({value for row in table for value in row}) == 1
    assert result.ecc == {(1, 0): False, (2, 0): False, (2, 1): False}
    assert set(result.update_gain.values()) == {None}
    assert result.ac == 0.0
    assert result.am == getattr(result, criterion)[0][0]
    assert all(flips.size == 0 for flips in result.flips.values())


@pytest.mark.parametrize("seed", SEEDS)
def test_rotated_model_is_incompatible(seed):
    """A new model that is the old one rotated retrieves as well from its own gallery, but its
    queries cannot search the old gallery (BCT's motivating failure)."""
    rng = np.random.default_rng(seed)
    x, labels = clustered(rng, 8, 25, 16, noise=0.3)
    rotated = x @ ortho_group.rvs(16, random_state=seed)
    query, gallery = query_gallery_split(labels, seed=seed)
    result = compatibility([("old", x), ("new", rotated)], labels, query, gallery)
    assert result.top1[0][0] > 0.9
    assert result.top1[1][1] == pytest.approx(result.top1[0][0])
    assert result.mean_ap[1][1] == pytest.approx(result.mean_ap[0][0], abs=1e-12)
    assert result.top1[1][0] < 0.5 and result.top1[0][1] < 0.5
    assert result.ecc == {(1, 0): False}
    assert result.update_gain[(1, 0)] is None  # no gain on the own gallery: 0 / 0
    assert result.ac == 0.0
    assert result.flips[(1, 0)].size > 0.5 * query.size


@pytest.mark.parametrize("seed", SEEDS)
def test_better_separated_model_close_to_the_old_one_is_compatible(seed):
    """The new model is the old one, pulled towards its class centres, plus a little noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((10, 16))
    labels = np.repeat(np.arange(10), 30)
    old = centres[labels] + 2.0 * rng.standard_normal((300, 16))
    new = old + centres[labels] + 0.05 * rng.standard_normal((300, 16))
    query, gallery = query_gallery_split(labels, seed=seed)
    for criterion in ("top1", "mean_ap"):
        result = compatibility([("old", old), ("new", new)], labels, query, gallery,
                               criterion=criterion)  # fmt: skip
        c = getattr(result, criterion)
        assert c[0][0] < c[1][0] < c[1][1]
        assert result.ecc == {(1, 0): True}
        assert 0 < result.update_gain[(1, 0)] <= 1
        assert result.ac == 1.0
        assert result.am == pytest.approx((c[0][0] + c[1][0] + c[1][1]) / 3)


def test_different_widths_are_not_cross_compared():
    rng = np.random.default_rng(0)
    x, labels = clustered(rng, 4, 10, 6, noise=0.5)
    wide = np.c_[x, rng.standard_normal((40, 2))]
    query, gallery = query_gallery_split(labels, seed=0)
    result = compatibility([("a", x), ("b", wide), ("c", x)], labels, query, gallery)
    assert result.top1[1][0] is None and result.top1[0][1] is None
    assert result.mean_ap[2][1] is None and result.top5[1][2] is None
    assert all(result.top1[i][i] is not None for i in range(3))
    assert result.top1[2][0] == result.top1[0][0]
    assert result.ecc == {(1, 0): False, (2, 0): False, (2, 1): False}
    assert result.update_gain[(1, 0)] is None and result.update_gain[(2, 1)] is None
    assert set(result.flips) == {(2, 0)}
    assert result.ac == 0.0
    c = result.top1
    assert result.am == pytest.approx((c[0][0] + c[1][1] + c[2][0] + c[2][2]) / 4)
    assert result.warnings == [
        "'b' (d=8) and 'a' (d=6) differ in width: neither can search the other's gallery, "
        "so the pair is not compatible",
        "'c' (d=6) and 'b' (d=8) differ in width: neither can search the other's gallery, "
        "so the pair is not compatible",
        "AM averages the 4 cells of the lower triangle that exist",
    ]


def test_queries_without_relevant_items_are_left_out_and_reported():
    rng = np.random.default_rng(0)
    x, labels = clustered(rng, 4, 10, 6, noise=1.0)
    labels[[0, 1]] = [7, 8]  # queries whose label no gallery item has
    query, gallery = np.arange(0, 40, 3), np.setdiff1d(np.arange(40), np.arange(0, 40, 3))
    result = compatibility([("a", x)], labels, query, gallery)
    assert result.warnings == [
        "1 of 14 queries have no gallery item with their label: they are left out of every score"
    ]
    kept = query[1:]
    alone = retrieval(x[kept], x[gallery], labels[kept], labels[gallery])
    assert (result.top1[0][0], result.mean_ap[0][0]) == (alone.top1, alone.mean_ap)
    assert result.ac is None and result.am == result.top1[0][0]


def test_to_json_round_trips():
    result = hand_series("top1")
    stored = json.loads(json.dumps(result.to_json()))
    assert stored["ecc"] == {"1,0": False, "2,0": True, "2,1": False}
    assert stored["flips"] == {"1,0": [1], "2,0": [], "2,1": []}
    assert stored["update_gain"]["2,1"] is None
    assert stored["top1"] == result.top1 and stored["mean_ap"] == result.mean_ap
    assert (stored["ac"], stored["am"], stored["criterion"]) == (result.ac, result.am, "top1")
    assert (stored["names"], stored["n_queries"], stored["n_gallery"]) == (result.names, 3, 4)


def test_progress_reaches_one():
    seen = []
    embeddings = [(name, np.c_[xs, np.ones(7)]) for name, xs in HAND_MODELS]
    compatibility(embeddings, HAND_LABELS, HAND_QUERIES, HAND_GALLERY, progress=seen.append)
    assert len(seen) == 9 and seen == sorted(seen) and seen[-1] == 1.0


# --- query / gallery split ----------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_split_is_disjoint_covering_and_every_query_has_a_relevant_item(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 40, 500)  # some labels have one sample, or none
    query, gallery = query_gallery_split(labels, seed=seed)
    np.testing.assert_array_equal(np.sort(np.concatenate([query, gallery])), np.arange(500))
    assert np.all(np.diff(query) > 0) and np.all(np.diff(gallery) > 0)
    assert set(labels[query]) <= set(labels[gallery])
    counts = np.bincount(labels, minlength=40)
    assert not np.isin(labels[query], np.flatnonzero(counts < 2)).any()
    assert 0.15 * 500 < query.size < 0.25 * 500
    assert query.dtype.kind == "i" and gallery.dtype.kind == "i"


def test_split_takes_the_exact_fraction_when_it_divides():
    labels = np.repeat(np.arange(7), 10)
    query, _ = query_gallery_split(labels, query_fraction=0.3, seed=3)
    assert np.bincount(labels[query]).tolist() == [3] * 7


def test_split_is_deterministic_per_seed():
    labels = np.repeat(np.arange(10), 12)
    first = query_gallery_split(labels, seed=5)
    again = query_gallery_split(labels, seed=5)
    other = query_gallery_split(labels, seed=6)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_split_respects_roles():
    labels = np.array([0, 0, 1, 1, 2, 2, 0])
    roles = np.array(["query", "gallery", "gallery", "query", "query", "", "gallery"])
    query, gallery = query_gallery_split(labels, roles, seed=1)
    assert query.tolist() == [0, 3, 4] and gallery.tolist() == [1, 2, 6]
    assert ROLES == ("query", "gallery")


@pytest.mark.parametrize(
    ("labels", "roles", "kwargs", "message"),
    [
        ([0, 0, 1], ["query", "gallery"], {}, "roles has 2 entries but labels has 3"),
        ([0, 0, 1], ["gallery"] * 3, {}, "no sample has the role 'query'"),
        ([0, 1], ["query", "gallery"], {}, "no query has a gallery item with its label"),
        ([0, 1, 2, 3], None, {}, "the split drew no query from 4 samples"),
        ([0, 0, 1, 1], None, {"query_fraction": 1.0}, "query_fraction must lie strictly"),
        ([[0, 0]], None, {}, "labels must be a 1-D array"),
        ([3], None, {}, "a query/gallery split needs at least 2 samples, got 1"),
        ([0.0, np.nan, 1.0], None, {}, "labels contain NaN or Inf"),
    ],
)
def test_split_refuses_bad_input(labels, roles, kwargs, message):
    with pytest.raises(InputError, match=message):
        query_gallery_split(np.array(labels), None if roles is None else np.array(roles), **kwargs)


# --- bad input ----------------------------------------------------------------------------


def test_retrieval_refuses_bad_input():
    rng = np.random.default_rng(0)
    q, g = rng.standard_normal((4, 3)), rng.standard_normal((6, 3))
    ql, gl = [0, 1, 0, 1], [0, 1, 0, 1, 0, 1]
    bad_q = q.copy()
    bad_q[2, 1] = np.nan
    zero_g = g.copy()
    zero_g[3] = 0.0
    cases = [
        ((bad_q, g, ql, gl), {}, "queries: activations contain NaN or Inf"),
        ((q, g[:, :2], ql, gl), {}, "queries have width 3 and the gallery width 2"),
        ((q, g, ql[:3], gl), {}, "query_labels has 3 entries but queries has 4"),
        ((q, g, ql, gl[:5]), {}, "gallery_labels has 5 entries but the gallery has 6"),
        ((q, g, [2] * 4, gl), {}, "no query has a gallery item with its label"),
        ((q, g, ql, gl), {"metric": "manhattan"}, "unknown retrieval metric 'manhattan'"),
        ((q, zero_g, ql, gl), {}, r"gallery: 1 sample\(s\) are all zeros \(first: row 3\)"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            retrieval(*args, **kwargs)


def test_compatibility_refuses_bad_input():
    x = np.c_[np.linspace(0, 1, 7), np.ones(7)]
    bad = x.copy()
    bad[4, 0] = np.inf
    ok = (HAND_LABELS, HAND_QUERIES, HAND_GALLERY)
    cases = [
        (([("a", x), ("b", bad)], *ok), {}, "b: activations contain NaN or Inf"),
        (([("a", x), ("b", x[:6])], *ok), {}, "b: 6 rows, but there are 7 labels"),
        (([("a", x)], *ok), {"criterion": "recall"}, "unknown criterion 'recall'"),
        (([("a", x)], *ok), {"metric": "l1"}, "unknown retrieval metric 'l1'"),
        (([], *ok), {}, "choose at least one model"),
        (([("a", x)], HAND_LABELS[:6], *ok[1:]), {}, r"gallery indices must lie in \[0, 6\)"),
        (([("a", x)], HAND_LABELS, [1, 3, 4], HAND_GALLERY), {}, r"1 sample\(s\) are both"),
        (([("a", x)], HAND_LABELS, [1, 1], HAND_GALLERY), {}, "lists a sample more than once"),
        (([("a", x)], HAND_LABELS, [], HAND_GALLERY), {}, "must be a non-empty 1-D array"),
        (([("a", x)], HAND_LABELS, [1.0, 3.0], HAND_GALLERY), {}, "of sample indices"),
        (([("a", x)], list("ABCDEFG"), *ok[1:]), {}, "no query has a gallery item"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            compatibility(*args, **kwargs)


def test_no_update_gain_when_the_new_model_is_worse_on_its_own_gallery():
    """The gain is a share of the new model's own improvement; a worse new model has none,
    and a ratio of two negative differences would read as a large positive gain."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 25)
    centres = rng.standard_normal((4, 8)) * 5
    old = centres[labels] + rng.standard_normal((100, 8))
    new = old + 6 * rng.standard_normal((100, 8))  # the same space, much noisier
    query, gallery = query_gallery_split(labels, seed=0)
    result = compatibility([("old", old), ("new", new)], labels, query, gallery)
    assert result.mean_ap[1][1] < result.mean_ap[0][0] and result.top1[1][1] < result.top1[0][0]
    assert result.update_gain[(1, 0)] is None and result.ecc[(1, 0)] is False


# --- chance levels, bootstrap intervals, verdicts -------------------------------------------


def random_ranking_expectations(relevance: list[bool]) -> tuple[float, float, float]:
    """Mean top-1, top-5 and AP over every ordering of a gallery with this relevance."""
    hits1, hits5, precisions = [], [], []
    for order in itertools.permutations(relevance):
        ranked = np.array(order)
        hits1.append(ranked[0])
        hits5.append(ranked[:5].any())
        ranks = np.flatnonzero(ranked) + 1
        precisions.append(np.mean(np.arange(1, ranks.size + 1) / ranks))
    return float(np.mean(hits1)), float(np.mean(hits5)), float(np.mean(precisions))


def test_chance_levels_are_the_means_over_every_ranking():
    """Galleries of 7 items (5040 orderings): queries with 1, 2, 3 and 7 relevant items; a
    query with none is left out, as the scores leave it out."""
    gallery = np.array(list("ABBCCCD"))
    gallery_all = np.array(list("EEEEEEE"))
    cases = [(["A"], gallery), (["B"], gallery), (["C"], gallery), (["E"], gallery_all)]
    for queries, g in cases:
        expected = random_ranking_expectations(list(g == queries[0]))
        got = chance_levels(np.array(queries + ["Z"]), g)
        np.testing.assert_allclose([got["top1"], got["top5"], got["mean_ap"]], expected, atol=1e-12)
    mixed = chance_levels(np.array(list("ABC")), gallery)
    singles = [chance_levels(np.array([q]), gallery) for q in "ABC"]
    for key in ("top1", "top5", "mean_ap"):  # the mean over the queries
        assert mixed[key] == pytest.approx(np.mean([c[key] for c in singles]))


def test_chance_levels_of_a_gallery_of_one():
    assert chance_levels(np.array(["A"]), np.array(["A"])) == {
        "top1": 1.0,
        "top5": 1.0,
        "mean_ap": 1.0,
    }


def test_bootstrap_means_of_identical_rows_are_identical_and_seeded():
    rng = np.random.default_rng(0)
    row = rng.random(50)
    means = bootstrap_means(np.stack([row, row, np.full(50, 0.3)]), 200, seed=4)
    assert means.shape == (200, 3)
    np.testing.assert_array_equal(means[:, 0], means[:, 1])  # paired: the same resamples
    np.testing.assert_allclose(means[:, 2], 0.3)
    np.testing.assert_array_equal(
        means, bootstrap_means(np.stack([row, row, np.full(50, 0.3)]), 200, 4)
    )
    assert not np.array_equal(means[:, 0], bootstrap_means(row[None], 200, 5)[:, 0])
    assert means[:, 0].mean() == pytest.approx(row.mean(), abs=3 * row.std() / np.sqrt(50 * 200))


def test_bootstrap_interval_agrees_with_scipy():
    """scipy.stats.bootstrap (percentile method) draws other resamples: the endpoints agree
    within Monte Carlo error."""
    rng = np.random.default_rng(1)
    hits = (rng.random(400) < 0.7).astype(float)
    ours = percentile_interval(bootstrap_means(hits[None], 4000, seed=0)[:, 0])
    theirs = bootstrap((hits,), np.mean, n_resamples=4000, method="percentile", random_state=0)
    np.testing.assert_allclose(ours, theirs.confidence_interval, atol=0.006)
    assert ours[1] - ours[0] == pytest.approx(2 * 1.96 * hits.std() / np.sqrt(400), rel=0.08)


def test_bootstrap_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    p, n, trials = 0.8, 300, 400
    covered = 0
    for trial in range(trials):
        hits = (rng.random(n) < p).astype(float)
        low, high = percentile_interval(bootstrap_means(hits[None], 1000, seed=trial)[:, 0])
        covered += low <= p <= high
    # binomial sd of the share at 95 %: 0.011; a 90 % or 99 % interval would fall outside
    assert 0.92 <= covered / trials <= 0.975


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0.01, 0.2, "yes"), (-0.2, -0.01, "no"), (-0.1, 0.1, "not distinguishable"),
     (0.0, 0.0, "not distinguishable"), (0.0, 0.3, "not distinguishable")],
)  # fmt: skip
def test_verdict(low, high, expected):
    assert verdict(low, high) == expected


def test_three_queries_cannot_tell_an_update_from_no_change():
    """The hand series: the newest model gets query 2 right where the old one did not
    (M 1 against 2/3: ECC holds), but 3 queries miss that one a third of the time."""
    result = hand_series("top1")
    assert result.ecc[(2, 0)] is True and result.difference[(2, 0)] == pytest.approx(1 / 3)
    assert result.difference_ci[(2, 0)][0] == 0.0
    assert result.verdict[(2, 0)] == "not distinguishable"
    assert result.verdict[(1, 0)] == "not distinguishable"  # 0: nothing changed at top-1
    assert (result.n_bootstrap, result.seed) == (1000, 0)


@pytest.mark.parametrize("criterion", ["top1", "mean_ap"])
def test_identical_models_are_not_distinguishable(criterion):
    rng = np.random.default_rng(0)
    x, labels = clustered(rng, 5, 20, 8, noise=1.5)
    query, gallery = query_gallery_split(labels, seed=0)
    result = compatibility([("a", x), ("b", x.copy())], labels, query, gallery, criterion=criterion)
    assert result.difference_ci[(1, 0)] == (0.0, 0.0)
    assert result.verdict[(1, 0)] == "not distinguishable"
    assert result.update_gain_ci[(1, 0)] is None  # no improvement to take a share of
    assert result.ci_low[0][0] < getattr(result, criterion)[0][0] < result.ci_high[0][0]


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_clear_updates_get_clear_verdicts(seed):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((10, 16))
    labels = np.repeat(np.arange(10), 30)
    old = centres[labels] + 2.0 * rng.standard_normal((300, 16))
    better = old + centres[labels] + 0.05 * rng.standard_normal((300, 16))
    rotated = old @ ortho_group.rvs(16, random_state=seed)
    query, gallery = query_gallery_split(labels, seed=seed)
    models = [("old", old), ("better", better), ("rotated", rotated)]
    result = compatibility(models, labels, query, gallery, criterion="mean_ap", seed=seed)
    assert result.verdict[(1, 0)] == "yes" and result.verdict[(2, 0)] == "no"
    low, high = result.difference_ci[(1, 0)]
    assert 0 < low <= result.difference[(1, 0)] <= high
    gain_low, gain_high = result.update_gain_ci[(1, 0)]
    assert gain_low <= result.update_gain[(1, 0)] <= gain_high
    assert result.ac_ci[0] <= result.ac <= result.ac_ci[1]
    assert result.am_ci[0] <= result.am <= result.am_ci[1]
    for i in range(3):
        for j in range(3):
            assert result.ci_low[i][j] <= result.mean_ap[i][j] <= result.ci_high[i][j]
    chance = result.chance  # 10 balanced classes, 24 gallery items each of 240
    assert chance["top1"] == pytest.approx(0.1)
    assert chance["top1"] < chance["mean_ap"] < chance["top5"]
    assert chance["mean_ap"] < result.mean_ap[0][0]


def test_intervals_are_seeded():
    a, b, c = (
        compatibility(
            [(n, np.c_[xs, np.zeros(7)]) for n, xs in HAND_MODELS],
            HAND_LABELS,
            HAND_QUERIES,
            HAND_GALLERY,
            metric="euclidean",
            seed=s,
            n_bootstrap=50,
        )  # fmt: skip
        for s in (3, 3, 4)
    )
    assert a.ci_low == b.ci_low and a.am_ci == b.am_ci and a.n_bootstrap == 50
    assert (a.am_ci, a.ci_low) != (c.am_ci, c.ci_low)
