"""Procrustes shape metrics (analysis/measures/procrustes.py): definition, invariances, metric
axioms,
zero padding, agreement with scipy's Procrustes solvers, the alignment map, degenerate input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import procrustes as scipy_procrustes
from scipy.stats import ortho_group

from analysis.errors import InputError
from analysis.measures.engine import compare_layers
from analysis.measures.procrustes import (
    ProcrustesAngular,
    ProcrustesEuclidean,
    orthogonal_procrustes_map,
    prepare,
    procrustes_angular,
    procrustes_euclidean,
)

SEEDS = [0, 1, 2, 3, 4]
ZERO = 1e-7  # arccos amplifies round-off near 1: a nuclear norm of 1 − 1e-16 reads as 1.5e-8


def correlated_pair(rng: np.random.Generator, n: int, p: int, q: int, noise: float = 1.0):
    x = rng.standard_normal((n, p))
    y = x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))
    return x, y


def shape(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    return centred / np.linalg.norm(centred)


def padded(x: np.ndarray, width: int) -> np.ndarray:
    return np.hstack([x, np.zeros((x.shape[0], width - x.shape[1]))])


def reference_nuclear(x: np.ndarray, y: np.ndarray) -> float:
    """‖XᵀY‖_* through scipy: zero-pad to a common width (Williams et al. 2021) and read the
    sum of singular values that ``scipy.linalg.orthogonal_procrustes`` returns as its scale."""
    a, b = shape(x), shape(y)
    width = max(a.shape[1], b.shape[1])
    _, total = orthogonal_procrustes(padded(a, width), padded(b, width))
    return float(total)


# --- definition and agreement with scipy ----------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape_", [(50, 6, 6), (40, 3, 9), (30, 12, 5), (12, 40, 25), (8, 3, 60)])
def test_agrees_with_scipy_orthogonal_procrustes(seed, shape_):
    """Both distances from scipy's solver: the nuclear norm it returns, and the residual
    ‖X − YR‖_F of its rotation R, which must be √(2 − 2‖XᵀY‖_*)."""
    rng = np.random.default_rng(seed)
    n, p, q = shape_
    x, y = correlated_pair(rng, n, p, q)
    nuclear = reference_nuclear(x, y)
    assert procrustes_angular(x, y) == pytest.approx(np.arccos(nuclear), abs=1e-6)
    width = max(p, q)
    a, b = padded(shape(x), width), padded(shape(y), width)
    rotation, _ = orthogonal_procrustes(b, a)
    residual = np.linalg.norm(a - b @ rotation)
    assert procrustes_euclidean(x, y) == pytest.approx(residual, abs=1e-6)
    assert procrustes_euclidean(x, y) == pytest.approx(np.sqrt(2 - 2 * nuclear), abs=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_agrees_with_scipy_spatial_procrustes(seed):
    """``scipy.spatial.procrustes`` standardises both sets the same way (centre, unit Frobenius
    norm) and fits rotation and scale: its disparity is 1 − ‖XᵀY‖²_* (same width only)."""
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 40, 7, 7)
    _, _, disparity = scipy_procrustes(x, y)
    assert np.cos(procrustes_angular(x, y)) == pytest.approx(np.sqrt(1 - disparity), abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_zero_padding_of_the_narrower_side(seed):
    """Explicit zero columns change nothing: p ≠ q is the padded comparison."""
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 30, 4, 11)
    for measure in (procrustes_angular, procrustes_euclidean):
        value = measure(x, y)
        assert measure(padded(x, 11), y) == pytest.approx(value, abs=1e-10)
        assert measure(y, padded(x, 11)) == pytest.approx(value, abs=1e-10)
        assert measure(padded(x, 20), padded(y, 20)) == pytest.approx(value, abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_wide_layers_reduced_without_changing_the_value(seed):
    """p > n: the layer is replaced by Rᵀ of the QR of Xᵀ; value, permutations and bootstrap rows
    must be those of the full layer."""
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 15, 40, 70)
    a, b = prepare(x), prepare(y)
    assert a.reduced and b.reduced and a.data.shape == (15, 15)
    measure = ProcrustesAngular()
    assert measure.estimator(a, b) == "qr-reduced"
    assert measure.estimator(prepare(x[:, :5]), prepare(y[:, :9])) == "feature"
    assert measure.score(a, b) == pytest.approx(np.arccos(reference_nuclear(x, y)), abs=1e-6)
    perm = rng.permutation(15)
    assert measure.score(a, measure.permute(b, perm)) == pytest.approx(
        procrustes_angular(x, y[perm]), abs=1e-10
    )
    resample = rng.integers(0, 15, 15)
    from_rows = measure.score(
        measure.prepare(measure.rows(a)[resample]), measure.prepare(measure.rows(b)[resample])
    )
    assert from_rows == pytest.approx(procrustes_angular(x[resample], y[resample]), abs=1e-10)


# --- invariances and metric axioms ----------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape_", [(40, 8), (10, 30)])
def test_zero_distance_to_rotated_scaled_translated_copy(seed, shape_):
    rng = np.random.default_rng(seed)
    n, d = shape_
    x = rng.standard_normal((n, d)) * rng.uniform(0.1, 10, size=d)
    q = ortho_group.rvs(d, random_state=seed)
    copy = 3.7 * x @ q + rng.normal(0, 50, size=d)
    for measure in (procrustes_angular, procrustes_euclidean):
        assert measure(x, x) == pytest.approx(0.0, abs=ZERO)
        assert measure(x, copy) == pytest.approx(0.0, abs=ZERO)
        assert measure(x, x[:, rng.permutation(d)] * 1e-3) == pytest.approx(0.0, abs=ZERO)


@pytest.mark.parametrize("seed", SEEDS)
def test_invariances_leave_a_nonzero_distance_unchanged(seed):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 30, 6, 9)
    base = procrustes_angular(x, y)
    assert 0.1 < base < 1.4  # a non-trivial value, so the checks below can fail
    q = ortho_group.rvs(6, random_state=seed)
    assert procrustes_angular(5.0 * x @ q - 2.0, y) == pytest.approx(base, abs=1e-10)
    assert procrustes_angular(x, y * 1e-4 + 9.0) == pytest.approx(base, abs=1e-10)
    stretched = x @ np.diag([10.0, 1, 1, 1, 1, 1])  # not invariant to general linear maps
    assert abs(procrustes_angular(stretched, y) - base) > 0.05


@pytest.mark.parametrize("seed", SEEDS)
def test_symmetric(seed):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 25, 7, 13)
    assert procrustes_angular(x, y) == pytest.approx(procrustes_angular(y, x), abs=1e-12)
    assert procrustes_euclidean(x, y) == pytest.approx(procrustes_euclidean(y, x), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_triangle_inequality(seed):
    rng = np.random.default_rng(seed)
    for _ in range(20):
        n = int(rng.integers(5, 30))
        base = rng.standard_normal((n, 6))
        spaces = [
            base @ rng.standard_normal((6, int(d))) + rng.uniform(0, 3) * rng.normal(size=(n, d))
            for d in rng.integers(1, 12, size=3)
        ]
        for measure in (procrustes_angular, procrustes_euclidean):
            ab, bc, ac = (measure(spaces[i], spaces[j]) for i, j in [(0, 1), (1, 2), (0, 2)])
            assert ac <= ab + bc + 1e-12
            assert ab <= ac + bc + 1e-12
            assert bc <= ab + ac + 1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_range_and_extremes(seed):
    rng = np.random.default_rng(seed)
    for shape_ in [(5, 1, 1), (8, 3, 40), (50, 20, 2)]:
        x, y = correlated_pair(rng, *shape_)
        assert 0.0 <= procrustes_angular(x, y) <= np.pi / 2
        assert 0.0 <= procrustes_euclidean(x, y) <= np.sqrt(2)
    # XᵀY = 0: orthogonal shapes are as far apart as they can be
    x = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    y = np.array([[1.0], [1], [-1], [-1]])
    assert procrustes_angular(x[:, :1], y) == pytest.approx(np.pi / 2, abs=1e-12)
    assert procrustes_euclidean(x[:, :1], y) == pytest.approx(np.sqrt(2), abs=1e-12)
    assert ProcrustesAngular.range == (0.0, pytest.approx(np.pi / 2))
    assert ProcrustesEuclidean.range == (0.0, pytest.approx(np.sqrt(2)))


def test_declared_properties():
    for measure, measure_id in [
        (ProcrustesAngular(), "procrustes/angular"),
        (ProcrustesEuclidean(), "procrustes/euclidean"),
    ]:
        described = measure.describe()
        assert described["id"] == measure_id
        assert described["larger_is_more_similar"] is False
        assert described["metric"] is True and described["symmetric"] is True
        assert {"orthogonal", "isotropic scaling", "translation"} <= set(described["invariant_to"])


# --- engine: baselines use the cheap permutation ---------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_engine_values_and_baseline(seed):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 40, 5, 8, noise=0.3)
    result = compare_layers(ProcrustesEuclidean(), [("x", x)], [("y", y)], 4, 10, seed)[("x", "y")]
    assert result.value == pytest.approx(procrustes_euclidean(x, y), abs=1e-12)
    perm_rng = np.random.default_rng(seed)
    shuffled = [procrustes_euclidean(x, y[perm_rng.permutation(40)]) for _ in range(4)]
    assert result.baseline == pytest.approx(np.mean(shuffled), abs=1e-10)
    assert result.value < result.baseline  # a distance: related data is closer than shuffled
    assert result.larger_is_more_similar is False
    assert 0.0 <= result.ci_low <= result.ci_high <= np.sqrt(2)


@pytest.mark.parametrize("seed", SEEDS)
def test_unrelated_wide_layers_look_close(seed):
    """The bias to read baselines for: with d ≥ n every centred cloud is nearly isotropic in its
    span, so independent random layers are only ~0.2 rad apart (π/2 is the maximum)."""
    rng = np.random.default_rng(seed)
    narrow = procrustes_angular(rng.standard_normal((500, 5)), rng.standard_normal((500, 5)))
    wide = procrustes_angular(rng.standard_normal((32, 512)), rng.standard_normal((32, 512)))
    assert narrow > 1.3
    assert wide < 0.35


# --- the alignment map ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_map_matches_scipy_and_recovers_a_rotation(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((30, 6))
    q = ortho_group.rvs(6, random_state=seed)
    w, s = orthogonal_procrustes_map(x, 2.5 * x @ q, scale=True)
    np.testing.assert_allclose(w, q, atol=1e-10)
    assert s == pytest.approx(2.5, abs=1e-10)
    y = x @ q + 0.5 * rng.standard_normal((30, 6))
    w, s = orthogonal_procrustes_map(x, y)
    np.testing.assert_allclose(w, orthogonal_procrustes(x, y)[0], atol=1e-10)
    assert s == 1.0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("p", "q"), [(4, 9), (9, 4)])
def test_map_between_different_widths(seed, p, q):
    """W is the zero-padded problem's rotation R restricted to the real dimensions: its padded
    residual ‖XR − [Y 0]‖ is the Euclidean shape distance, and no other orthonormal map does
    better (for p ≤ q the padded residual is ‖XW − Y‖ itself)."""
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 40, p, q)
    a, b = shape(x), shape(y)
    w, s = orthogonal_procrustes_map(a, b, scale=True)
    assert w.shape == (p, q)
    np.testing.assert_allclose(w.T @ w if p > q else w @ w.T, np.eye(min(p, q)), atol=1e-10)
    width = max(p, q)
    rotation, nuclear = orthogonal_procrustes(padded(a, width), padded(b, width))
    np.testing.assert_allclose(w, rotation[:p, :q], atol=1e-8)
    assert s == pytest.approx(nuclear, abs=1e-10)  # ‖a‖_F = 1

    def padded_residual(m: np.ndarray) -> float:
        mapped = a @ m  # ‖XR‖ = ‖X‖ = 1; the columns beyond q add 1 − ‖XW‖² to the residual
        return float(np.sqrt(np.linalg.norm(mapped - b) ** 2 + 1 - np.linalg.norm(mapped) ** 2))

    assert padded_residual(w) == pytest.approx(procrustes_euclidean(x, y), abs=1e-8)
    if p <= q:
        assert np.linalg.norm(a @ w - b) == pytest.approx(procrustes_euclidean(x, y), abs=1e-8)
    for _ in range(5):
        other = ortho_group.rvs(width, random_state=rng)[:p, :q]
        assert padded_residual(other) >= padded_residual(w) - 1e-12


def test_map_refuses_mismatched_samples():
    with pytest.raises(InputError, match="different numbers of samples"):
        orthogonal_procrustes_map(np.ones((5, 2)), np.ones((6, 2)))


# --- degenerate input -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.0, 0.1, 7.77])
def test_constant_layer_is_refused(value):
    other = np.random.default_rng(0).standard_normal((10, 4))
    constant = np.full((10, 3), value, dtype=np.float32)
    with pytest.raises(InputError, match="constant"):
        procrustes_angular(constant, other)
    with pytest.raises(InputError, match="dead_layer"):
        compare_layers(ProcrustesAngular(), [("fine", other)], [("dead_layer", constant)])


def test_non_finite_and_mismatched_input():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 3))
    x[2, 1] = np.nan
    with pytest.raises(InputError, match="block4"):
        compare_layers(ProcrustesEuclidean(), [("block4", x)], [("b", rng.normal(size=(10, 2)))])
    with pytest.raises(InputError, match="different numbers of samples"):
        procrustes_angular(rng.standard_normal((10, 3)), rng.standard_normal((11, 3)))
    with pytest.raises(InputError, match="at least 4 samples"):
        procrustes_angular(rng.standard_normal((3, 3)), rng.standard_normal((3, 3)))


def test_float32_with_large_offset():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((40, 20)) + 1e4).astype(np.float32)
    y = (x[:, :8] + 0.5 * rng.standard_normal((40, 8))).astype(np.float32)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    assert procrustes_angular(x, y) == pytest.approx(
        np.arccos(reference_nuclear(x64, y64)), abs=1e-9
    )
