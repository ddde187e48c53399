"""The torch path of the CCA family and RSA (the path they take on a GPU), run here on the CPU's
torch against their numpy path: equal to 1e-12 in float64, through the whole engine (values,
permutation baselines, bootstrap intervals)."""

from __future__ import annotations

import numpy as np
import pytest

import analysis.measures.cca as cca_module
import analysis.measures.rsa as rsa_module
from analysis.measures.cca import PWCCA, SVCCA, MeanCCA, canonical_correlations, prepare_qr
from analysis.measures.engine import compare_layers
from analysis.measures.rsa import RSA, EuclideanRSA, condensed_rdm, sampled_pairs, sampled_rdm


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small tensors: torch's thread pool would only wait for a second core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def layers(seed: int) -> list[tuple[str, np.ndarray]]:
    """Three related float32 layers, one with a dropped (dependent) column; no exactly shared
    direction (a repeated ρ = 1 leaves PWCCA's vectors to each SVD's arbitrary choice)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((150, 10))
    y = x @ rng.standard_normal((10, 8)) + 0.8 * rng.standard_normal((150, 8))
    y[:, 5] = y[:, 0] - y[:, 2]
    z = np.tanh(x[:, :6]) + 0.5 * rng.standard_normal((150, 6))
    return [(name, v.astype(np.float32)) for name, v in [("x", x), ("y", y), ("z", z)]]


def statistics(results) -> np.ndarray:
    return np.array(
        [(r.value, r.baseline, r.baseline_std, r.ci_low, r.ci_high) for r in results.values()]
    )


def test_prepared_basis_on_the_torch_path_spans_the_same_space():
    import torch

    (_, x), (_, y), _ = layers(0)
    a, b = prepare_qr(x, "x"), prepare_qr(y, "y")
    ta, tb = prepare_qr(x, "x", None, "cpu"), prepare_qr(y, "y", None, "cpu")
    assert isinstance(ta.basis, torch.Tensor) and ta.basis.dtype == torch.float64
    assert (ta.rank, tb.rank) == (a.rank, b.rank) == (10, 7)
    np.testing.assert_allclose(
        canonical_correlations(ta, tb), canonical_correlations(a, b), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("measure", [MeanCCA(), SVCCA(), PWCCA()], ids=lambda m: m.id)
def test_cca_family_on_the_torch_path_equals_the_numpy_path(seed, measure, monkeypatch):
    data = layers(seed)
    expected = compare_layers(measure, data, data, 3, 6, seed=1)
    monkeypatch.setattr(cca_module, "torch_device", lambda device: "cpu")
    found = compare_layers(measure, data, data, 3, 6, seed=1)
    assert found.keys() == expected.keys()
    np.testing.assert_allclose(statistics(found), statistics(expected), rtol=0, atol=1e-12)


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_rdm_products_on_the_torch_path_equal_numpy(metric):
    x = layers(2)[0][1]
    np.testing.assert_allclose(
        condensed_rdm(x, metric, device="cpu"), condensed_rdm(x, metric), rtol=0, atol=1e-12
    )
    pairs = sampled_pairs(150, 3000)
    np.testing.assert_allclose(
        sampled_rdm(x, pairs, metric, device="cpu"), sampled_rdm(x, pairs, metric), atol=1e-12
    )


@pytest.mark.parametrize(
    "measure",
    [RSA(), EuclideanRSA(), RSA(max_samples=100, sampled_pairs=5000)],
    ids=["correlation", "euclidean", "sampled"],
)
def test_rsa_on_the_torch_path_equals_the_numpy_path(measure, monkeypatch):
    data = layers(3)
    expected = compare_layers(measure, data, data, 3, 4, seed=2)
    monkeypatch.setattr(rsa_module, "torch_device", lambda device: "cpu")
    found = compare_layers(measure, data, data, 3, 4, seed=2)
    np.testing.assert_allclose(statistics(found), statistics(expected), rtol=0, atol=1e-12)
