"""Unit matching (analysis/measures/units.py): correlations, best match, Hungarian matching, the
measure."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy.stats import ortho_group
from sklearn.linear_model import lasso_path as sklearn_lasso_path

from analysis.errors import InputError
from analysis.measures.engine import compare_layers
from analysis.measures.units import (
    UnitMatching,
    best_match,
    constant_units,
    heldout_prediction,
    hungarian_match,
    lasso_path,
    semi_match,
    share_above,
    split_samples,
    unit_correlations,
    unit_matching_report,
)

SEEDS = [0, 1, 2, 3, 4]


def score(x: np.ndarray, y: np.ndarray) -> float:
    measure = UnitMatching()
    return measure.score(measure.prepare(x), measure.prepare(y))


# --- correlations ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_correlations_match_numpy_corrcoef(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((30, 4)) * 100 + 1e4
    y = (x[:, :2] @ rng.standard_normal((2, 6)) + rng.standard_normal((30, 6))).astype(np.float32)
    expected = np.corrcoef(x.T, y.astype(np.float64).T)[:4, 4:]
    np.testing.assert_allclose(unit_correlations(x, y), expected, atol=1e-10)
    assert unit_correlations(x, y).dtype == np.float64


@pytest.mark.parametrize("value", [0.0, 0.1, 7.77])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_units_correlate_zero_and_are_reported(value, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4)).astype(dtype)
    x[:, 2] = value
    y = rng.standard_normal((20, 3))
    y[:, 0] = value
    corr = unit_correlations(x, y)
    assert np.isfinite(corr).all()
    assert (corr[2] == 0).all() and (corr[:, 0] == 0).all()
    assert list(constant_units(x)) == [2] and list(constant_units(y)) == [0]
    measure = UnitMatching()
    a, b = measure.prepare(x, "x"), measure.prepare(y, "y")
    result = measure.matching(a, b)
    assert list(result.constant_a) == [2] and list(result.constant_b) == [0]
    assert np.isfinite(result.value)
    assert measure.estimator(a, b).endswith(
        "1 constant unit in X (correlation 0); 1 constant unit in Y (correlation 0)"
    )


def test_layer_of_constant_units_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="dead_layer.*constant"):
        compare_layers(
            UnitMatching(),
            [("x", rng.standard_normal((10, 3)))],
            [("dead_layer", np.ones((10, 4)))],
        )


# --- matching -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_permuted_units_are_recovered(seed):
    """Y's unit j is X's unit perm[j] (rescaled and shifted): the matching finds it, value 1."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((50, 12))
    perm = rng.permutation(12)
    y = x[:, perm] * rng.uniform(0.1, 10, size=12) + rng.normal(0, 5, size=12)
    rows, cols, matched = hungarian_match(unit_correlations(x, y))
    assert (rows == np.arange(12)).all()
    assert (perm[cols] == rows).all()
    np.testing.assert_allclose(matched, 1.0, atol=1e-12)
    assert score(x, y) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_rotation_breaks_the_matching(seed):
    """Same information, rotated basis: CKA would say 1, unit matching must not."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((200, 10))
    rotated = x @ ortho_group.rvs(10, random_state=seed)
    assert score(x, rotated) < 0.8
    assert "orthogonal" not in UnitMatching.invariant_to


def test_sign_is_kept():
    """Anti-correlated units are not partners: Y = −X is no match, unlike with |correlation|."""
    x = np.random.default_rng(0).standard_normal((20, 5))
    rows, cols, _ = hungarian_match(unit_correlations(x, -x))
    assert not (rows == cols).any()
    assert score(x, -x) < 0.5
    assert score(x[:, :1], -x[:, :1]) == pytest.approx(-1.0, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(5, 5), (4, 6), (6, 3)])
def test_hungarian_equals_brute_force(seed, shape):
    rng = np.random.default_rng(seed)
    p, q = shape
    x = rng.standard_normal((15, p))
    y = x[:, :1] + rng.standard_normal((15, q))
    corr = unit_correlations(x, y)
    rows, cols, matched = hungarian_match(corr)
    assert len(matched) == min(p, q)
    assert len(set(rows)) == len(set(cols)) == min(p, q)
    if p <= q:
        best = max(corr[np.arange(p), list(c)].sum() for c in itertools.permutations(range(q), p))
    else:
        best = max(corr[list(r), np.arange(q)].sum() for r in itertools.permutations(range(p), q))
    assert matched.sum() == pytest.approx(best, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_best_match_bounds_the_one_to_one_matching(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 8))
    y = x[:, :3] @ rng.standard_normal((3, 11)) + rng.standard_normal((40, 11))
    corr = unit_correlations(x, y)
    best_x, best_y = best_match(corr)
    assert best_x.shape == (8,) and best_y.shape == (11,)
    rows, cols, matched = hungarian_match(corr)
    assert (best_x[rows] >= matched - 1e-15).all()
    assert (best_y[cols] >= matched - 1e-15).all()
    result = UnitMatching().matching(UnitMatching().prepare(x), UnitMatching().prepare(y))
    np.testing.assert_allclose(result.best_a, best_x, atol=1e-12)
    np.testing.assert_allclose(result.matched, matched, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_symmetric_and_bounded(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((25, 6))
    y = x[:, :2] @ rng.standard_normal((2, 9)) + rng.standard_normal((25, 9))
    assert score(x, y) == pytest.approx(score(y, x), abs=1e-12)
    assert -1.0 <= score(x, y) <= 1.0
    assert score(x, x) == pytest.approx(1.0, abs=1e-12)


# --- the engine -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_baseline_low_for_large_n(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1000, 10))
    y = x[:, rng.permutation(10)] + 0.5 * rng.standard_normal((1000, 10))
    result = compare_layers(UnitMatching(), [("x", x)], [("y", y)], n_permutations=3, seed=seed)
    pair = result[("x", "y")]
    assert pair.value > 0.85
    assert pair.baseline < 0.1 and pair.warnings == []


@pytest.mark.parametrize("seed", SEEDS)
def test_permuted_layer_scores_like_permuted_data(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((30, 5))
    y = x + rng.standard_normal((30, 5))
    perm = rng.permutation(30)
    measure = UnitMatching()
    permuted = measure.permute(measure.prepare(y), perm)
    assert measure.score(measure.prepare(x), permuted) == pytest.approx(
        score(x, y[perm]), abs=1e-12
    )


def test_bootstrap_interval_within_range():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 6))
    y = x + rng.standard_normal((80, 6))
    pair = compare_layers(UnitMatching(), [("x", x)], [("y", y)], n_bootstrap=20)[("x", "y")]
    assert -1.0 <= pair.ci_low <= pair.value <= pair.ci_high <= 1.0


def test_degenerate_input():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="different numbers of samples"):
        unit_correlations(rng.standard_normal((10, 2)), rng.standard_normal((11, 2)))
    with pytest.raises(InputError, match="different numbers of samples"):
        unit_matching_report(rng.standard_normal((10, 2)), rng.standard_normal((11, 2)))
    with pytest.raises(InputError, match="different numbers of samples"):
        compare_layers(
            UnitMatching(),
            [("a", rng.standard_normal((10, 2)))],
            [("b", rng.standard_normal((12, 2)))],
        )
    bad = rng.standard_normal((10, 3))
    bad[1, 1] = np.inf
    with pytest.raises(InputError, match="conv2.*NaN or Inf"):
        compare_layers(UnitMatching(), [("conv2", bad)], [("b", rng.standard_normal((10, 2)))])
    with pytest.raises(InputError, match="at least 4 samples"):
        score(rng.standard_normal((3, 2)), rng.standard_normal((3, 2)))


# --- beyond one-to-one ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_semi_matching_and_hungarian_agree_on_permuted_units(seed):
    """B = A[:, perm] + small noise: every unit's best partner is its own copy, both ways, and
    the one-to-one matching is the same permutation."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((80, 10))
    perm = rng.permutation(10)
    b = a[:, perm] + 0.05 * rng.standard_normal((80, 10))
    corr = unit_correlations(a, b)
    partner_a, partner_b = semi_match(corr)
    rows, cols, _ = hungarian_match(corr)
    assert (perm[partner_a] == np.arange(10)).all()
    assert (partner_b == perm).all()
    assert (partner_a[rows] == cols).all() and (partner_b[cols] == rows).all()
    report = unit_matching_report(a, b)
    assert (report.partner_a == partner_a).all() and (report.partner_b == partner_b).all()
    np.testing.assert_allclose(report.hungarian.matched, corr[rows, cols], atol=1e-12)
    # with every pair near 1, the three share curves coincide down to 0.99
    assert report.share_hungarian == report.share_semi_a == report.share_semi_b
    assert report.share_hungarian[report.thresholds.index(0.99)] == 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_semi_matching_is_the_argmax(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((30, 6))
    b = a[:, :2] @ rng.standard_normal((2, 9)) + rng.standard_normal((30, 9))
    corr = unit_correlations(a, b)
    partner_a, partner_b = semi_match(corr)
    best_a, best_b = best_match(corr)
    np.testing.assert_array_equal(corr[np.arange(6), partner_a], best_a)
    np.testing.assert_array_equal(corr[partner_b, np.arange(9)], best_b)
    for i in range(6):
        assert partner_a[i] == max(range(9), key=lambda j: (corr[i, j], -j))


@pytest.mark.parametrize("seed", SEEDS)
def test_share_curve_is_one_below_the_minimum_and_non_increasing(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((40, 7))
    b = a[:, :3] @ rng.standard_normal((3, 5)) + rng.standard_normal((40, 5))
    report = unit_matching_report(a, b)
    t = np.array(report.thresholds)
    assert t[0] == 0.0 and t[-1] == 1.0 and (np.diff(t) > 0).all()
    curves = {
        "share_hungarian": report.hungarian.matched,
        "share_semi_a": report.hungarian.best_a,
        "share_semi_b": report.hungarian.best_b,
    }
    for key, values in curves.items():
        share = np.array(getattr(report, key))
        assert (np.diff(share) <= 0).all()
        assert (share[t < values.min()] == 1.0).all()
        assert share[-1] == 0.0  # nothing correlates above 1
        expected = [np.mean(values > threshold) for threshold in t]
        np.testing.assert_allclose(share, expected, atol=1e-15)
    # q < p: every unit of Y is matched, and its best partner is at least as good
    assert (np.array(report.share_semi_b) >= np.array(report.share_hungarian)).all()
    thresholds = [-0.5, 0.2, 0.2, 0.9]
    assert share_above(np.array([0.1, 0.2, 0.3, 0.9]), thresholds).tolist() == [1, 0.5, 0.5, 0]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(60, 8, 3), (25, 12, 2)])
def test_lasso_path_agrees_with_sklearn(seed, shape):
    """Per target, scikit-learn's lasso_path (coordinate descent, tol 1e-12) at the same α."""
    rng = np.random.default_rng(seed)
    n, p, q = shape
    x = rng.standard_normal((n, p)) + rng.standard_normal((n, 1))  # correlated columns
    y = x[:, :3] @ rng.standard_normal((3, q)) + rng.standard_normal((n, q))
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    alpha_max = np.abs(x.T @ y).max() / n
    alphas = alpha_max * np.geomspace(1.0, 1e-3, 15)
    ours = lasso_path(x, y, alphas)
    assert ours.shape == (15, p, q)
    for j in range(q):
        _, coefs, _ = sklearn_lasso_path(x, y[:, j], alphas=alphas, tol=1e-12, max_iter=100_000)
        np.testing.assert_allclose(ours[:, :, j], coefs.T, atol=1e-6, rtol=0)
    np.testing.assert_allclose(lasso_path(x, y[:, 0], alphas), ours[:, :, 0], atol=1e-8)


def test_lasso_kkt_conditions():
    """At the optimum: Xᵀ(y − Xw)/n = α·sign(w) on the support, |·| ≤ α off it."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 10))
    y = x[:, :2] @ [1.0, -2.0] + 0.5 * rng.standard_normal(50)
    x, y = x - x.mean(axis=0), y - y.mean()
    for alpha, w in zip([0.5, 0.1, 0.01], lasso_path(x, y, [0.5, 0.1, 0.01]), strict=True):
        grad = x.T @ (y - x @ w) / 50
        support = w != 0
        np.testing.assert_allclose(grad[support], alpha * np.sign(w[support]), atol=1e-8)
        assert (np.abs(grad[~support]) <= alpha + 1e-8).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_sparse_prediction_summary(seed):
    """Y's units are each a sum of two of X's units: the error falls from 1 (no weights) to
    about the noise share, and two non-zeros suffice."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((200, 8))
    b = a[:, [0, 2, 4]] + a[:, [1, 3, 5]] + 0.1 * rng.standard_normal((200, 3))
    sparse = unit_matching_report(a, b).sparse
    assert sparse.converged
    assert sparse.mean_error[0] == 1.0 and sparse.mean_nonzeros[0] == 0.0
    assert (np.diff(sparse.mean_error) <= 1e-12).all()  # in-sample error falls as α falls
    assert sparse.error_at_nonzeros[0] == 1.0
    assert (np.diff(sparse.error_at_nonzeros) <= 0).all()
    assert sparse.error_at_nonzeros[1] > 0.4 and sparse.error_at_nonzeros[2] < 0.02
    # the summary against the path recomputed here, unit by unit
    x = (a - a.mean(axis=0)) / np.linalg.norm(a - a.mean(axis=0), axis=0)
    y = (b - b.mean(axis=0)) / np.linalg.norm(b - b.mean(axis=0), axis=0)
    path = lasso_path(x, y, sparse.alphas)
    residual = y[None] - np.einsum("np,apq->anq", x, path)
    np.testing.assert_allclose(sparse.errors, (residual**2).sum(axis=1), atol=1e-9)
    np.testing.assert_array_equal(sparse.nonzeros, np.count_nonzero(path, axis=1))


@pytest.mark.parametrize("seed", SEEDS)
def test_heldout_prediction_agrees_with_sklearn(seed):
    """scikit-learn's lasso_path on the training split (standardised here with that split's
    means and norms) at the same penalties, its held-out error computed here from the
    coefficients: equal to ours, per unit and penalty; α_max zeroes every weight."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((80, 7)) + rng.standard_normal((80, 1))
    y = x[:, :2] @ rng.standard_normal((2, 3)) + 0.5 * rng.standard_normal((80, 3)) + 4.0
    heldout = heldout_prediction(x, y, test_fraction=0.25, seed=seed, n_alphas=12)
    assert heldout is not None and heldout.converged
    train, test = heldout.train, heldout.test
    assert len(test) == 20 and sorted([*train, *test]) == list(range(80))
    mx, my = x[train].mean(axis=0), y[train].mean(axis=0)
    nx, ny = np.linalg.norm(x[train] - mx, axis=0), np.linalg.norm(y[train] - my, axis=0)
    x_tr, x_te = (x[train] - mx) / nx, (x[test] - mx) / nx
    y_tr, y_te = (y[train] - my) / ny, (y[test] - my) / ny
    assert heldout.alphas[0] == pytest.approx(np.abs(x_tr.T @ y_tr).max() / 60, rel=1e-12)
    for j in range(3):
        _, coefs, _ = sklearn_lasso_path(
            x_tr, y_tr[:, j], alphas=heldout.alphas, tol=1e-12, max_iter=100_000
        )
        predicted = x_te @ coefs  # (n_test, n_alphas)
        expected = ((y_te[:, j, None] - predicted) ** 2).sum(axis=0) / (y_te[:, j] ** 2).sum()
        np.testing.assert_allclose(heldout.errors[:, j], expected, atol=1e-6)
        np.testing.assert_array_equal(
            heldout.nonzeros[:, j], np.count_nonzero(np.abs(coefs) > 1e-9, axis=0)
        )
    assert heldout.mean_error[0] == pytest.approx(1.0) and heldout.error_at_nonzeros[0] == 1.0
    # k = 1: each unit's held-out error at its last penalty with at most one weight
    last = [max(i for i in range(12) if heldout.nonzeros[i, j] <= 1) for j in range(3)]
    expected_1 = np.mean([heldout.errors[last[j], j] for j in range(3)])
    assert heldout.error_at_nonzeros[1] == pytest.approx(expected_1, abs=1e-12)


def test_heldout_error_rises_where_the_in_sample_error_overfits():
    """Y independent of X with as many units of X as training samples: the in-sample error
    falls towards 0 along the path, the held-out error ends above predicting the mean (1)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 30)), rng.standard_normal((40, 4))
    report = unit_matching_report(x, y, test_fraction=0.25, seed=0)
    heldout = report.heldout
    assert heldout is not None
    assert report.sparse.mean_error[-1] < 0.2 and heldout.mean_train_error[-1] < 0.2
    assert heldout.mean_error[-1] > 1.2 and heldout.error_at_nonzeros[-1] > 1.2
    assert json.loads(json.dumps(report.to_json()))["heldout"]["n_test"] == 10


def test_split_samples():
    train, test = split_samples(10, 0.25, 3)
    assert len(test) == 2 and len(train) == 8
    assert sorted([*train, *test]) == list(range(10))
    assert (np.diff(test) > 0).all() and (np.diff(train) > 0).all()
    assert [len(t) for t in split_samples(2, 0.01, 0)] == [1, 1]
    np.testing.assert_array_equal(split_samples(10, 0.25, 3)[1], test)  # seeded
    with pytest.raises(InputError):
        split_samples(10, 1.0, 0)


def test_report_pairs_constants_and_json():
    """Orthonormal centred columns: corr(a_i, b_j) = 0 for i ≠ j, 1/√(1 + s_j²) for i = j."""
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((50, 12))
    basis = np.linalg.qr(basis - basis.mean(axis=0))[0]
    a, noise = basis[:, :6], np.array([0.01, 0.3, 1.0, 3.0, 10.0, 0.1])
    b = a + noise * basis[:, 6:]
    b = np.column_stack([b, np.full(50, 2.0)])  # a constant unit of Y
    report = unit_matching_report(a, b, n_pairs=2, top_m=4)
    assert [(p.a, p.b) for p in report.best_pairs] == [(0, 0), (5, 5)]
    assert [(p.a, p.b) for p in report.worst_pairs] == [(4, 4), (3, 3)]
    expected = 1 / np.sqrt(1 + noise**2)
    assert report.best_pairs[0].correlation == pytest.approx(expected[0], abs=1e-12)
    assert report.worst_pairs[0].correlation == pytest.approx(expected[4], abs=1e-12)
    for pair in report.best_pairs + report.worst_pairs:
        assert pair.top_samples == np.argsort(-a[:, pair.a])[:4].tolist()
        assert a[pair.top_samples[0], pair.a] == a[:, pair.a].max()
    assert report.sparse.units.tolist() == list(range(6))  # the constant unit is not predicted
    assert report.warnings == ["1 constant unit in Y: correlation 0, not predicted"]
    payload = json.loads(json.dumps(report.to_json()))
    assert payload["p"] == 6 and payload["q"] == 7 and payload["constant_b"] == [6]
    assert len(payload["share_semi_b"]) == len(payload["thresholds"]) == 101
    assert payload["best_pairs"][0] == {
        "a": 0,
        "b": 0,
        "correlation": report.best_pairs[0].correlation,
        "top_samples": report.best_pairs[0].top_samples,
    }
    assert payload["sparse"]["error_at_nonzeros"][0] == 1.0


def test_top_sample_ties_go_to_the_lower_index():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20, 3))
    a[[3, 7, 11], 0] = 5.0  # three samples tie at the top of unit 0
    report = unit_matching_report(a, a + 0.01 * rng.standard_normal((20, 3)), top_m=4)
    pair = next(p for p in report.best_pairs if p.a == 0)
    assert pair.top_samples[:3] == [3, 7, 11]
