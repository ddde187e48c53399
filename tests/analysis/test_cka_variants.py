"""Debiased linear CKA and RBF CKA (analysis/measures/cka.py): definitions, peers, invariances,
input."""

from __future__ import annotations

import numpy as np
import pytest
import repsim
from scipy.spatial.distance import pdist, squareform
from scipy.stats import ortho_group

import analysis.measures.gram as gram_module
from analysis.errors import InputError
from analysis.measures.cka import RBFCKA, DebiasedCKA
from analysis.measures.engine import compare_layers
from analysis.measures.gram import linear_cka

SEEDS = [0, 1, 2, 3, 4]
MEASURES = [DebiasedCKA(), RBFCKA(), RBFCKA(fraction=0.2)]


def label(measure) -> str:
    return f"{measure.id}-{measure.fraction}" if isinstance(measure, RBFCKA) else measure.id


def score(measure, x: np.ndarray, y: np.ndarray) -> float:
    return measure.score(measure.prepare(x, "X"), measure.prepare(y, "Y"))


def correlated_pair(rng: np.random.Generator, n: int, p: int, q: int, noise: float = 1.0):
    x = rng.standard_normal((n, p))
    y = x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))
    return x, y


def unbiased_hsic(k: np.ndarray, m: np.ndarray) -> float:
    """Song et al. 2012's unbiased HSIC, written out on Gram matrices with zeroed diagonals."""
    n = len(k)
    k, m = k - np.diag(np.diag(k)), m - np.diag(np.diag(m))
    ones = np.ones(n)
    return float(
        (
            np.trace(k @ m)
            + (ones @ k @ ones) * (ones @ m @ ones) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (ones @ k @ m @ ones)
        )
        / (n * (n - 3))
    )


def reference_debiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    """On the uncentred data: the U-statistic does not see a translation of either side."""
    k, m = x @ x.T, y @ y.T
    return unbiased_hsic(k, m) / np.sqrt(unbiased_hsic(k, k) * unbiased_hsic(m, m))


def reference_rbf_cka(x: np.ndarray, y: np.ndarray, fraction: float) -> float:
    """exp(−d²/(2σ²)) with σ = fraction × median of the distinct-pair distances (scipy's
    pdist), plug-in HSIC tr(KHLH) on explicitly centred kernels."""

    def centred_kernel(z: np.ndarray) -> np.ndarray:
        distances = pdist(z)
        sigma = fraction * np.median(distances)
        n = len(z)
        h = np.eye(n) - np.ones((n, n)) / n
        return h @ np.exp(-(squareform(distances) ** 2) / (2 * sigma**2)) @ h

    k, m = centred_kernel(x), centred_kernel(y)
    return float(np.trace(k @ m) / np.sqrt(np.trace(k @ k) * np.trace(m @ m)))


# --- definitions ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("shape", "gram"), [((40, 5, 7), False), ((10, 30, 50), True)])
def test_debiased_matches_song_estimator_in_both_forms(seed, shape, gram, monkeypatch):
    rng = np.random.default_rng(seed)
    n, p, q = shape
    x, y = correlated_pair(rng, n, p, q)
    x += rng.normal(0, 5, size=p)  # uncentred input
    expected = reference_debiased_cka(x, y)
    measure = DebiasedCKA()
    a, b = measure.prepare(x), measure.prepare(y)
    assert measure.estimator(a, b) == ("gram" if gram else "feature")
    assert measure.score(a, b) == pytest.approx(expected, abs=1e-10)
    for forced in (False, True):  # the other form gives the same value
        monkeypatch.setattr(gram_module, "use_gram_form", lambda a, b, f=forced: f)
        assert score(measure, x, y) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fraction", [0.2, 0.8, 1.5])
def test_rbf_matches_kernel_formula(seed, fraction):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 25, 6, 9)
    assert score(RBFCKA(fraction), x, y) == pytest.approx(
        reference_rbf_cka(x, y, fraction), abs=1e-10
    )


def test_rbf_bandwidth_is_fraction_of_median_distinct_pair_distance():
    """Kornblith's published ``gram_rbf`` takes σ² = fraction² × median of all n² squared
    distances, the n zero self-distances included: a smaller σ than the definition we follow
    (MEASURES.md: fraction × median pairwise distance). Even-sized pair lists take the mean of
    the two middle distances, as numpy and repsim do."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4))  # 190 pairs: an even count
    layer = RBFCKA(0.8).prepare(x)
    assert layer.sigma == pytest.approx(0.8 * np.median(pdist(x)), rel=1e-12)
    kornblith = 0.8 * np.sqrt(np.median(squareform(pdist(x)) ** 2))
    assert kornblith < layer.sigma - 0.01


def test_rbf_fraction_must_be_positive():
    with pytest.raises(InputError, match="positive"):
        RBFCKA(fraction=0.0)


# --- peers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(5, 3, 4), (20, 5, 7), (10, 30, 50), (64, 8, 3)])
def test_debiased_agrees_with_repsim_song_hsic(seed, shape):
    """repsim 0.1.5's ``hsic(..., estimator="song")`` is Song's unbiased HSIC on zero-diagonal
    linear Grams: normalised by its own diagonal it is our debiased CKA.

    Peer's convention: ``repsim.cka(..., estimator="song")`` is NOT that ratio. Its C++
    (``core_CKA``) puts the unbiased HSIC in the numerator but "for stability" always uses the
    plug-in (Gretton) HSIC in the denominator, the mixed estimator MEASURES.md warns about.
    We check that we reproduce its number from that recipe, and that it differs from ours.
    """
    rng = np.random.default_rng(seed)
    n, p, q = shape
    x, y = correlated_pair(rng, n, p, q)
    ours = score(DebiasedCKA(), x, y)
    song = repsim.hsic([x, y], kernel_type="linear", estimator="song")
    assert ours == pytest.approx(song[0, 1] / np.sqrt(song[0, 0] * song[1, 1]), abs=1e-6)

    gretton = repsim.hsic([x, y], kernel_type="linear", estimator="gretton")
    mixed = repsim.cka([x, y], kernel_type="linear", estimator="song")[0, 1]
    assert mixed == pytest.approx(song[0, 1] / np.sqrt(gretton[0, 0] * gretton[1, 1]), abs=1e-6)
    assert abs(mixed - ours) > 1e-3


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(5, 3, 4), (20, 5, 7), (10, 30, 50), (64, 8, 3)])
def test_rbf_agrees_with_repsim(seed, shape):
    """Peer's convention: repsim 0.1.5 ``kernel_type="rbf"`` is exp(−d²/(2σ²)) with σ the median
    of the distinct-pair distances (fraction 1, no parameter) and the Gretton plug-in HSIC
    throughout: our RBFCKA(fraction=1). Its other kernels use other bandwidths: ``rbf_mean``
    exp(−d²/mean d²), ``rbf_dualmed`` exp(−d²/(2 mᵢ mⱼ)) with per-sample median distances mᵢ."""
    rng = np.random.default_rng(seed)
    n, p, q = shape
    x, y = correlated_pair(rng, n, p, q)
    peer = repsim.cka([x, y], kernel_type="rbf", estimator="gretton")[0, 1]
    assert score(RBFCKA(fraction=1.0), x, y) == pytest.approx(float(peer), abs=1e-6)


# --- properties -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure", MEASURES, ids=label)
def test_self_similarity_symmetry_and_range(seed, measure):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 30, 6, 11)
    x *= rng.uniform(0.1, 10, size=6)
    assert score(measure, x, x) == pytest.approx(1.0, abs=1e-12)
    value = score(measure, x, y)
    assert value == pytest.approx(score(measure, y, x), abs=1e-12)
    low, high = measure.range
    assert low <= value <= high
    assert 0.05 < value < 0.999  # non-trivial, so the invariance checks can fail


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure", MEASURES, ids=label)
def test_declared_invariances_hold(seed, measure):
    assert set(measure.invariant_to) == {"orthogonal", "isotropic scaling", "translation"}
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 30, 6, 11)
    base = score(measure, x, y)
    q_x, q_y = ortho_group.rvs(6, random_state=seed), ortho_group.rvs(11, random_state=seed + 9)
    assert score(measure, x @ q_x, y @ q_y) == pytest.approx(base, abs=1e-10)
    assert score(measure, x * 1e3, y * 1e-3) == pytest.approx(base, abs=1e-10)
    assert score(measure, x + rng.normal(0, 50, size=6), y - 7.5) == pytest.approx(base, abs=1e-9)
    stretch = np.diag([10.0, 1, 1, 1, 1, 1])  # not declared: a general linear map changes it
    assert abs(score(measure, x @ stretch, y) - base) > 1e-3


@pytest.mark.parametrize("seed", SEEDS)
def test_debiased_removes_the_small_sample_bias(seed):
    """Plug-in CKA of independent data is about d/(n+d) = 0.94 at n=32, d=512; debiased ≈ 0."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((32, 512)), rng.standard_normal((32, 512))
    assert linear_cka(x, y) > 0.9
    assert abs(score(DebiasedCKA(), x, y)) < 0.1


@pytest.mark.parametrize("seed", SEEDS)
def test_debiased_interval_is_not_clipped_to_the_display_range(seed):
    """Unrelated data at n = 12: the interval reaches below the display range's −0.2, and is
    reported (clipped only to the true bounds [−1, 1])."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((12, 3)), rng.standard_normal((12, 3))
    result = compare_layers(DebiasedCKA(), [("x", x)], [("y", y)], n_bootstrap=100, seed=seed)
    interval = result[("x", "y")]
    assert DebiasedCKA.range == (-0.2, 1.0) and DebiasedCKA.bounds == (-1.0, 1.0)
    assert -1.0 <= interval.ci_low < -0.2 < interval.ci_high <= 1.0


def test_debiased_can_be_negative_and_is_reported():
    rng = np.random.default_rng(0)
    values = [
        score(DebiasedCKA(), rng.standard_normal((12, 3)), rng.standard_normal((12, 3)))
        for _ in range(40)
    ]
    assert min(values) < 0
    assert all(np.isfinite(v) and -1.0 <= v <= 1.0 for v in values)


# --- degenerate input -----------------------------------------------------------------------


@pytest.mark.parametrize("measure", MEASURES, ids=label)
def test_too_few_samples_constant_and_non_finite_layers_are_refused(measure):
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="at least 4 samples"):
        measure.prepare(rng.standard_normal((3, 5)))
    with pytest.raises(InputError, match="constant"):
        measure.prepare(np.full((10, 3), 0.1, dtype=np.float32), "dead")
    x = rng.standard_normal((10, 3))
    x[2, 1] = np.nan
    with pytest.raises(InputError, match="conv2.*NaN"):
        measure.prepare(x, "conv2")
    with pytest.raises(InputError, match="conv2"):
        compare_layers(measure, [("fc", rng.standard_normal((10, 3)))], [("conv2", x)])


@pytest.mark.parametrize("measure", MEASURES, ids=label)
def test_four_samples_and_constant_columns_give_finite_values(measure):
    rng = np.random.default_rng(0)
    for _ in range(20):
        value = score(measure, rng.standard_normal((4, 5)), rng.standard_normal((4, 2)))
        assert np.isfinite(value) and -1.0 <= value <= 1.0
    x, y = correlated_pair(rng, 20, 4, 6)
    with_constant = np.hstack([x, np.full((20, 1), 3.0)])
    assert score(measure, with_constant, y) == pytest.approx(score(measure, x, y), abs=1e-12)


@pytest.mark.parametrize("n", [4, 5, 8])
def test_debiased_refuses_when_self_hsic_is_not_positive(n):
    """A layer where a single sample differs from all the others is not constant, but its
    unbiased self-HSIC is exactly 0 at any n (every term pairs that sample with itself)."""
    x = np.zeros((n, 2))
    x[0] = [1.0, 2.0]
    assert unbiased_hsic(x @ x.T, x @ x.T) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(InputError, match="HSIC.*not positive"):
        DebiasedCKA().prepare(x, "head")
    x[1] = [0.0, 1.0]  # a second sample apart: fine
    assert score(DebiasedCKA(), x, x) == pytest.approx(1.0, abs=1e-12)


def test_rbf_refuses_when_most_samples_coincide():
    x = np.zeros((10, 3))
    x[:2] = np.random.default_rng(0).standard_normal((2, 3))  # 28 of 45 pairs identical
    with pytest.raises(InputError, match="median distance"):
        RBFCKA().prepare(x, "pool")


# --- through the engine ---------------------------------------------------------------------


@pytest.mark.parametrize("measure", [DebiasedCKA(), RBFCKA()], ids=label)
def test_compare_layers_baseline_and_interval(measure):
    rng = np.random.default_rng(3)
    x, y = correlated_pair(rng, 300, 5, 5, noise=0.3)
    result = compare_layers(measure, [("x", x)], [("y", y)], n_bootstrap=40, seed=1)[("x", "y")]
    assert result.value == pytest.approx(score(measure, x, y), abs=1e-12)
    assert result.value > 0.5
    assert abs(result.baseline) < 0.05
    assert result.warnings == []
    assert result.ci_low <= result.value <= result.ci_high
    low, high = measure.bounds or measure.range
    assert low <= result.ci_low < result.ci_high <= high


def test_narrow_rbf_kernel_has_a_high_baseline():
    """With σ = 0.2 × median distance most kernel entries are ≈ 0, the centred kernels of
    unrelated data look alike, and even n = 300 samples in 5 dimensions score ≈ 0.5."""
    rng = np.random.default_rng(3)
    x, y = correlated_pair(rng, 300, 5, 5, noise=0.3)
    baselines = [
        compare_layers(RBFCKA(fraction), [("x", x)], [("y", y)], seed=1)[("x", "y")].baseline
        for fraction in (0.2, 0.8)
    ]
    assert baselines[0] > 0.3 > 0.05 > baselines[1]


@pytest.mark.parametrize("measure", MEASURES, ids=label)
def test_permuted_prepared_layer_scores_like_permuted_data(measure):
    rng = np.random.default_rng(5)
    x, y = correlated_pair(rng, 40, 6, 50)  # Gram form for debiased CKA
    perm = rng.permutation(40)
    a, b = measure.prepare(x), measure.prepare(y)
    measure.score(a, b)  # caches Gram matrices that permute() must permute too
    assert measure.score(a, measure.permute(b, perm)) == pytest.approx(
        score(measure, x, y[perm]), abs=1e-12
    )
