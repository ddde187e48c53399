"""The CCA family (analysis/measures/cca.py): definitions, peers, invariances, rank and sample
limits."""

from __future__ import annotations

import copy
import os
import threading

import numpy as np
import pytest
import repsim
from scipy.stats import ortho_group

from analysis.errors import InputError
from analysis.measures.cca import PWCCA, SVCCA, MeanCCA, canonical_correlations
from analysis.measures.engine import Measure, compare_layers

SEEDS = [0, 1, 2, 3, 4]
MEASURES = [MeanCCA(), SVCCA(), PWCCA()]


def score(measure, x: np.ndarray, y: np.ndarray) -> float:
    return measure.score(measure.prepare(x, "X"), measure.prepare(y, "Y"))


def correlated_pair(rng: np.random.Generator, n: int, p: int, q: int, noise: float = 1.0):
    x = rng.standard_normal((n, p))
    y = x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))
    return x, y


def invertible(rng: np.random.Generator, d: int) -> np.ndarray:
    """A random invertible map with condition number ≤ 100."""
    u, v = ortho_group.rvs(d, random_state=rng), ortho_group.rvs(d, random_state=rng)
    return u @ np.diag(np.geomspace(0.1, 10, d)) @ v


def covariance_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Textbook CCA: ρ² are the eigenvalues of Σxx⁻¹ Σxy Σyy⁻¹ Σyx (the top min(p, q))."""
    p = x.shape[1]
    sigma = np.cov(np.hstack([x, y]), rowvar=False)
    sxx, sxy, syy = sigma[:p, :p], sigma[:p, p:], sigma[p:, p:]
    eig = np.linalg.eigvals(np.linalg.solve(sxx, sxy) @ np.linalg.solve(syy, sxy.T))
    top = np.sort(eig.real)[::-1][: min(x.shape[1], y.shape[1])]
    return np.sqrt(np.clip(top, 0, None))


def whitened(rng: np.random.Generator, n: int, d: int, scale: float = 1.0) -> np.ndarray:
    """n × d centred data whose singular values are all equal to ``scale``."""
    z = rng.standard_normal((n, d))
    return scale * np.linalg.svd(z - z.mean(0), full_matrices=False)[0]


# --- definitions ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(50, 5, 7), (80, 12, 3), (30, 4, 4)])
def test_mean_cca_matches_covariance_formula(seed, shape):
    rng = np.random.default_rng(seed)
    n, p, q = shape
    x, y = correlated_pair(rng, n, p, q)
    x += rng.normal(0, 5, size=p)
    expected = covariance_correlations(x, y)
    a, b = MeanCCA().prepare(x), MeanCCA().prepare(y)
    np.testing.assert_allclose(canonical_correlations(a, b), expected, atol=1e-8)
    assert MeanCCA().score(a, b) == pytest.approx(expected.mean(), abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_svcca_keeps_the_top_directions_explaining_99_percent(seed):
    """Three strong directions carry > 99 % of the variance: SVCCA is CCA between them."""
    rng = np.random.default_rng(seed)
    n = 200
    basis = ortho_group.rvs(20, random_state=seed)
    x = rng.standard_normal((n, 20)) * np.r_[np.full(3, 10.0), np.full(17, 0.3)] @ basis
    y = rng.standard_normal((n, 15)) * np.r_[np.full(4, 10.0), np.full(11, 0.1)]
    y[:, :2] += x[:, :2]
    a, b = SVCCA().prepare(x), SVCCA().prepare(y)
    assert (a.basis.shape[1], b.basis.shape[1]) == (3, 4)
    assert "kept 3 of 20 × 4 of 15" in SVCCA().estimator(a, b)
    top = [np.linalg.svd(z - z.mean(0), full_matrices=False)[0][:, :k] for z, k in [(x, 3), (y, 4)]]
    expected = np.linalg.svd(top[0].T @ top[1], compute_uv=False).mean()
    assert SVCCA().score(a, b) == pytest.approx(expected, abs=1e-10)
    # keeping everything is mean CCA
    assert score(SVCCA(variance_kept=1.0), x, y) == pytest.approx(score(MeanCCA(), x, y), abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_svcca_threshold_is_not_decided_by_round_off(seed):
    """100 equal singular values: 99 directions explain exactly 99 %. In floating point the
    cumulative share at 99 comes out 1e-16 short, which alone would keep a 100th."""
    rng = np.random.default_rng(0)
    x = whitened(rng, 250, 100) @ ortho_group.rvs(100, random_state=seed)
    assert SVCCA().prepare(x).basis.shape[1] == 99


def test_svcca_variance_kept_must_be_a_share():
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(InputError, match="variance_kept"):
            SVCCA(variance_kept=bad)


@pytest.mark.parametrize("seed", SEEDS)
def test_pwcca_weights_canonical_directions_by_their_share_of_x(seed):
    """Morcos et al. 2018: αᵢ = Σⱼ |⟨hᵢ, xⱼ⟩| with hᵢ the unit canonical variates of X."""
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 60, 6, 4)
    x *= rng.uniform(0.2, 5, size=6)
    xc, yc = x - x.mean(0), y - y.mean(0)
    qx, qy = np.linalg.qr(xc)[0], np.linalg.qr(yc)[0]
    left, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    alpha = np.abs((qx @ left).T @ xc).sum(axis=1)
    assert score(PWCCA(), x, y) == pytest.approx(alpha @ rho / alpha.sum(), abs=1e-10)


# --- peers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(50, 5, 7), (80, 12, 3), (21, 10, 10)])
def test_mean_cca_agrees_with_repsim(seed, shape):
    """Peer's convention: repsim 0.1.5 ``cca(summary_type="pillai")`` is Σρ / min(r_X, r_Y) =
    mean ρ, ``"yanai"`` is Σρ² / min(r_X, r_Y) = mean ρ². It takes r from the *uncentred*
    data (see the constant-column test below) and drops singular values under 1e-12 × the
    largest."""
    rng = np.random.default_rng(seed)
    n, p, q = shape
    x, y = correlated_pair(rng, n, p, q)
    a, b = MeanCCA().prepare(x), MeanCCA().prepare(y)
    rho = canonical_correlations(a, b)
    assert MeanCCA().score(a, b) == pytest.approx(repsim.cca([x, y], "pillai")[0, 1], abs=1e-6)
    assert np.mean(rho**2) == pytest.approx(repsim.cca([x, y], "yanai")[0, 1], abs=1e-6)


def test_repsim_counts_a_constant_column_as_a_direction():
    """Documented difference: repsim counts dimensions on the uncentred data, where a constant
    column is a direction, so X against itself scores (p − 1)/p and every value is scaled
    down; we drop the column (it has no variance) and keep 1."""
    rng = np.random.default_rng(0)
    x, y = correlated_pair(rng, 60, 4, 6)
    x_const = np.hstack([x, np.full((60, 1), 2.0)])
    assert score(MeanCCA(), x_const, x_const) == pytest.approx(1.0, abs=1e-12)
    assert repsim.cca([x_const, x_const], "pillai")[0, 1] == pytest.approx(4 / 5, abs=1e-6)
    ours = score(MeanCCA(), x_const, y)
    assert ours == pytest.approx(score(MeanCCA(), x, y), abs=1e-12)
    assert repsim.cca([x_const, y], "pillai")[0, 1] == pytest.approx(ours * 4 / 5, abs=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_svcca_agrees_with_repsim_on_whitened_data(seed):
    """Peer's convention: repsim 0.1.5 ``svcca`` first replaces each side by an orthonormal
    basis of its (uncentred) column space, then truncates that to 99 % of *its* variance. All
    singular values are then 1, so below 100 dimensions it keeps every direction (its SVCCA is
    its CCA), and it divides by the untruncated dimension. Raghu et al. truncate the data's own
    spectrum, as we do. The two agree when 99 % of the data's variance needs every direction.
    """
    rng = np.random.default_rng(seed)
    x = whitened(rng, 80, 8, scale=5.0)
    y = x[:, :6] + 5 * whitened(rng, 80, 6) @ ortho_group.rvs(6, random_state=rng)
    a, b = SVCCA().prepare(x), SVCCA().prepare(y)
    assert (a.basis.shape[1], b.basis.shape[1]) == (8, 6)
    assert SVCCA().score(a, b) == pytest.approx(repsim.svcca([x, y], "pillai")[0, 1], abs=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_svcca_differs_from_repsim_when_the_spectrum_decays(seed):
    """Documented difference: with 3 strong directions we keep 3 and find the strong shared
    signal; repsim keeps all 20 (it truncates a whitened basis) and reports its mean CCA."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((200, 20)) * np.r_[np.full(3, 10.0), np.full(17, 0.3)]
    y = x @ rng.standard_normal((20, 15)) + rng.standard_normal((200, 15))
    peer = repsim.svcca([x, y], "pillai")[0, 1]
    assert peer == pytest.approx(repsim.cca([x, y], "pillai")[0, 1], abs=1e-6)
    assert peer == pytest.approx(score(MeanCCA(), x, y), abs=1e-6)
    assert score(SVCCA(), x, y) > peer + 0.1


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(50, 5, 7), (80, 12, 3), (40, 6, 6)])
def test_pwcca_agrees_with_repsim_symmetrised(seed, shape):
    """Peer's convention: repsim 0.1.5 ``pwcca`` computes Morcos' weights from each side in
    turn and reports the average ½(PWCCA(X, Y) + PWCCA(Y, X)), a symmetric number; Morcos
    et al. (and we) weight by X only. (Google's reference code weights by whichever side has
    fewer neurons.)"""
    rng = np.random.default_rng(seed)
    n, p, q = shape
    x, y = correlated_pair(rng, n, p, q)
    x *= rng.uniform(0.2, 5, size=p)
    xy, yx = score(PWCCA(), x, y), score(PWCCA(), y, x)
    assert (xy + yx) / 2 == pytest.approx(repsim.pwcca([x, y])[0, 1], abs=1e-6)
    assert abs(xy - yx) > 1e-4  # not symmetric


# --- properties -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure", MEASURES, ids=lambda m: m.id)
def test_self_similarity_symmetry_and_range(seed, measure):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 60, 6, 11, noise=3.0)
    x *= rng.uniform(0.1, 10, size=6)
    assert score(measure, x, x) == pytest.approx(1.0, abs=1e-12)
    assert score(measure, x, x @ ortho_group.rvs(6, random_state=rng)) == pytest.approx(
        1.0, abs=1e-10
    )
    value = score(measure, x, y)
    assert 0.05 < value < 0.999
    low, high = measure.range
    assert low <= value <= high
    if measure.symmetric:
        assert value == pytest.approx(score(measure, y, x), abs=1e-12)
    else:
        assert abs(value - score(measure, y, x)) > 1e-4


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure", MEASURES, ids=lambda m: m.id)
def test_declared_invariances_hold_and_others_do_not(seed, measure):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 60, 6, 5, noise=2.0)
    x *= np.geomspace(0.2, 5, 6)  # unequal spectrum, so SVCCA's truncation has work to do
    base = score(measure, x, y)
    transforms = {
        "invertible linear": lambda z: z @ invertible(rng, z.shape[1]),
        "orthogonal": lambda z: z @ ortho_group.rvs(z.shape[1], random_state=rng),
        "isotropic scaling": lambda z: z * 1e3,
        "translation": lambda z: z + rng.normal(0, 50, size=z.shape[1]),
        "permutation of units": lambda z: -z[:, rng.permutation(z.shape[1])],
    }
    declared = set(measure.invariant_to)
    if "orthogonal" in declared:
        declared.add("permutation of units")  # with sign flips: orthogonal maps
    for name, transform in transforms.items():
        moved = score(measure, transform(x), transform(y) if name != "translation" else y)
        if name in declared:
            assert moved == pytest.approx(base, abs=1e-9), name
        else:
            assert abs(moved - base) > 1e-4, name


# --- rank deficiency and sample size --------------------------------------------------------


@pytest.mark.parametrize("measure", MEASURES, ids=lambda m: m.id)
def test_constant_and_duplicate_columns_change_nothing(measure):
    rng = np.random.default_rng(0)
    x, y = correlated_pair(rng, 60, 5, 4)
    base = score(measure, x, y)
    padded = np.hstack([x, np.full((60, 1), 0.1), x[:, :2], x[:, :1] - 2 * x[:, 3:4]])
    if isinstance(measure, PWCCA):  # the repeated neurons add to the weights, as they should
        assert np.isfinite(score(measure, padded, y))
    else:
        assert score(measure, padded, y) == pytest.approx(base, abs=1e-10)
    a = measure.prepare(padded)
    assert a.rank == 5
    if not isinstance(measure, SVCCA):
        assert "dependent columns dropped" in measure.estimator(a, measure.prepare(y))


def test_shared_constant_columns_do_not_give_a_spurious_match():
    """Unrelated X and Y with the same constant column: round-off left after centring it is
    identical on both sides, a canonical correlation of 1 if it were kept as a direction."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((80, 3)), rng.standard_normal((80, 3))
    const = np.full((80, 1), 0.1)
    value = score(MeanCCA(), np.hstack([x, const]), np.hstack([y, const]))
    assert value == pytest.approx(score(MeanCCA(), x, y), abs=1e-12)
    assert value < 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_float32_rounding_noise_is_not_a_direction(seed):
    """Two float32 layers that are linear maps of the same 10-d code span it up to rounding
    noise (≈ 1e-7) in their 20 extra directions: CCA is 1. Judged at float64 precision those
    directions would count and pull the mean to about 10/30."""
    rng = np.random.default_rng(seed)
    code = rng.standard_normal((400, 10)).astype(np.float32)
    x = code @ rng.standard_normal((10, 30)).astype(np.float32)
    y = code @ rng.standard_normal((10, 30)).astype(np.float32)
    a, b = MeanCCA().prepare(x), MeanCCA().prepare(y)
    assert (a.rank, b.rank) == (10, 10)
    assert MeanCCA().score(a, b) == pytest.approx(1.0, abs=1e-5)
    as_float64 = score(MeanCCA(), x.astype(np.float64), y.astype(np.float64))
    assert as_float64 < 0.6


def test_half_precision_input_keeps_its_rank():
    """The float16 tolerance (√ε ≈ 0.03) drops rounding noise but not genuine directions."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 40)).astype(np.float16)
    assert MeanCCA().prepare(x).rank == 40
    code = rng.standard_normal((300, 10)).astype(np.float16)
    wide = code @ rng.standard_normal((10, 30)).astype(np.float16)
    assert MeanCCA().prepare(wide).rank == 10
    assert score(MeanCCA(), wide, code) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("measure", [MeanCCA(), PWCCA()], ids=lambda m: m.id)
def test_too_few_samples_for_the_dimension_is_refused(measure):
    """Each side may use at most half of the n − 1 dimensions centred samples span."""
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match=r"conv1: CCA needs.*SVCCA"):
        measure.prepare(rng.standard_normal((30, 64)), "conv1")  # n < d
    assert measure.prepare(rng.standard_normal((21, 10))).rank == 10  # n − 1 = 2 × 10
    with pytest.raises(InputError, match="twice as many samples"):
        measure.prepare(rng.standard_normal((20, 10)))
    # a wide layer of low rank is fine: the rule counts independent directions
    low_rank = rng.standard_normal((30, 3)) @ rng.standard_normal((3, 64))
    assert measure.prepare(low_rank).rank == 3


def test_svcca_counts_the_kept_directions_against_n():
    rng = np.random.default_rng(0)
    wide = rng.standard_normal((30, 64)) * np.r_[np.full(4, 50.0), np.full(60, 0.1)]
    assert SVCCA().prepare(wide).basis.shape[1] == 4
    with pytest.raises(InputError, match="smaller share of variance"):
        SVCCA().prepare(rng.standard_normal((30, 64)))


@pytest.mark.parametrize("measure", MEASURES, ids=lambda m: m.id)
def test_degenerate_layers_are_refused_with_the_layer_name(measure):
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="at least 4 samples"):
        measure.prepare(rng.standard_normal((3, 1)))
    with pytest.raises(InputError, match="relu3: every column is constant"):
        measure.prepare(np.full((20, 3), 7.77, dtype=np.float32), "relu3")
    x = rng.standard_normal((20, 3))
    x[4, 2] = np.inf
    with pytest.raises(InputError, match="fc2: activations contain NaN or Inf"):
        measure.prepare(x, "fc2")
    with pytest.raises(InputError, match="fc2"):
        compare_layers(measure, [("fc1", rng.standard_normal((20, 3)))], [("fc2", x)])


def test_smallest_inputs_give_finite_values():
    rng = np.random.default_rng(0)
    for measure in MEASURES:
        for _ in range(10):
            value = score(measure, rng.standard_normal((4, 1)), rng.standard_normal((4, 1)))
            assert np.isfinite(value) and 0.0 <= value <= 1.0


# --- through the engine ---------------------------------------------------------------------


@pytest.mark.parametrize("measure", MEASURES, ids=lambda m: m.id)
def test_compare_layers_baseline_and_interval(measure):
    rng = np.random.default_rng(3)
    x, y = correlated_pair(rng, 400, 5, 5, noise=0.5)
    result = compare_layers(measure, [("x", x)], [("y", y)], n_bootstrap=40, seed=1)[("x", "y")]
    assert result.value == pytest.approx(score(measure, x, y), abs=1e-12)
    assert result.value > 0.7
    assert result.baseline < 0.15
    assert result.warnings == []
    assert result.ci_low <= result.value <= result.ci_high
    assert 0.0 <= result.ci_low < result.ci_high <= 1.0


def test_mean_cca_baseline_warns_when_n_is_near_the_limit():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((41, 20)), rng.standard_normal((41, 20))
    result = compare_layers(MeanCCA(), [("x", x)], [("y", y)], seed=0)[("x", "y")]
    assert result.baseline > 0.55
    assert result.warnings


@pytest.mark.parametrize("measure", MEASURES, ids=lambda m: m.id)
def test_permuted_prepared_layer_scores_like_permuted_data(measure):
    rng = np.random.default_rng(5)
    x, y = correlated_pair(rng, 50, 6, 8)
    perm = rng.permutation(50)
    a, b = measure.prepare(x), measure.prepare(y)
    assert measure.score(a, measure.permute(b, perm)) == pytest.approx(
        score(measure, x, y[perm]), abs=1e-10
    )
    assert measure.score(measure.permute(a, perm), b) == pytest.approx(
        score(measure, x[perm], y), abs=1e-10
    )


# --- fast statistics: the same numbers as preparing every resample afresh --------------------


def _prepared_afresh(measure):
    """``measure`` the plain way: singular values by SVD, every bootstrap resample prepared
    from its rows (the engine's default), each side's layers prepared separately."""

    class Afresh(type(measure)):
        def resample(self, prepared, idx, name="activations"):
            return Measure.resample(self, prepared, idx, name)

        def score(self, a, b):
            if isinstance(measure, PWCCA):
                left, rho, _ = np.linalg.svd(a.basis.T @ b.basis, full_matrices=False)
                weights = np.abs((a.basis @ left).T @ a.centred).sum(axis=1)
                return float(np.clip(rho, 0, 1) @ weights / weights.sum())
            return float(np.mean(canonical_correlations(a, b)))

    afresh = copy.copy(measure)  # its parameters (rank tolerance …) kept
    afresh.__class__ = Afresh
    return afresh


def _statistics(results):
    return np.array(
        [(r.value, r.baseline, r.baseline_std, r.ci_low, r.ci_high) for r in results.values()]
    )


@pytest.mark.parametrize("measure", [MeanCCA(), PWCCA()], ids=lambda m: m.id)
def test_bootstrap_from_prepared_bases_equals_preparing_each_resample(measure):
    rng = np.random.default_rng(7)
    x, y = correlated_pair(rng, 120, 12, 10, noise=0.7)
    y[:, 3] = y[:, 1] - 2 * y[:, 0]  # rank below d: a dropped direction
    # (no exactly shared directions: a repeated ρ = 1 leaves PWCCA's weights to the SVD's
    # arbitrary choice of vectors within it, in either computation)
    mixed = x[:, :5] @ rng.standard_normal((5, 5)) + 0.3 * rng.standard_normal((120, 5))
    z = np.hstack([mixed, rng.standard_normal((120, 4))]).astype(np.float32)
    layers = [("x", x), ("y", y), ("z", z)]
    copies = [(name, v.copy()) for name, v in layers]
    fast = compare_layers(measure, layers, layers, n_permutations=4, n_bootstrap=15, seed=2)
    plain = compare_layers(
        _prepared_afresh(measure), layers, copies, n_permutations=4, n_bootstrap=15, seed=2
    )
    np.testing.assert_allclose(_statistics(fast), _statistics(plain), rtol=0, atol=1e-10)
    assert "bootstrap resamples re-centre" in fast[("x", "y")].estimator


def test_a_resample_that_loses_a_direction_is_prepared_afresh():
    """A unit active on one sample only: resamples without that sample lose the direction."""
    rng = np.random.default_rng(3)
    x, y = correlated_pair(rng, 60, 4, 4)
    x = np.hstack([x, np.eye(60)[:, [17]]])
    fast = compare_layers(MeanCCA(), [("x", x)], [("y", y)], n_permutations=2, n_bootstrap=12)
    plain = compare_layers(
        _prepared_afresh(MeanCCA()), [("x", x)], [("y", y)], n_permutations=2, n_bootstrap=12
    )
    np.testing.assert_allclose(_statistics(fast), _statistics(plain), rtol=0, atol=1e-10)


@pytest.mark.parametrize("measure", [MeanCCA(rank_tolerance=1e-3), PWCCA(rank_tolerance=1e-3)])
def test_a_resample_whose_rank_rule_drops_a_direction_is_prepared_afresh(measure):
    """A direction just above the rank rule's tolerance in the whole data falls below it in
    some resamples, which preparing them afresh drops: those resamples are prepared afresh.
    (Before, the well-conditioned basis kept every direction, and intervals of random layers
    whose spectrum reaches the tolerance differed from afresh ones by 8e-4: bench_cca.)"""
    rng = np.random.default_rng(11)
    base = rng.standard_normal((150, 5))
    x = np.hstack([base, base[:, :1] + base[:, 1:2] + 3e-3 * rng.standard_normal((150, 1))])
    y = x[:, :4] @ rng.standard_normal((4, 4)) + rng.standard_normal((150, 4))
    assert measure.prepare(x).rank == 6
    fresh = [measure.prepare(x[np.random.default_rng(s).integers(0, 150, 150)]) for s in range(20)]
    assert any(layer.rank < 6 for layer in fresh)  # some resamples drop it
    layers_a, layers_b = [("x", x)], [("y", y)]
    fast = compare_layers(measure, layers_a, layers_b, n_permutations=2, n_bootstrap=20, seed=5)
    plain = compare_layers(
        _prepared_afresh(measure), layers_a, layers_b, n_permutations=2, n_bootstrap=20, seed=5
    )
    np.testing.assert_allclose(_statistics(fast), _statistics(plain), rtol=0, atol=1e-10)


def test_mean_from_eigenvalues_falls_back_where_round_off_could_show():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 6))
    basis = np.linalg.qr(x - x.mean(0))[0]
    outside = rng.standard_normal((50, 6))
    outside -= outside.mean(0)
    outside -= basis @ (basis.T @ outside)  # orthogonal to x's span: every ρ is 0
    a, b = MeanCCA().prepare(x), MeanCCA().prepare(outside)
    assert MeanCCA().score(a, b) == pytest.approx(0.0, abs=1e-14)
    y = x @ rng.standard_normal((6, 6)) + rng.standard_normal((50, 6))
    c = MeanCCA().prepare(y)
    assert MeanCCA().score(a, c) == pytest.approx(np.mean(canonical_correlations(a, c)), abs=1e-13)


@pytest.mark.parametrize("measure", MEASURES, ids=lambda m: m.id)
def test_no_interval_where_a_resample_has_too_few_distinct_samples(measure: Measure):
    """At n = 100 a layer of 35 directions is scored (2 × 35 ≤ n − 1) but a bootstrap resample
    holds about 63 distinct samples, which two such layers would fill with correlations of 1
    whatever the data: that pair gets no interval and its estimator says why, while a pair of
    narrow layers in the same matrix still gets one."""
    rng = np.random.default_rng(0)
    wide = rng.standard_normal((100, 35))
    narrow = rng.standard_normal((100, 3))
    other = narrow @ rng.standard_normal((3, 3)) + rng.standard_normal((100, 3))
    measure = measure.configured({"variance_kept": 1.0} if measure.id == "cca/svcca" else None)
    results = compare_layers(
        measure, [("wide", wide), ("narrow", narrow)], [("other", other)], n_bootstrap=20
    )
    refused, kept = results[("wide", "other")], results[("narrow", "other")]
    assert refused.value is not None and refused.ci_low is None and refused.ci_high is None
    assert "no bootstrap interval" in refused.estimator
    assert "distinct samples" in refused.estimator
    assert kept.ci_low is not None and kept.ci_low <= kept.value <= kept.ci_high
    assert "no bootstrap interval" not in kept.estimator


def test_cca_draws_run_on_several_threads_with_one_blas_thread_each():
    from threadpoolctl import threadpool_info

    seen: list[tuple[int, list[int]]] = []

    class Watched(MeanCCA):
        def score(self, a, b):
            blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
            seen.append((threading.get_ident(), blas))
            return super().score(a, b)

    rng = np.random.default_rng(4)
    layers = [(f"l{i}", x) for i, x in enumerate(correlated_pair(rng, 200, 10, 10))]
    compare_layers(Watched(), layers, layers, 20, 0)
    assert all(blas == [1] * len(blas) for _, blas in seen)
    if len(os.sched_getaffinity(0)) >= 2:
        assert len({thread for thread, _ in seen}) >= 2
