"""The torch path of Procrustes, kNN and ridge predictivity (the path they take on a GPU),
run here on the CPU's torch against their numpy path: equal to 1e-12 in float64, neighbour
lists identical. tests/benchmarks/bench_cuda.py makes the same checks on CUDA."""

from __future__ import annotations

import numpy as np
import pytest

import analysis.measures.knn as knn_module
import analysis.measures.procrustes as procrustes_module
import analysis.measures.regression as regression_module
from analysis.measures.engine import compare_layers
from analysis.measures.knn import KNNJaccard, MutualKNN, knn_indices
from analysis.measures.placement import torch_device
from analysis.measures.procrustes import (
    ProcrustesAngular,
    ProcrustesEuclidean,
    nuclear_similarity,
    prepare,
)
from analysis.measures.regression import RidgePredictivity

SEEDS = [0, 1, 2]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors: torch's thread pool would only wait for a second core (seconds per test
    on a loaded machine); the values do not depend on it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def correlated_pair(rng: np.random.Generator, n: int, p: int, q: int):
    x = rng.standard_normal((n, p)).astype(np.float32) + 5
    y = x @ rng.standard_normal((p, q)).astype(np.float32) + rng.standard_normal((n, q))
    return x, y.astype(np.float32)


def test_placement_rule():
    """A named CUDA device takes the torch path, the CPU the numpy path; unnamed, the GPU when
    there is one."""
    import torch

    assert torch_device("cpu") is None
    assert torch_device("cuda") == "cuda"
    assert torch_device("cuda:1") == "cuda:1"
    assert torch_device(None) == ("cuda" if torch.cuda.is_available() else None)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(80, 12, 7), (30, 45, 60)])  # feature and QR-reduced
def test_procrustes_torch_equals_numpy(seed, shape):
    import torch

    rng = np.random.default_rng(seed)
    n, p, q = shape
    x, y = correlated_pair(rng, n, p, q)
    a, b = prepare(x, "X"), prepare(y, "Y")
    ta, tb = prepare(x, "X", "cpu"), prepare(y, "Y", "cpu")
    assert isinstance(ta.data, torch.Tensor) and ta.data.dtype == torch.float64
    assert ta.reduced == a.reduced and ta.data.shape == a.data.shape
    assert 0.05 < nuclear_similarity(a, b) < 0.999  # a value that could differ
    assert nuclear_similarity(ta, tb) == pytest.approx(nuclear_similarity(a, b), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_torch_screening_gives_the_same_neighbours(seed, metric):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((300, 16)).astype(np.float32) + 3
    for block_size in (None, 7):
        expected = knn_indices(x, 10, metric, block_size=block_size)
        found = knn_indices(x, 10, metric, block_size=block_size, device="cpu")
        np.testing.assert_array_equal(found, expected)


def test_knn_torch_screening_keeps_the_tie_order():
    """Duplicated samples and discrete values: equal distances, ordered by index on both
    paths."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 3, size=(60, 5)).astype(np.float64)
    x = np.vstack([base, base[:20]])
    for metric in ("euclidean", "cosine"):
        x_metric = x + 1 if metric == "cosine" else x  # no all-zero rows for cosine
        expected = knn_indices(x_metric, 8, metric)
        np.testing.assert_array_equal(knn_indices(x_metric, 8, metric, device="cpu"), expected)


MEASURES = [
    (ProcrustesAngular(), procrustes_module, 3),
    (ProcrustesEuclidean(), procrustes_module, 3),
    (MutualKNN(5), knn_module, 0),
    (KNNJaccard(5, "euclidean"), knn_module, 0),
    (RidgePredictivity(n_splits=3), regression_module, 3),
]


@pytest.mark.parametrize(
    ("measure", "module", "n_bootstrap"), MEASURES, ids=[m.id for m, _, _ in MEASURES]
)
def test_measures_on_the_torch_path_equal_the_numpy_path(measure, module, n_bootstrap, monkeypatch):
    """The whole engine (values, permutation baselines, bootstrap intervals) with the measure
    routed to its torch path as on a GPU, here on the CPU's torch."""
    rng = np.random.default_rng(11)
    x, y = correlated_pair(rng, 90, 12, 20)
    # No layer against itself: near distance 0, arccos turns a nuclear norm's round-off of
    # 1e-16 into 1e-8 on any two implementations (see procrustes.py).
    w = y + rng.standard_normal(y.shape).astype(np.float32)
    layers_a, layers_b = [("x", x), ("y", y)], [("w", w), ("z", x[:, :5] ** 2)]
    expected = compare_layers(measure, layers_a, layers_b, 3, n_bootstrap, seed=1)
    monkeypatch.setattr(module, "torch_device", lambda device: "cpu")
    found = compare_layers(measure, layers_a, layers_b, 3, n_bootstrap, seed=1)
    assert found.keys() == expected.keys()
    for key, result in expected.items():
        other = found[key]
        for field in ("value", "baseline", "baseline_std", "ci_low", "ci_high"):
            a, b = getattr(result, field), getattr(other, field)
            assert (a is None) == (b is None), (key, field)
            if a is not None:
                assert b == pytest.approx(a, abs=1e-12), (key, field)
    assert any(r.ci_low is not None for r in found.values()) == (n_bootstrap > 0)


def test_ridge_torch_predictions_equal_numpy():
    import torch

    rng = np.random.default_rng(3)
    x, y = correlated_pair(rng, 120, 15, 6)
    measure = RidgePredictivity(n_splits=4)
    expected = measure.fit(measure.prepare(x), measure.prepare(y))
    torch_measure = measure.on("cpu")
    layer = regression_module.PreparedLayer(torch.from_numpy(measure.prepare(x).centred))
    target = regression_module.PreparedLayer(torch.from_numpy(measure.prepare(y).centred))
    found = torch_measure.fit(layer, target)
    assert found.r2 == pytest.approx(expected.r2, abs=1e-12)
    assert found.relative_alphas == expected.relative_alphas
    np.testing.assert_allclose(found.predictions, expected.predictions, rtol=0, atol=1e-10)


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("shape", [(120, 9, 14), (20, 30, 25)])  # feature form and Gram form
def test_cka_on_tensors_equals_numpy(shape, streamed, monkeypatch):
    """Linear and debiased CKA with the layers held as torch tensors, as on a GPU (here the
    CPU's torch), against the numpy arrays the CPU uses: values and exact baselines."""
    import torch

    import analysis.measures.gram as gram_module
    from analysis.measures.cka import DebiasedCKA, LinearCKA
    from analysis.measures.transfer import to_device

    rng = np.random.default_rng(4)
    n, p, q = shape
    x, y = correlated_pair(rng, n, p, q)
    layers_a, layers_b = [("x", x), ("y", y)], [("y", y), ("z", x[:, :5] ** 2)]
    if streamed:
        monkeypatch.setattr(gram_module, "RESIDENT_BYTES", 0)
        monkeypatch.setattr(gram_module, "BLOCK_BYTES", 8 * 7 * (p + q))
    for measure in (LinearCKA(), DebiasedCKA()):
        expected = compare_layers(measure, layers_a, layers_b)
        with monkeypatch.context() as tensors:
            tensors.setattr(gram_module, "_float64", lambda rows, device: to_device(rows, "cpu"))
            tensors.setattr(
                gram_module, "_zeros", lambda r, c, device: torch.zeros((r, c), dtype=torch.float64)
            )
            found = compare_layers(measure, layers_a, layers_b)
            resident = gram_module.prepare(x, "x")._resident
            assert isinstance(resident, torch.Tensor) if not streamed else resident is None
        for key, result in expected.items():
            assert found[key].value == pytest.approx(result.value, abs=1e-12)
            assert found[key].baseline == pytest.approx(result.baseline, abs=1e-12)
            assert found[key].baseline_std == pytest.approx(result.baseline_std, abs=1e-12)
