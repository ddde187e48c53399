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
from analysis.models.extraction import extract_activations, extract_tokens
from analysis.probes.engine import run_probe
from analysis.probes.transforms import get_transform


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


# --- token-level activations (pooling tokens) -------------------------------------------------


def _rows(model, x, layer):
    """The layer's activations at every position (as a token-level extraction stores them)."""
    return extract_tokens(model, x, [layer], device="cpu")[layer]


def _invariance(fx: np.ndarray, fgx: np.ndarray) -> tuple[float, np.ndarray]:
    """I and Iᵢ by the definition, in float64: D the mean of ‖fᵢ − fⱼ‖² over ordered pairs."""
    fx, fgx = fx.astype(np.float64), fgx.astype(np.float64)
    n = len(fx)
    pairs = np.sum((fx[:, None] - fx[None]) ** 2, axis=2)
    distance = pairs.sum() / (n * (n - 1))
    each = 1 - np.sum((fgx - fx) ** 2, axis=1) / distance
    return float(each.mean()), each


def test_token_level_probes_read_positions_in_place_per_position_and_pool_moved_ones():
    """A conv map stored at every position (64 rows of 6 channels per digit): brightness keeps
    every pixel where it was, so position p of x + t is compared with position p of x, each
    row a sample of invariance and of the Lie derivative; rotation moves positions, so each
    sample's rows are averaged first (x and g x alike). Both against numpy on the rows of the
    model run by hand on the transformed digits."""
    x = _digits(40)
    model = CircularNet()
    stored = {"conv": _rows(model, x, "conv")}
    assert len(stored["conv"].values) == 40 * 64
    brightness, rotation = run_probe(
        model,
        x,
        ["conv"],
        {"image/brightness": [0, 0.3], "image/rotation": [0, 90]},
        stored,
        "tokens",
        device="cpu",
    )
    fx = stored["conv"].values

    assert brightness.positions == "per-position"
    assert brightness.positions_note.startswith("per position: position p of g x against")
    assert "each of the 2560 rows" in brightness.positions_note
    shifted = _rows(model, x + 0.3, "conv")
    np.testing.assert_array_equal(shifted.position, stored["conv"].position)
    score, each = _invariance(fx, shifted.values)
    assert brightness.invariance[0][1] == pytest.approx(score, rel=1e-6)
    assert brightness.invariance[0][0] == pytest.approx(1.0)
    per_sample = each.reshape(40, 64).mean(axis=1)  # a digit's invariance: its rows' mean
    np.testing.assert_allclose(brightness.per_sample[0, 1], per_sample, rtol=1e-5, atol=1e-6)
    h = 0.03  # a tenth of the smallest non-zero magnitude
    plus, minus = _rows(model, x + h, "conv").values, _rows(model, x - h, "conv").values
    scale = np.sqrt(np.mean(np.sum((fx - fx.mean(axis=0)) ** 2, axis=1)))
    lie = np.mean(np.linalg.norm((plus - minus) / (2 * h), axis=1)) / scale
    assert brightness.lie_derivative[0] == pytest.approx(lie, rel=1e-4)
    # The learned map reads each digit's mean of its rows: the conv layer pooled by mean.
    means = {
        t: extract_activations(model, x + t, ["conv"], "mean", device="cpu")["conv"]
        for t in (0.0, 0.3)
    }
    from analysis.probes.statistics import learned_equivariance

    fit = learned_equivariance(means[0.0], means[0.3])
    assert brightness.equivariance_r2[0][1] == pytest.approx(fit.r2, rel=1e-6)

    assert rotation.positions == "mean"
    assert rotation.positions_note.startswith("per position was asked, but rotation moves")
    turned = get_transform("image/rotation")(torch.from_numpy(x), 90).numpy()
    rows = _rows(model, turned, "conv")
    mean_gx = rows.values.reshape(40, 64, 6).mean(axis=1)  # numpy, not the code's pooling
    mean_x = fx.reshape(40, 64, 6).mean(axis=1)
    score, each = _invariance(mean_x, mean_gx)
    assert rotation.invariance[0][1] == pytest.approx(score, rel=1e-6)
    np.testing.assert_allclose(rotation.per_sample[0, 1], each, rtol=1e-5, atol=1e-6)

    # A reduction asked for pools every family by it, brightness too.
    (first,) = run_probe(
        model,
        x,
        ["conv"],
        {"image/brightness": [0, 0.3]},
        stored,
        "tokens",
        device="cpu",
        positions="first",
    )
    assert first.positions == "first" and first.positions_note.startswith("pooled on the fly")
    score, _ = _invariance(fx.reshape(40, 64, 6)[:, 0], shifted.values.reshape(40, 64, 6)[:, 0])
    assert first.invariance[0][1] == pytest.approx(score, rel=1e-6)
    # One vector per sample: nothing to say about positions.
    (plain,) = _probe(model, x, ["conv"], {"image/brightness": [0, 0.3]})
    assert plain.positions is None and plain.positions_note == ""


def test_text_edits_pool_each_texts_tokens_as_the_mean_extraction_does(tmp_path):
    """A BERT's token-level set (real tokens only): word dropout and case change the tokens,
    so each text's rows are averaged, of x and of g x alike, and the probe's numbers are those
    of a probe at pooling mean (the attention-masked mean), to float32 rounding."""
    from analysis.models.hf import load_directory
    from tests.formats import SENTENCES, tiny_bert_dir

    model = load_directory(tiny_bert_dir(tmp_path / "bert"))
    texts = np.array(
        [" ".join(SENTENCES[i % len(SENTENCES)].split()[: 3 + i % 4]) for i in range(30)]
    )
    families = {"text/word-dropout": [0, 0.3], "text/case": [0, 1]}
    rows = extract_tokens(model, texts, ["hidden.1"], device="cpu")
    assert len(rows["hidden.1"].values) > 30
    tokens = run_probe(model, texts, ["hidden.1"], families, rows, "tokens", device="cpu")
    means = extract_activations(model, texts, ["hidden.1"], "mean", device="cpu")
    pooled = run_probe(model, texts, ["hidden.1"], families, means, "mean", device="cpu")
    for got, want in zip(tokens, pooled, strict=True):
        assert got.positions == "mean"
        assert got.positions_note.startswith("per position was asked, but ")
        np.testing.assert_allclose(got.invariance, want.invariance, rtol=1e-5)
        np.testing.assert_allclose(got.equivariance_r2, want.equivariance_r2, rtol=1e-5)
        np.testing.assert_allclose(got.per_sample, want.per_sample, rtol=1e-4, atol=1e-5)
