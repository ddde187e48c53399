"""The probe engine on models whose answers are known exactly: a circular convolution followed
by global average pooling is invariant to circular shifts, the identity is equivariant to
everything, a random dense layer on flattened pixels is not invariant to shifts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from analysis.errors import InputError
from analysis.models.extraction import extract_activations
from analysis.probes.engine import run_probe


def _digits(n: int = 200) -> np.ndarray:
    return (load_digits().images[:n] / 16).astype(np.float32)[:, None]


class CircularNet(nn.Module):
    """conv (circular padding, stride 1) → global average pool → ReLU → linear head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 6, 3, padding=1, padding_mode="circular")
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(6, 10))

    def forward(self, x):
        return self.head(self.pool(self.conv(x)))


def _probe(model, x, layers, families, pooling="mean"):
    stored = extract_activations(model, x, layers, pooling, device="cpu")
    return run_probe(model, x, layers, families, stored, pooling, device="cpu")


def test_pooling_after_a_circular_convolution_is_invariant_to_circular_shifts():
    x = _digits()
    (result,) = _probe(
        CircularNet(), x, ["conv", "pool", "output"], {"image/translate-circular": [0, 1, 2.5, 4]}
    )
    # Mean-pooled, the conv map is the global average pool already: every layer is invariant,
    # at every magnitude, fractional shifts included (they interpolate two integer shifts).
    np.testing.assert_allclose(result.invariance, 1.0, atol=1e-6)
    assert max(abs(v) for v in result.lie_derivative) < 1e-5
    # The conv map is equivariant: shifting the input shifts the map (stride 1), exactly.
    assert result.structured_error[0][1] < 1e-5 and result.structured_error[0][3] < 1e-5
    assert result.structured_error[0][2] is None  # a shift of 2.5 px has no exact action
    assert result.consistency == [1.0, 1.0, 1.0, 1.0]  # the output never changes

    # Kept whole (flattened), the map moves with the input: not invariant, yet equivariant.
    (flat,) = _probe(CircularNet(), x, ["conv"], {"image/translate-circular": [0, 2]}, "flatten")
    assert flat.invariance[0][0] == pytest.approx(1.0) and flat.invariance[0][1] < 0.9
    assert flat.structured_error[0][1] < 1e-5 and flat.lie_derivative[0] > 0.01


def test_the_identity_is_equivariant_to_everything_and_a_dense_layer_is_not_invariant():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12)).astype(np.float32)
    identity = nn.Sequential(nn.Identity())
    (permuted,) = _probe(identity, x, ["0"], {"vector/permutation": [0, 0.5, 1.0]})
    # The learned map recovers the permutation; the identity map does not predict it.
    assert min(permuted.equivariance_r2[0]) > 0.999
    assert permuted.identity_r2[0][2] < 0.5 < permuted.identity_r2[0][0] == pytest.approx(1.0)
    assert permuted.shuffled_r2[0][2] < 0.05

    torch.manual_seed(0)
    dense = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh())
    images = _digits()
    (shifted,) = _probe(dense, images, ["2"], {"image/translate-circular": [0, 2, 4]})
    assert shifted.invariance[0][0] == pytest.approx(1.0)
    assert shifted.invariance[0][2] < 0.5  # a dense map of pixels is not shift-invariant
    assert shifted.lie_derivative[0] > 0.1


def test_probe_results_are_seeded_and_stored_per_sample():
    x = _digits(120)
    model = CircularNet()
    families = {"image/noise": [0, 0.1, 0.3], "image/rotation": [0, 90]}
    first = _probe(model, x, ["conv", "pool"], families)
    again = _probe(model, x, ["conv", "pool"], families)
    for a, b in zip(first, again, strict=True):
        assert a.to_json() == b.to_json()
        np.testing.assert_array_equal(a.per_sample, b.per_sample)
    noise, rotation = first
    assert noise.per_sample.shape == (2, 3, 120) and noise.lie_derivative is None  # not continuous
    np.testing.assert_allclose(
        noise.per_sample[:, 1:].mean(axis=2), np.array(noise.invariance)[:, 1:], atol=1e-5
    )
    # More noise moves every layer more.
    assert all(row[1] > row[2] for row in noise.invariance)
    assert rotation.structured_error[0][1] is not None  # 90°: rot90 acts on the conv map


def test_a_probe_needs_layers_and_their_stored_activations():
    x = _digits(20)
    model = CircularNet()
    with pytest.raises(InputError, match="at least one layer"):
        run_probe(model, x, [], {"image/noise": [0, 0.1]}, {}, device="cpu")
    with pytest.raises(InputError, match="no stored activations for pool"):
        run_probe(model, x, ["pool"], {"image/noise": [0, 0.1]}, {}, device="cpu")


def test_a_layer_that_cannot_be_scored_is_reported_not_fatal():
    torch.manual_seed(0)
    dead = nn.Linear(16, 4)
    nn.init.zeros_(dead.weight)  # the same output for every sample
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), dead, nn.ReLU(), nn.Linear(4, 3))
    x = _digits(60)
    (blur,) = _probe(model, x, ["1", "2"], {"image/blur": [0, 0.5, 1]})
    assert blur.invariance[1] == [None, None, None]
    assert any(w.startswith("2: ") and "same activations" in w for w in blur.warnings)
    assert blur.invariance[0][0] == pytest.approx(1.0) and blur.invariance[0][2] < 1.0
    # Blur exists for σ ≥ 0 only: its Lie derivative is a forward difference from σ = 0, and
    # a Gaussian blur moves an image by O(σ²) (the heat equation runs in σ²): 0 in σ.
    assert blur.lie_derivative[0] == pytest.approx(0.0, abs=1e-6)
    assert blur.lie_derivative[1] is None
    assert blur.consistency == [1.0, 1.0, 1.0]  # a constant output never changes class
