"""Unit matching (analysis/measures/units.py): correlations, best match, Hungarian matching, the
measure."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import ortho_group

from analysis.errors import InputError
from analysis.measures.engine import compare_layers
from analysis.measures.units import (
    UnitMatching,
    best_match,
    constant_units,
    hungarian_match,
    unit_correlations,
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
