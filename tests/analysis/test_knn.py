"""kNN agreement (analysis/measures/knn.py): exact neighbours, tie order, per-sample and global
scores,
invariances, relabelling permutations, chance level, degenerate input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import hypergeom, ortho_group
from sklearn.neighbors import NearestNeighbors

from analysis.errors import InputError
from analysis.measures.engine import compare_layers
from analysis.measures.knn import (
    KNNJaccard,
    MutualKNN,
    knn_indices,
    knn_jaccard_chance,
    knn_jaccard_per_sample,
    mutual_knn_per_sample,
)

SEEDS = [0, 1, 2, 3, 4]
METRICS = ["cosine", "euclidean"]


def correlated_pair(rng: np.random.Generator, n: int, p: int, q: int, noise: float = 1.0):
    x = rng.standard_normal((n, p))
    y = x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))
    return x, y


def mutual(x: np.ndarray, y: np.ndarray, k: int = 10, metric: str = "cosine") -> float:
    measure = MutualKNN(k, metric)
    return measure.score(measure.prepare(x), measure.prepare(y))


# --- neighbours -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(("n", "d", "k"), [(30, 5, 1), (200, 16, 10), (150, 300, 149)])
def test_agrees_with_sklearn_brute_force(seed, metric, n, d, k):
    """sklearn's ``kneighbors()`` without a query excludes each point itself, as we do."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) + 2.0
    peer = NearestNeighbors(n_neighbors=k, algorithm="brute", metric=metric).fit(x)
    np.testing.assert_array_equal(knn_indices(x, k, metric), peer.kneighbors(return_distance=False))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", METRICS)
def test_block_size_does_not_change_the_result(seed, metric):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((97, 8))
    whole = knn_indices(x, 7, metric, block_size=97)
    for block_size in (1, 10, 33):
        np.testing.assert_array_equal(knn_indices(x, 7, metric, block_size=block_size), whole)
    assert whole.shape == (97, 7) and np.issubdtype(whole.dtype, np.integer)
    assert not (whole == np.arange(97)[:, None]).any()  # self excluded
    assert all(len(set(row)) == 7 for row in whole)


@pytest.mark.parametrize("block_size", [1, 4, None])
def test_ties_broken_by_index(block_size):
    """Exact duplicates and equal integer distances: nearest first, equal distances by index,
    whatever the block size."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(40, 2)).astype(float)  # 9 distinct points, many duplicates
    found = knn_indices(x, 6, "euclidean", block_size=block_size)
    squared = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)  # exact for small integers
    for i in range(40):
        others = np.array([j for j in range(40) if j != i])
        expected = others[np.lexsort((others, squared[i, others]))][:6]
        np.testing.assert_array_equal(found[i], expected)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", METRICS)
def test_duplicated_rows_are_ordered_by_index(seed, metric):
    """A bootstrap-like resample: copies of a sample are at distance 0 from it and at equal
    distances from every other sample, so they must appear together, lower index first."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((25, 7))  # odd width: rows sit at differently aligned addresses
    x = base[rng.integers(0, 25, 60)]
    found = knn_indices(x, 8, metric)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    for i in range(60):
        others = np.array([j for j in range(60) if j != i])
        distance = np.array([np.sum((unit[i] - unit[j]) ** 2) for j in others])
        distance[(x[others] == x[i]).all(axis=1)] = 0.0  # copies of i
        np.testing.assert_array_equal(found[i], others[np.lexsort((others, distance))][:8])


@pytest.mark.parametrize("seed", SEEDS)
def test_differences_below_float32_resolution_are_ranked_exactly(seed):
    """Neighbours of the centre of a sphere whose radii differ by ~1e-9 (far below float32's
    resolution): float32 screening cannot order them, the exact float64 ranking must."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((120, 32))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radii = 1.0 + 1e-9 * rng.standard_normal(120)
    x = np.vstack([np.zeros(32), directions * radii[:, None]]) + 3.0
    found = knn_indices(x, 15, "euclidean")[0]
    np.testing.assert_array_equal(found, 1 + np.argsort(radii, kind="stable")[:15])


@pytest.mark.parametrize("seed", SEEDS)
def test_large_offset_does_not_reorder_neighbours(seed):
    """Peer's convention: sklearn's brute-force 'euclidean' expands ‖x‖² − 2x·y + ‖y‖² on the
    rows as given, which at an offset of 1e7 loses the digits that order neighbours (most rows
    reorder). Screening on centred rows and ranking by differences keeps them."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((300, 7))
    np.testing.assert_array_equal(
        knn_indices(x + 1e7, 10, "euclidean"), knn_indices(x, 10, "euclidean")
    )


# --- per-sample agreement -------------------------------------------------------------------


def test_per_sample_values():
    ix = np.array([[1, 2, 3], [0, 2, 3], [3, 1, 0], [2, 1, 0]])
    iy = np.array([[3, 2, 1], [2, 4, 5], [4, 5, 6], [1, 2, 5]])
    np.testing.assert_allclose(mutual_knn_per_sample(ix, iy), [1.0, 1 / 3, 0.0, 2 / 3])
    np.testing.assert_allclose(knn_jaccard_per_sample(ix, iy), [1.0, 1 / 5, 0.0, 2 / 4])
    # different k on each side: Jaccard is still defined
    np.testing.assert_allclose(knn_jaccard_per_sample(ix, iy[:, :1]), [1 / 3, 1 / 3, 0.0, 1 / 3])
    with pytest.raises(InputError):
        mutual_knn_per_sample(ix, iy[:, :2])
    with pytest.raises(InputError):
        knn_jaccard_per_sample(ix, iy[:3])


@pytest.mark.parametrize("seed", SEEDS)
def test_measures_are_means_of_per_sample_values(seed):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 120, 6, 9)
    for measure, per_sample in [
        (MutualKNN(5), mutual_knn_per_sample),
        (KNNJaccard(5), knn_jaccard_per_sample),
    ]:
        a, b = measure.prepare(x), measure.prepare(y)
        expected = per_sample(knn_indices(x, 5), knn_indices(y, 5))
        np.testing.assert_array_equal(measure.per_sample(a, b), expected)
        assert measure.score(a, b) == pytest.approx(expected.mean(), abs=1e-15)
    jaccard = KNNJaccard(5)
    assert 0 < jaccard.score(jaccard.prepare(x), jaccard.prepare(y)) < mutual(x, y, 5) < 1


@pytest.mark.parametrize(("k", "n"), [(1, 2), (3, 4), (4, 30), (10, 1797), (25, 200)])
def test_jaccard_chance_level(k, n):
    """The mean Jaccard index of independent neighbourhoods, against SciPy's hypergeometric
    law and a simulation of random neighbour sets (whose mean lies within 4 SE of it); 1 when
    every other sample is a neighbour."""
    chance = knn_jaccard_chance(k, n)
    j = np.arange(k + 1)
    assert chance == pytest.approx(np.sum(hypergeom(n - 1, k, k).pmf(j) * j / (2 * k - j)))
    rng = np.random.default_rng(k * n)
    draws = 20_000
    others = np.arange(n - 1)
    ix = np.array([rng.choice(others, k, replace=False) for _ in range(draws)])
    iy = np.array([rng.choice(others, k, replace=False) for _ in range(draws)])
    simulated = knn_jaccard_per_sample(ix, iy)
    assert abs(simulated.mean() - chance) <= 4 * simulated.std() / np.sqrt(draws) + 1e-12
    if k == n - 1:
        assert chance == 1.0
    with pytest.raises(InputError):
        knn_jaccard_chance(n, n)


# --- properties -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", METRICS)
def test_self_agreement_and_symmetry(seed, metric):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 80, 5, 12)
    for measure in (MutualKNN(8, metric), KNNJaccard(8, metric)):
        a, b = measure.prepare(x), measure.prepare(y)
        assert measure.score(a, a) == 1.0
        assert measure.score(a, b) == measure.score(b, a)
        assert 0.1 < measure.score(a, b) < 0.95


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", METRICS)
def test_invariances(seed, metric):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 100, 7, 9)
    base = mutual(x, y, 10, metric)
    q = ortho_group.rvs(7, random_state=seed)
    assert mutual(x, x @ q * 3.5, 10, metric) == 1.0
    assert mutual(x @ q * 1e-3, y, 10, metric) == base
    assert mutual(x[:, rng.permutation(7)], y, 10, metric) == base
    if metric == "cosine":
        assert mutual(x * rng.uniform(0.1, 10, size=(100, 1)), y, 10, metric) == base
        assert "translation" not in MutualKNN(10, metric).invariant_to
    else:
        assert mutual(x + rng.normal(0, 20, size=7), y, 10, metric) == base
        assert "translation" in MutualKNN(10, metric).invariant_to


@pytest.mark.parametrize("seed", SEEDS)
def test_independent_data_scores_k_over_n_minus_1(seed):
    """Each of the n − 1 other samples is one of i's k neighbours in Y with chance k/(n − 1),
    whatever X's neighbours are: the expected mutual kNN of unrelated spaces."""
    rng = np.random.default_rng(seed)
    n, k = 400, 10
    value = mutual(rng.standard_normal((n, 6)), rng.standard_normal((n, 8)), k)
    assert value == pytest.approx(k / (n - 1), abs=0.012)  # about 5 standard errors


def test_declared_properties():
    for measure, measure_id in [(MutualKNN(), "knn/mutual"), (KNNJaccard(), "knn/jaccard")]:
        described = measure.describe()
        assert described["id"] == measure_id
        assert described["range"] == [0.0, 1.0]
        assert described["larger_is_more_similar"] is True and described["symmetric"] is True
        assert (measure.k, measure.metric) == (10, "cosine")
        assert measure.supports_bootstrap is False
        # The kNN parameter named metric is not the measure's being a metric (it is not one).
        assert described["metric"] is False
        assert described["parameters"][1]["name"] == "metric"


# --- permutations and the engine ------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", METRICS)
def test_permute_relabels_like_recomputing(seed, metric):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((150, 6))
    perm = rng.permutation(150)
    measure = MutualKNN(7, metric)
    permuted = measure.permute(measure.prepare(y), perm)
    np.testing.assert_array_equal(permuted.neighbours, knn_indices(y[perm], 7, metric))
    recomputed = measure.prepare(measure.rows(permuted))
    np.testing.assert_array_equal(recomputed.neighbours, permuted.neighbours)


@pytest.mark.parametrize("seed", SEEDS)
def test_engine_baseline_is_chance_level(seed):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 300, 6, 9, noise=0.5)
    result = compare_layers(MutualKNN(10), [("x", x)], [("y", y)], 5, 0, seed)[("x", "y")]
    assert result.value == pytest.approx(mutual(x, y), abs=1e-15)
    assert result.baseline == pytest.approx(10 / 299, abs=0.01)
    assert result.value > 0.3 and result.warnings == []
    assert result.estimator == "exact k=10, cosine"


# --- degenerate input -----------------------------------------------------------------------


def test_k_must_be_below_n():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 3))
    with pytest.raises(InputError, match=r"layer1.*k = 10.*at least 11 samples, got 10"):
        compare_layers(MutualKNN(10), [("layer1", x)], [("b", x)])
    with pytest.raises(InputError, match="at least 11 samples"):
        knn_indices(x, 10)
    assert knn_indices(x, 9).shape == (10, 9)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="positive integer"):
            MutualKNN(bad)


def test_zero_row_is_refused_for_cosine_only():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4))
    x[13] = 0.0
    with pytest.raises(InputError, match=r"relu3.*all zeros.*row 13"):
        compare_layers(KNNJaccard(5), [("relu3", x)], [("b", rng.standard_normal((20, 3)))])
    assert knn_indices(x, 5, "euclidean").shape == (20, 5)


def test_other_degenerate_input():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4))
    x[3, 2] = np.nan
    with pytest.raises(InputError, match=r"conv5.*NaN or Inf"):
        compare_layers(MutualKNN(5), [("conv5", x)], [("b", rng.standard_normal((20, 3)))])
    with pytest.raises(InputError, match="unknown kNN metric"):
        MutualKNN(5, "manhattan")
    with pytest.raises(InputError, match="unknown kNN metric"):
        knn_indices(rng.standard_normal((20, 4)), 5, "dot")
