"""RSA (analysis/measures/rsa.py): RDMs, Spearman comparison, agreement with rsatoolbox, cheap
permutations, invariances, degenerate input and the sample limit."""

from __future__ import annotations

import numpy as np
import pytest
import rsatoolbox
from scipy.spatial.distance import pdist, squareform
from scipy.stats import ortho_group, rankdata, spearmanr

import analysis.measures.rsa as rsa_module
from analysis.errors import InputError
from analysis.measures.engine import compare_layers
from analysis.measures.rsa import RSA, EuclideanRSA, average_ranks, condensed_rdm, rsa

SEEDS = [0, 1, 2, 3, 4]
METRICS = ["correlation", "euclidean"]


def correlated_pair(rng: np.random.Generator, n: int, p: int, q: int, noise: float = 1.0):
    x = rng.standard_normal((n, p))
    y = x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))
    return x, y


def reference_rsa(x: np.ndarray, y: np.ndarray, metric: str) -> float:
    """scipy: condensed RDMs from ``pdist`` (row-major upper triangle), compared by Spearman."""
    return float(spearmanr(pdist(x, metric), pdist(y, metric)).statistic)


# --- the RDM --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [4, 37, 600])  # 600: several row blocks
def test_condensed_rdm_matches_pdist(seed, n, monkeypatch):
    monkeypatch.setattr(rsa_module, "BLOCK_ENTRIES", 5000)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 9)) + 3.0
    np.testing.assert_allclose(condensed_rdm(x, "correlation"), pdist(x, "correlation"), atol=1e-12)
    np.testing.assert_allclose(condensed_rdm(x, "euclidean"), pdist(x, "sqeuclidean"), atol=1e-10)


def test_average_ranks_are_scipys():
    rng = np.random.default_rng(0)
    for values in [
        rng.standard_normal(1000),
        rng.integers(0, 5, 1000).astype(float),  # many ties
        np.round(rng.standard_normal(5000), 1),
        np.array([2.0]),
        np.array([1.0, 1.0, 1.0]),
    ]:
        np.testing.assert_array_equal(average_ranks(values), rankdata(values, method="average"))


# --- agreement with scipy and rsatoolbox ----------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("shape", [(4, 3, 3), (30, 5, 40), (120, 20, 8)])
def test_agrees_with_scipy_spearman(seed, metric, shape):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, *shape)
    # not 1e-12: the tie grid (1e-11 of the RDM scale) can merge two of the reference's distinct
    # values, which moves ρ by about 1e-7 at n = 120
    assert rsa(x, y, metric) == pytest.approx(reference_rsa(x, y, metric), abs=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("shape", [(6, 4, 3), (40, 10, 30), (150, 30, 12)])
def test_agrees_with_rsatoolbox(seed, metric, shape):
    """Cross-check against rsatoolbox 0.3.2.

    Peer's conventions (rsatoolbox/rdm/calc.py, compare.py): ``calc_rdm(method="correlation")``
    removes each pattern's mean across channels, scales it to unit norm and takes 1 − the inner
    product (1 − Pearson correlation between samples, as here); ``method="euclidean"`` gives
    *squared* Euclidean distances divided by the number of channels (a monotone transform,
    invisible to Spearman). RDM vectors are the upper triangle (k = 1) in row-major order.
    ``compare(method="spearman")`` ranks each vector with ``scipy.stats.rankdata`` (average ties)
    and returns the cosine of the centred ranks: Pearson of ranks, tie-corrected.
    """
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, *shape)
    rdm_x = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(x), method=metric)
    rdm_y = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(y), method=metric)
    peer = float(rsatoolbox.rdm.compare(rdm_x, rdm_y, method="spearman")[0, 0])
    assert rsa(x, y, metric) == pytest.approx(peer, abs=1e-6)


def tied_pair() -> tuple[np.ndarray, np.ndarray]:
    """Integer activations: many exactly equal dissimilarities, no constant sample."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(25, 4)).astype(float)
    y = x[:, :3] + rng.integers(0, 2, size=(25, 3))
    x[np.ptp(x, axis=1) == 0, 0] += 1
    y[np.ptp(y, axis=1) == 0, 0] += 1
    assert len(np.unique(pdist(x, "sqeuclidean"))) < 20  # 300 entries, heavily tied
    return x, y


def test_exact_ties_rank_as_ties():
    """Squared Euclidean distances of integers are exact in ``pdist``: the reference has the
    true ties, which our BLAS-computed (round-off) distances must reproduce."""
    x, y = tied_pair()
    assert rsa(x + 0.1, y * 0.3, "euclidean") == pytest.approx(
        reference_rsa(x, y, "sqeuclidean"), abs=1e-12
    )


@pytest.mark.parametrize("metric", METRICS)
def test_ties_ranked_by_average_like_rsatoolbox(metric):
    """rsatoolbox's ``compare(method="spearman")`` ranks raw float dissimilarities, so on tied
    data its value depends on how round-off orders equal entries (0.732 vs the exact 0.713 for
    Euclidean here). Given RDMs whose ties are exact (its own vectors snapped to a grid far
    coarser than round-off, as RepLens does), it agrees: both rank ties by their average."""
    x, y = tied_pair()
    vectors = []
    for data in (x, y):
        raw = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(data), method=metric)
        vector = raw.get_vectors()
        vectors.append(np.rint(vector / (1e-10 * vector.max())))
    peer = rsatoolbox.rdm.compare(
        rsatoolbox.rdm.RDMs(vectors[0]), rsatoolbox.rdm.RDMs(vectors[1]), method="spearman"
    )
    assert rsa(x, y, metric) == pytest.approx(float(peer[0, 0]), abs=1e-6)


# --- properties -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", METRICS)
def test_self_similarity_symmetry_and_range(seed, metric):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 30, 6, 11)
    assert rsa(x, x, metric) == pytest.approx(1.0, abs=1e-12)
    assert rsa(x, y, metric) == pytest.approx(rsa(y, x, metric), abs=1e-12)
    value = rsa(x, y, metric)
    assert 0.1 < value < 0.99
    assert -1.0 <= rsa(x, rng.standard_normal((30, 4)), metric) <= 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_invariances(seed):
    """Both: unit permutation, isotropic scaling, monotone change of distances. Euclidean RSA
    also: rotation and translation. Correlation RSA also: per-sample offset and scale, but not
    rotation (a sample's mean across features depends on the basis)."""
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 40, 8, 10)
    q = ortho_group.rvs(8, random_state=seed)
    for metric in METRICS:
        base = rsa(x, y, metric)
        assert rsa(x[:, rng.permutation(8)] * 17.0, y, metric) == pytest.approx(base, abs=1e-12)
    base = rsa(x, y, "euclidean")
    assert rsa(x @ q + 5.0, y, "euclidean") == pytest.approx(base, abs=1e-8)
    base = rsa(x, y, "correlation")
    per_sample = x * rng.uniform(0.5, 3.0, size=(40, 1)) + rng.normal(0, 4, size=(40, 1))
    assert rsa(per_sample, y, "correlation") == pytest.approx(base, abs=1e-8)
    shifted = x + 3.0  # a mean across features that rotation can move
    assert abs(rsa(shifted @ q, y, "correlation") - rsa(shifted, y, "correlation")) > 1e-3
    assert "orthogonal" not in RSA.invariant_to and "orthogonal" in EuclideanRSA.invariant_to


def test_declared_properties():
    for measure, measure_id in [
        (RSA(), "rsa/correlation-spearman"),
        (EuclideanRSA(), "rsa/euclidean-spearman"),
    ]:
        described = measure.describe()
        assert described["id"] == measure_id
        assert described["range"] == [-1.0, 1.0]
        assert described["larger_is_more_similar"] is True and described["symmetric"] is True


# --- permutations and the engine ------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure", [RSA(), EuclideanRSA()], ids=["correlation", "euclidean"])
@pytest.mark.parametrize("n", [9, 300])
def test_permute_equals_preparing_permuted_rows(seed, measure, n, monkeypatch):
    monkeypatch.setattr(rsa_module, "BLOCK_ENTRIES", 4000)  # several row blocks at n = 300
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, n, 5, 7)
    perm = rng.permutation(n)
    b = measure.prepare(y)
    permuted = measure.permute(b, perm)
    np.testing.assert_allclose(permuted.ranks, measure.prepare(y[perm]).ranks, atol=1e-12)
    np.testing.assert_array_equal(measure.rows(permuted), y[perm])
    a = measure.prepare(x)
    assert measure.score(a, permuted) == pytest.approx(
        reference_rsa(x, y[perm], measure.rdm_metric), abs=1e-6
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_engine_baseline_and_interval(seed):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 60, 6, 9)
    result = compare_layers(RSA(), [("x", x)], [("y", y)], 5, 20, seed)[("x", "y")]
    assert result.value == pytest.approx(reference_rsa(x, y, "correlation"), abs=1e-6)
    perm_rng = np.random.default_rng(seed)
    shuffled = [reference_rsa(x, y[perm_rng.permutation(60)], "correlation") for _ in range(5)]
    assert result.baseline == pytest.approx(np.mean(shuffled), abs=1e-6)
    assert abs(result.baseline) < 0.1 and result.warnings == []
    assert -1.0 <= result.ci_low <= result.value <= result.ci_high <= 1.0


# --- degenerate input -----------------------------------------------------------------------


def test_constant_sample_is_refused_for_correlation_only():
    rng = np.random.default_rng(0)
    x, y = correlated_pair(rng, 12, 4, 5)
    x[7] = 2.5
    with pytest.raises(InputError, match=r"layer2\.relu.*constant across features.*row 7"):
        compare_layers(RSA(), [("layer2.relu", x)], [("y", y)])
    assert np.isfinite(rsa(x, y, "euclidean"))


@pytest.mark.parametrize("metric", METRICS)
def test_flat_rdm_is_refused(metric):
    """Identical samples (or one-hot codes of distinct classes) leave nothing to rank."""
    y = np.random.default_rng(0).standard_normal((6, 3))
    for flat in (np.tile([1.0, 2.0, 4.0], (6, 1)), np.eye(6)):
        if metric == "correlation" and np.ptp(flat, axis=1).min() == 0:
            continue
        with pytest.raises(InputError, match=r"logits.*all dissimilarities.*equal"):
            compare_layers(
                RSA() if metric == "correlation" else EuclideanRSA(), [("logits", flat)], [("y", y)]
            )


def test_sample_limit():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((101, 3))
    assert not RSA(max_samples=101).prepare(x).sampled
    assert RSA(max_samples=101).prepare(x).ranks.shape == (5050,)
    assert RSA(max_samples=100).prepare(x, "fc7").sampled
    assert RSA().max_samples == 20_000


# --- above the exact limit: Spearman over a sample of pairs ---------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_sampled_dissimilarities_are_the_rdm_at_those_pairs(metric):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 6))
    i, j = rsa_module.sampled_pairs(300, 5000)
    assert np.all(i < j) and np.all(np.diff(i * 300 + j) > 0)  # distinct, condensed order
    assert 4600 < i.size <= 5000  # a few drawn twice
    full = squareform(pdist(x, "correlation" if metric == "correlation" else "sqeuclidean"))
    np.testing.assert_allclose(rsa_module.sampled_rdm(x, (i, j), metric), full[i, j], atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure", [RSA, EuclideanRSA], ids=["correlation", "euclidean"])
def test_sampled_value_estimates_the_all_pairs_value_within_its_stated_spread(seed, measure):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 400, 5, 7, noise=2.0)
    exact = measure()
    sampled = measure(max_samples=399, sampled_pairs=20_000)
    a, b = sampled.prepare(x), sampled.prepare(y)
    i, j = rsa_module.sampled_pairs(400, 20_000)
    metric = "correlation" if exact.rdm_metric == "correlation" else "sqeuclidean"
    expected = spearmanr(squareform(pdist(x, metric))[i, j], squareform(pdist(y, metric))[i, j])
    assert sampled.score(a, b) == pytest.approx(expected.statistic, abs=1e-9)
    all_pairs = exact.score(exact.prepare(x), exact.prepare(y))
    sd = sampled.sampling_sd(a, b)
    assert 0.001 < sd < 0.02
    assert abs(sampled.score(a, b) - all_pairs) < 4 * sd
    text = sampled.estimator(a, b)
    assert f"sample of {i.size:,} of the 79,800 pairs" in text and f"{sd:.1e}" in text
    assert "all 79,800 pairs" in exact.estimator(exact.prepare(x), exact.prepare(y))


def test_sampled_baseline_permutes_samples():
    rng = np.random.default_rng(2)
    x, y = correlated_pair(rng, 200, 5, 7)
    measure = RSA(max_samples=100, sampled_pairs=4000)
    result = compare_layers(measure, [("x", x)], [("y", y)], 3, 0, seed=4)[("x", "y")]
    perm_rng = np.random.default_rng(4)
    a = measure.prepare(x)
    shuffled = [measure.score(a, measure.prepare(y[perm_rng.permutation(200)])) for _ in range(3)]
    assert result.baseline == pytest.approx(np.mean(shuffled), abs=1e-12)
    assert result.value > 0.3 and abs(result.baseline) < 0.1


def test_other_degenerate_input():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 3))
    x[1, 1] = np.inf
    with pytest.raises(InputError, match="NaN or Inf"):
        rsa(x, rng.standard_normal((10, 3)))
    with pytest.raises(InputError, match="at least 4 samples"):
        rsa(rng.standard_normal((3, 3)), rng.standard_normal((3, 3)))
    with pytest.raises(InputError, match="different numbers of samples"):
        rsa(rng.standard_normal((10, 3)), rng.standard_normal((11, 3)))
    with pytest.raises(InputError, match="unknown RDM metric"):
        rsa(rng.standard_normal((10, 3)), rng.standard_normal((10, 3)), "cosine")
