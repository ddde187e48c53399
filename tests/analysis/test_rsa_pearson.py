"""Pearson RSA (analysis/measures/rsa.py): the dense form and the exact streamed form (row blocks
of both RDMs, never the whole RDM) against scipy and rsatoolbox, equal whatever the block size,
stable on an RDM whose mean dwarfs its spread, through the engine and on the torch path."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest
import rsatoolbox
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr

import analysis.measures.rsa as rsa_module
from analysis.errors import InputError
from analysis.measures.engine import compare_layers
from analysis.measures.rsa import (
    EuclideanPearsonRSA,
    PearsonRSA,
    condensed_rdm,
    rsa,
    streamed_moments,
)

SEEDS = [0, 1, 2]
MEASURES = [PearsonRSA, EuclideanPearsonRSA]
IDS = ["correlation", "euclidean"]


def correlated_pair(seed: int, n: int, p: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)) + rng.normal(0, 2, size=p)
    y = np.tanh(x @ rng.standard_normal((p, q))) + 0.5 * rng.standard_normal((n, q))
    return x, y


def reference(x: np.ndarray, y: np.ndarray, metric: str) -> float:
    """scipy: condensed RDMs from ``pdist`` (row-major upper triangle), compared by Pearson."""
    return float(pearsonr(pdist(x, metric), pdist(y, metric)).statistic)


def streamed(measure: type[PearsonRSA]) -> PearsonRSA:
    """The measure with every n above its dense limit."""
    return measure(max_samples=3)


def value(measure: PearsonRSA, x: np.ndarray, y: np.ndarray) -> float:
    return measure.score(measure.prepare(x, "x"), measure.prepare(y, "y"))


def moments_value(x: np.ndarray, y: np.ndarray, metric: str, block_rows: int) -> float:
    rows = [rsa_module._rows_for(z, metric, name) for z, name in ((x, "x"), (y, "y"))]
    moments, _ = streamed_moments(rows[0], rows[1], block_rows, metric == "euclidean")
    assert moments.count == len(x) * (len(x) - 1) // 2
    return moments.products / np.sqrt(moments.squares_a * moments.squares_b)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure", MEASURES, ids=IDS)
@pytest.mark.parametrize("shape", [(4, 3, 3), (37, 5, 40), (250, 20, 8)])
def test_dense_and_streamed_equal_scipy(seed, measure, shape):
    x, y = correlated_pair(seed, *shape)
    expected = reference(x, y, measure.rdm_metric)
    assert value(measure(), x, y) == pytest.approx(expected, abs=1e-10)
    assert value(streamed(measure), x, y) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", IDS)
def test_agrees_with_rsatoolbox(seed, metric):
    """rsatoolbox 0.3.2's ``compare(method="corr")`` is Pearson's r of the RDM vectors (upper
    triangle, row-major). Its ``calc_rdm(method="correlation")`` is 1 − Pearson r between
    samples, as here; its ``method="euclidean"`` gives squared distances divided by the number
    of channels, so the Euclidean distances are its vectors' square roots (times √channels,
    which Pearson does not see)."""
    x, y = correlated_pair(seed, 80, 6, 9)
    vectors = [
        rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(z), method=metric).get_vectors()
        for z in (x, y)
    ]
    if metric == "euclidean":
        vectors = [np.sqrt(v) for v in vectors]
    peer = rsatoolbox.rdm.compare(
        rsatoolbox.rdm.RDMs(vectors[0]), rsatoolbox.rdm.RDMs(vectors[1]), method="corr"
    )
    assert rsa(x, y, metric, "pearson") == pytest.approx(float(peer[0, 0]), abs=1e-10)
    measure = streamed(PearsonRSA if metric == "correlation" else EuclideanPearsonRSA)
    assert value(measure, x, y) == pytest.approx(float(peer[0, 0]), abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", IDS)
def test_streamed_value_is_the_same_whatever_the_block_size(seed, metric):
    x, y = correlated_pair(seed, 120, 7, 5)
    values = [moments_value(x, y, metric, rows) for rows in (1, 2, 7, 50, 119, 120, 500)]
    np.testing.assert_allclose(values, values[0], rtol=0, atol=1e-12)
    assert values[0] == pytest.approx(reference(x, y, metric), abs=1e-10)


def test_stable_where_the_mean_dwarfs_the_spread():
    """Samples near the vertices of a large simplex: every Euclidean distance is about 1.4e4,
    with an sd of about 1.4. The one-pass Σa² − (Σa)²/N form loses eight digits here (off by
    more than 1e-10); the merged centred sums keep the value to 1e-10 at every block size."""
    rng = np.random.default_rng(5)
    n = 300
    x = 1e4 * np.eye(n) + rng.standard_normal((n, n))
    y = x + 3.0 * rng.standard_normal((n, n))
    a, b = pdist(x), pdist(y)
    assert a.mean() > 5e3 * a.std()
    expected = float(pearsonr(a, b).statistic)
    total = a.size
    one_pass = (a @ b - a.sum() * b.sum() / total) / np.sqrt(
        (a @ a - a.sum() ** 2 / total) * (b @ b - b.sum() ** 2 / total)
    )
    assert abs(one_pass - expected) > 1e-10
    for rows in (1, 13, n):
        assert moments_value(x, y, "euclidean", rows) == pytest.approx(expected, abs=1e-10)
    assert value(EuclideanPearsonRSA(), x, y) == pytest.approx(expected, abs=1e-10)


def test_streamed_memory_grows_with_the_block_not_with_n_squared(monkeypatch):
    """At n = 2,000 the condensed RDM alone is 16 MB; a score streamed in blocks of 5 rows
    traces well under 2 MB (the blocks, their copies, the row sums)."""
    monkeypatch.setattr(rsa_module, "BLOCK_ENTRIES", 10_000)
    x, y = correlated_pair(0, 2_000, 8, 6)
    measure = streamed(EuclideanPearsonRSA)
    a, b = measure.prepare(x, "x"), measure.prepare(y, "y")
    assert measure.block_rows(2_000) == 5
    tracemalloc.start()
    found = measure.score(a, b)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2e6 and condensed_rdm(x).nbytes > 1.5e7
    assert found == pytest.approx(reference(x, y, "euclidean"), abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure", MEASURES, ids=IDS)
def test_engine_dense_and_streamed_agree(seed, measure, monkeypatch):
    """Values, exact permutation baselines and bootstrap intervals, dense or streamed."""
    monkeypatch.setattr(rsa_module, "BLOCK_ENTRIES", 500)  # several blocks at n = 90
    x, y = correlated_pair(seed, 90, 6, 8)
    layers_a, layers_b = [("x", x), ("y", y)], [("y", y)]
    dense = compare_layers(measure(), layers_a, layers_b, 4, 5, seed)
    found = compare_layers(streamed(measure), layers_a, layers_b, 4, 5, seed)
    for key, expected in dense.items():
        result = found[key]
        for field in ("value", "baseline", "baseline_std", "ci_low", "ci_high"):
            assert getattr(result, field) == pytest.approx(getattr(expected, field), abs=1e-12)
    metric = measure.rdm_metric
    assert found[("x", "y")].value == pytest.approx(reference(x, y, metric), abs=1e-10)
    assert found[("y", "y")].value == pytest.approx(1.0, abs=1e-12)
    assert found[("x", "y")].baseline == 0.0 and 0.01 < found[("x", "y")].baseline_std < 0.2
    name = "Euclidean" if metric == "euclidean" else "correlation"
    assert dense[("x", "y")].estimator == f"{name} RDM, Pearson over all 4,005 pairs"
    assert found[("x", "y")].estimator == (
        f"{name} RDM, Pearson over all 4,005 pairs: exact, streamed in blocks of 5 rows "
        "(above n = 3 no RDM is held)"
    )
    assert measure().baseline_note(10) == "exact, over all row permutations"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure", MEASURES, ids=IDS)
def test_exact_baseline_is_the_mean_and_sd_over_all_permutations(seed, measure):
    """All 720 orders of 6 samples, each scored by scipy: Mantel's moments, dense or
    streamed (here in blocks of 3 rows)."""
    x, y = correlated_pair(seed, 6, 3, 4)
    metric = measure.rdm_metric
    scores = [reference(x, y[list(perm)], metric) for perm in itertools.permutations(range(6))]
    for form in (measure(), streamed(measure)):
        form.block_rows = lambda n: 3  # type: ignore[method-assign]
        result = compare_layers(form, [("x", x)], [("y", y)])[("x", "y")]
        assert result.baseline == pytest.approx(np.mean(scores), abs=1e-12)
        assert result.baseline_std == pytest.approx(np.std(scores), abs=1e-12)


@pytest.mark.parametrize("measure", MEASURES, ids=IDS)
def test_exact_baseline_matches_many_sampled_shuffles(measure):
    x, y = correlated_pair(8, 60, 5, 9)
    rng = np.random.default_rng(8)
    shuffled = [reference(x, y[rng.permutation(60)], measure.rdm_metric) for _ in range(2000)]
    result = compare_layers(measure(), [("x", x)], [("y", y)])[("x", "y")]
    assert abs(np.mean(shuffled)) < 3 * result.baseline_std / np.sqrt(2000)
    assert result.baseline_std == pytest.approx(np.std(shuffled), rel=0.05)


@pytest.mark.parametrize(
    "measure",
    [measure() for measure in MEASURES] + [streamed(measure) for measure in MEASURES],
    ids=[f"{form}-{metric}" for form in ("dense", "streamed") for metric in IDS],
)
def test_torch_path_equals_numpy(measure, monkeypatch):
    """On a GPU the inner products between samples run in torch (placement.torch_device);
    here on the CPU's torch, through the engine, equal to 1e-12."""
    import torch

    monkeypatch.setattr(rsa_module, "BLOCK_ENTRIES", 700)
    x, y = correlated_pair(4, 100, 9, 6)
    layers_a, layers_b = [("x", x.astype(np.float32))], [("y", y), ("x", x)]
    expected = compare_layers(measure, layers_a, layers_b, 3, 3, seed=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(rsa_module, "torch_device", lambda device: "cpu")
    try:
        found = compare_layers(measure, layers_a, layers_b, 3, 3, seed=2)
    finally:
        torch.set_num_threads(threads)
    for key, result in expected.items():
        for field in ("value", "baseline", "baseline_std", "ci_low", "ci_high"):
            assert getattr(found[key], field) == pytest.approx(getattr(result, field), abs=1e-12)


@pytest.mark.parametrize("make", [lambda m: m(), streamed], ids=["dense", "streamed"])
@pytest.mark.parametrize("measure", MEASURES, ids=IDS)
def test_flat_rdm_is_refused(make, measure):
    """One-hot codes of distinct samples: every distance (and every correlation) between them
    is the same, so their RDM correlates with nothing. The dense form refuses the layer when
    it is prepared, the streamed form when the pair is scored: the same sentence."""
    y = np.random.default_rng(0).standard_normal((6, 3))
    with pytest.raises(InputError, match=r"^logits: all dissimilarities between samples are"):
        compare_layers(make(measure), [("logits", np.eye(6))], [("y", y)])


@pytest.mark.parametrize("make", [lambda m: m(), streamed], ids=["dense", "streamed"])
def test_affine_copies_of_one_pattern_are_refused_by_correlation_distance(make):
    """Every correlation distance is 0 (round-off of 1e-16 in the computation): nothing to
    correlate. Their Euclidean distances differ, and are compared."""
    rng = np.random.default_rng(1)
    pattern = rng.standard_normal(5)
    x = rng.uniform(0.5, 2.0, size=(8, 1)) * pattern + rng.normal(0, 3, size=(8, 1))
    y = rng.standard_normal((8, 4))
    with pytest.raises(InputError, match=r"^fc: all dissimilarities between samples are"):
        compare_layers(make(PearsonRSA), [("fc", x)], [("y", y)])
    result = compare_layers(make(EuclideanPearsonRSA), [("fc", x)], [("y", y)])[("fc", "y")]
    assert result.value == pytest.approx(reference(x, y, "euclidean"), abs=1e-10)


def test_degenerate_input():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 3))
    x[4] = 1.5
    with pytest.raises(InputError, match=r"fc7.*constant across features.*row 4"):
        streamed(PearsonRSA).prepare(x, "fc7")
    assert np.isfinite(rsa(x, rng.standard_normal((10, 3)), "euclidean", "pearson"))
    with pytest.raises(InputError, match="unknown RDM comparison"):
        rsa(x, x, "euclidean", "kendall")
    with pytest.raises(InputError, match="different numbers of samples"):
        rsa(rng.standard_normal((10, 3)), rng.standard_normal((11, 3)), comparison="pearson")


@pytest.mark.parametrize("measure", MEASURES, ids=IDS)
def test_duplicated_samples_are_at_distance_zero(measure):
    """A bootstrap resample repeats samples: their distance is 0 as in ``pdist``, not the
    square root of the Gram form's round-off (about 1e-8), which would move r by about 1e-10."""
    x, y = correlated_pair(6, 60, 12, 7)
    idx = np.random.default_rng(6).integers(0, 60, 60)
    expected = reference(x[idx], y[idx], measure.rdm_metric)
    assert value(measure(), x[idx], y[idx]) == pytest.approx(expected, abs=1e-12)
    assert value(streamed(measure), x[idx], y[idx]) == pytest.approx(expected, abs=1e-12)
