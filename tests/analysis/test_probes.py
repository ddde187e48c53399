"""Invariance and equivariance probes (analysis/probes/statistics.py): known answers, the exact
denominator
of invariance against brute force, the learned map against scikit-learn and
analysis.measures.alignment, a circular convolution's exact equivariance, and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.metrics import r2_score

from analysis.errors import InputError
from analysis.measures.alignment import fit_alignment
from analysis.measures.regression import DEFAULT_ALPHAS
from analysis.probes.statistics import (
    invariance,
    learned_equivariance,
    lie_derivative,
    most_moved,
    prediction_consistency,
    structured_equivariance,
    transform_prediction,
)

SEEDS = [0, 1, 2]


def activations(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Uneven column scales and an offset, as a real layer's activations have."""
    return rng.standard_normal((n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(0, 4, d)


def split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The split of analysis.measures.alignment, by hand."""
    n_test = math.ceil(test_fraction * n)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


# --- invariance -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_invariance_of_the_identity_is_exactly_one(dtype):
    fx = activations(np.random.default_rng(0), 20, 5).astype(dtype)
    result = invariance(fx, fx.copy())
    assert result.score == 1.0
    assert result.per_sample.dtype == np.float32
    assert np.all(result.per_sample == 1.0)


def test_denominator_is_the_mean_over_all_ordered_pairs():
    """fgx = fx + e₀ moves every sample by exactly 1, so D = 1 / (1 − I); brute force over the
    n(n − 1) ordered pairs i ≠ j (n = 30) gives the same D."""
    rng = np.random.default_rng(1)
    n, d = 30, 7
    fx = activations(rng, n, d)
    shift = np.zeros(d)
    shift[0] = 1.0
    result = invariance(fx, fx + shift)
    pairs = [np.sum((fx[i] - fx[j]) ** 2) for i in range(n) for j in range(n) if i != j]
    assert len(pairs) == n * (n - 1)
    assert 1.0 / (1.0 - result.score) == pytest.approx(np.mean(pairs), rel=1e-10)
    covariance = np.cov(fx, rowvar=False, bias=True)
    assert np.mean(pairs) == pytest.approx(2 * n / (n - 1) * np.trace(covariance), rel=1e-12)
    assert result.score == pytest.approx(float(np.mean(result.per_sample)), abs=1e-6)


def test_swapping_samples_scores_zero_on_average_over_all_cyclic_shifts():
    """The n − 1 cyclic shifts i → i + k (k = 1 … n − 1) pair every ordered pair i ≠ j exactly
    once, so their mean numerator is D itself and their mean invariance exactly 0."""
    rng = np.random.default_rng(2)
    n = 25
    fx = activations(rng, n, 6)
    scores = [invariance(fx, np.roll(fx, k, axis=0)).score for k in range(1, n)]
    assert np.mean(scores) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_random_row_shuffle_scores_about_one_over_n(seed):
    """For a uniformly random permutation, E[numerator] = (n − 1)/n · D, so E[I] = 1/n. For
    Gaussian f(x) with identity covariance, ‖fᵢ − fⱼ‖² = 2χ²_d (mean 2d, variance 8d); a mean of
    n such terms over D ≈ 2d gives a standard deviation of I of about √(2/(n·d))."""
    rng = np.random.default_rng(seed)
    n, d = 2000, 16
    fx = rng.standard_normal((n, d))
    score = invariance(fx, fx[rng.permutation(n)]).score
    assert abs(score - 1.0 / n) < 6.0 * math.sqrt(2.0 / (n * d))


@pytest.mark.parametrize("seed", SEEDS)
def test_invariance_is_unchanged_by_a_common_similarity_transform(seed):
    rng = np.random.default_rng(seed)
    n, d = 40, 6
    fx = activations(rng, n, d)
    fgx = fx + 0.7 * rng.standard_normal((n, d))
    q = ortho_group.rvs(d, random_state=rng)
    offset, s = rng.normal(0, 10, d), 3.5

    def moved(a):
        return s * a @ q + offset

    plain, transformed = invariance(fx, fgx), invariance(moved(fx), moved(fgx))
    assert transformed.score == pytest.approx(plain.score, rel=1e-10)
    np.testing.assert_allclose(transformed.per_sample, plain.per_sample, rtol=1e-5, atol=1e-6)


def test_invariance_refuses_a_layer_whose_samples_are_all_equal():
    fx = np.ones((10, 3))
    with pytest.raises(InputError, match="every sample has the same activations"):
        invariance(fx, fx + 1.0)


# --- learned equivariance -------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_a_rotated_layer_is_equivariant_but_not_invariant(seed):
    rng = np.random.default_rng(seed)
    n, d = 400, 6
    fx = activations(rng, n, d)
    r = ortho_group.rvs(d, random_state=rng)
    result = learned_equivariance(fx, fx @ r, seed=seed)
    assert result.r2 > 0.999
    assert result.r2_identity < 0.5
    assert result.r2_shuffled < 0.05
    assert (result.n_train, result.n_test) == (320, 80)
    assert result.test.sum() == 80


def test_an_unchanged_layer_is_equivariant_and_invariant():
    fx = activations(np.random.default_rng(3), 100, 5).astype(np.float32)
    result = learned_equivariance(fx, fx.copy())
    assert result.r2 > 0.999
    assert result.r2_identity == 1.0


def test_learned_equivariance_is_reproducible_per_seed():
    rng = np.random.default_rng(4)
    fx = activations(rng, 60, 4)
    fgx = fx @ rng.standard_normal((4, 4)) + rng.standard_normal((60, 4))
    first, again = learned_equivariance(fx, fgx, seed=7), learned_equivariance(fx, fgx, seed=7)
    assert first.to_json() == again.to_json()
    other = learned_equivariance(fx, fgx, seed=8)
    assert not np.array_equal(first.test, other.test)


@pytest.mark.parametrize("seed", SEEDS)
def test_learned_equivariance_follows_the_conventions_of_alignment(seed):
    """The same split, ridge map and shuffled pairing as ``fit_alignment(..., "ridge")``."""
    rng = np.random.default_rng(seed)
    n, d = 80, 5
    fx = activations(rng, n, d)
    fgx = fx @ rng.standard_normal((d, d)) + 2.0 * rng.standard_normal((n, d))
    result = learned_equivariance(fx, fgx, test_fraction=0.25, seed=seed)
    peer = fit_alignment(fx, fgx, "ridge", test_fraction=0.25, seed=seed)
    np.testing.assert_array_equal(result.test, peer.test)
    assert result.r2 == pytest.approx(peer.r2, abs=1e-10)
    assert result.r2_shuffled == pytest.approx(peer.r2_shuffled, abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_learned_equivariance_agrees_with_scikit_learn(seed):
    """scikit-learn's ``RidgeCV`` (its leave-one-out mode) chooses the same α from the same grid
    in absolute units; ``Ridge`` with that α and an intercept predicts the same held-out rows.

    R² conventions differ: ours is against the *training* mean of f(g x) (as
    analysis.measures.alignment), ``r2_score(..., multioutput="variance_weighted")`` against the
    held-out mean. Both are computed here: the hand computation equals ours, and the two satisfy (1
    − R²_ours) · SST_train = (1 − R²_sklearn) · SST_test, with SST_train ≥ SST_test."""
    rng = np.random.default_rng(seed)
    n, d = 120, 8
    fx = activations(rng, n, d)
    fgx = fx @ rng.standard_normal((d, d)) + 3.0 * rng.standard_normal((n, d)) + 5.0
    result = learned_equivariance(fx, fgx, seed=seed)
    train, test = split(n, 0.2, seed)
    np.testing.assert_array_equal(np.flatnonzero(result.test), test)

    scale = float(np.sum((fx[train] - fx[train].mean(axis=0)) ** 2))
    chosen = RidgeCV(alphas=np.array(DEFAULT_ALPHAS) * scale).fit(fx[train], fgx[train]).alpha_
    assert result.alpha == pytest.approx(chosen, rel=1e-12)
    assert result.relative_alpha == pytest.approx(chosen / scale, rel=1e-12)
    predicted = Ridge(alpha=result.alpha).fit(fx[train], fgx[train]).predict(fx[test])

    sse = np.sum((predicted - fgx[test]) ** 2)
    sst_train = np.sum((fgx[test] - fgx[train].mean(axis=0)) ** 2)
    sst_test = np.sum((fgx[test] - fgx[test].mean(axis=0)) ** 2)
    assert result.r2 == pytest.approx(1.0 - sse / sst_train, abs=1e-10)
    sklearn_r2 = r2_score(fgx[test], predicted, multioutput="variance_weighted")
    assert (1.0 - result.r2) * sst_train == pytest.approx((1.0 - sklearn_r2) * sst_test, rel=1e-8)
    assert result.r2 >= sklearn_r2
    identity = 1.0 - np.sum((fx[test] - fgx[test]) ** 2) / sst_train
    assert result.r2_identity == pytest.approx(identity, abs=1e-12)


def test_learned_equivariance_needs_a_usable_split():
    fx = activations(np.random.default_rng(5), 5, 3)
    with pytest.raises(InputError, match="at least 6 samples"):
        learned_equivariance(fx, fx)
    fx = activations(np.random.default_rng(5), 10, 3)
    with pytest.raises(InputError, match="test_fraction must be between 0 and 1"):
        learned_equivariance(fx, fx, test_fraction=1.0)
    with pytest.raises(InputError, match="at least 4 and 2"):
        learned_equivariance(fx, fx, test_fraction=0.1)


# --- structured equivariance ----------------------------------------------------------------


def test_structured_equivariance_of_equal_maps_is_zero():
    maps = np.random.default_rng(6).standard_normal((4, 3, 5, 5)).astype(np.float32)
    result = structured_equivariance(maps, maps.copy())
    assert result.score == 0.0
    assert np.all(result.per_sample == 0.0)


def test_structured_equivariance_known_relative_error():
    """f(g x) = (1 + ε) ĝ(f(x)): E = ε, Eᵢ = ε ‖bᵢ‖ / RMS ‖b‖, and E = √(mean Eᵢ²)."""
    sizes = np.arange(1, 7)[:, None, None, None]  # samples of different norms
    b = np.random.default_rng(7).standard_normal((6, 2, 4, 4)) * sizes
    result = structured_equivariance(1.1 * b, b)
    assert result.score == pytest.approx(0.1, rel=1e-12)
    norms = np.linalg.norm(b.reshape(6, -1), axis=1)
    np.testing.assert_allclose(result.per_sample, 0.1 * norms / np.sqrt(np.mean(norms**2)), 1e-6)
    assert result.score == pytest.approx(np.sqrt(np.mean(result.per_sample**2.0)), rel=1e-6)


def test_a_circular_convolution_is_equivariant_to_circular_shifts():
    """Known answer: a stride-1 convolution with circular padding commutes with a circular
    shift of its input; with zero padding the borders break it."""
    torch.manual_seed(0)
    x = torch.randn(8, 3, 12, 12)
    shifted = torch.roll(x, shifts=(2, 3), dims=(2, 3))
    for padding_mode, exact in (("circular", True), ("zeros", False)):
        conv = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode=padding_mode)
        with torch.no_grad():
            f_of_gx = conv(shifted).numpy()
            g_of_fx = torch.roll(conv(x), shifts=(2, 3), dims=(2, 3)).numpy()
        score = structured_equivariance(f_of_gx, g_of_fx).score
        assert (score < 1e-5) if exact else (score > 0.05)


def test_structured_equivariance_refuses_bad_input():
    a = np.ones((3, 4, 4))
    with pytest.raises(InputError, match="must match"):
        structured_equivariance(a, np.ones((3, 4, 5)))
    with pytest.raises(InputError, match="every value is zero"):
        structured_equivariance(a, np.zeros_like(a))
    with pytest.raises(InputError, match="samples along the first axis"):
        structured_equivariance(np.ones(3), np.ones(3))
    with pytest.raises(InputError, match="NaN or Inf"):
        structured_equivariance(np.full_like(a, np.nan), a)


# --- Lie derivative -------------------------------------------------------------------------


@pytest.mark.parametrize("h", [1e-3, 0.5])
def test_lie_derivative_of_a_linear_path_is_exact(h):
    rng = np.random.default_rng(8)
    n, d = 30, 5
    fx = activations(rng, n, d)
    v = rng.standard_normal((n, d))
    result = lie_derivative(fx + h * v, fx - h * v, h, fx)
    scale = math.sqrt(np.mean(np.sum((fx - fx.mean(axis=0)) ** 2, axis=1)))
    assert result.scale == pytest.approx(scale, rel=1e-12)
    expected = np.linalg.norm(v, axis=1) / scale
    np.testing.assert_allclose(result.per_sample, expected, rtol=1e-6)
    assert result.score == pytest.approx(expected.mean(), rel=1e-9)


def test_lie_derivative_of_an_invariant_layer_is_zero():
    fx = activations(np.random.default_rng(9), 10, 4)
    result = lie_derivative(fx, fx, 0.1, fx)
    assert result.score == 0.0
    assert np.all(result.per_sample == 0.0)


def test_lie_derivative_of_a_rotation_by_central_differences():
    """f(g_t x) = x R(t) in the plane: d/dt at 0 is x J, of norm ‖x‖; the central difference
    is exact up to O(h²)."""
    fx = activations(np.random.default_rng(10), 50, 2)

    def rotate(t):
        return fx @ np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])

    h = 1e-4
    result = lie_derivative(rotate(h), rotate(-h), h, fx)
    np.testing.assert_allclose(result.per_sample, np.linalg.norm(fx, axis=1) / result.scale, 1e-6)


def test_lie_derivative_refuses_bad_input():
    fx = activations(np.random.default_rng(11), 10, 4)
    for h in (0.0, -1.0, math.nan, math.inf, True, "1"):
        with pytest.raises(InputError, match="h must be a positive"):
            lie_derivative(fx, fx, h, fx)
    with pytest.raises(InputError, match="must match"):
        lie_derivative(fx[:, :3], fx, 0.1, fx)
    with pytest.raises(InputError, match="no scale"):
        lie_derivative(np.ones((10, 4)), np.ones((10, 4)), 0.1, np.ones((10, 4)))


# --- transform prediction -------------------------------------------------------------------

MAGNITUDES = [-2.0, -1.0, 0.5, 1.0, 3.0]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_layer_that_carries_t_linearly_predicts_it(seed):
    rng = np.random.default_rng(seed)
    fx = activations(rng, 60, 8)
    u = rng.standard_normal(8)
    result = transform_prediction(fx, [fx + t * u for t in MAGNITUDES], MAGNITUDES, seed=seed)
    assert result.r2 > 0.999
    assert result.mae < 0.01 * result.mae_chance
    assert len(result.per_magnitude_mae) == len(MAGNITUDES)
    assert (result.n_train, result.n_test) == (48, 12)


@pytest.mark.parametrize("seed", SEEDS)
def test_an_invariant_layer_cannot_predict_t(seed):
    """With f(g x) = f(x), every held-out sample gets one prediction ŷᵢ for all t, and
    Σ_k (ŷᵢ − t_k)² ≥ Σ_k (t_k − t̄)²: R² ≤ 0 exactly."""
    fx = activations(np.random.default_rng(seed), 60, 8)
    result = transform_prediction(fx, [fx.copy()] * len(MAGNITUDES), MAGNITUDES, seed=seed)
    assert result.r2 <= 1e-12
    assert result.mae >= result.mae_chance - 1e-12


def test_transform_prediction_splits_by_sample_and_agrees_with_scikit_learn():
    """By hand: rows of the training samples at every magnitude, ``Ridge`` with the chosen α,
    R² of the held-out samples' rows against the training mean of t."""
    rng = np.random.default_rng(12)
    n, d = 50, 4
    fx = activations(rng, n, d)
    fgx = [fx + t * rng.standard_normal(d) + 0.5 * rng.standard_normal((n, d)) for t in MAGNITUDES]
    result = transform_prediction([fx] * len(MAGNITUDES), fgx, MAGNITUDES, seed=3)
    assert result.to_json() == transform_prediction(fx, fgx, MAGNITUDES, seed=3).to_json()
    train, test = split(n, 0.2, 3)
    np.testing.assert_array_equal(np.flatnonzero(result.test), test)

    def rows(samples):
        features = np.vstack([np.hstack([fx[samples], g[samples] - fx[samples]]) for g in fgx])
        return features, np.repeat(MAGNITUDES, len(samples))

    (x_train, t_train), (x_test, t_test) = rows(train), rows(test)
    predicted = Ridge(alpha=result.alpha).fit(x_train, t_train).predict(x_test)
    sst = np.sum((t_test - t_train.mean()) ** 2)
    assert result.r2 == pytest.approx(1.0 - np.sum((predicted - t_test) ** 2) / sst, abs=1e-9)
    assert result.mae == pytest.approx(np.mean(np.abs(predicted - t_test)), rel=1e-9)
    per_magnitude = np.abs(predicted - t_test).reshape(len(MAGNITUDES), len(test)).mean(axis=1)
    np.testing.assert_allclose(result.per_magnitude_mae, per_magnitude, rtol=1e-9)
    assert result.mae_chance == pytest.approx(np.mean(np.abs(t_test - np.mean(MAGNITUDES))))


def test_transform_prediction_refuses_bad_input():
    fx = activations(np.random.default_rng(13), 20, 3)
    with pytest.raises(InputError, match="two different values"):
        transform_prediction(fx, [fx, fx], [1.0, 1.0])
    with pytest.raises(InputError, match="one per magnitude"):
        transform_prediction(fx, [fx, fx], [1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="single array"):
        transform_prediction(fx, fx, [1.0, 2.0])
    with pytest.raises(InputError, match="same samples and layer"):
        transform_prediction([fx, fx[:15]], [fx, fx[:15]], [1.0, 2.0])
    with pytest.raises(InputError, match="NaN or Inf"):
        transform_prediction(fx, [fx, fx], [1.0, math.nan])


# --- prediction consistency and most moved --------------------------------------------------


def test_prediction_consistency_by_hand():
    logits_x = np.array([[1.0, 2.0, 0.0], [3.0, 3.0, 0.0], [0.0, 0.0, 1.0], [5.0, 1.0, 1.0]])
    logits_gx = np.array([[0.0, 2.0, 1.0], [0.0, 3.0, 3.0], [0.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    # classes: x → 1, 0 (tie), 2, 0; g x → 1, 1 (tie), 1 (tie), 0 (three-way tie)
    result = prediction_consistency(logits_x, logits_gx)
    np.testing.assert_array_equal(result.changed, [False, True, True, False])
    assert result.share == 0.5
    assert json.loads(json.dumps(result.to_json())) == {
        "share": 0.5,
        "changed": [False, True, True, False],
    }


def test_prediction_consistency_refuses_bad_input():
    a = np.zeros((4, 3))
    with pytest.raises(InputError, match="must match"):
        prediction_consistency(a, np.zeros((4, 2)))
    with pytest.raises(InputError, match="one column"):
        prediction_consistency(np.zeros((4, 1)), np.zeros((4, 1)))
    with pytest.raises(InputError, match="NaN or Inf"):
        prediction_consistency(a, np.full((4, 3), np.nan))


def test_most_moved_lowest_invariance_first():
    values = np.array([0.9, 0.1, np.nan, 0.1, -0.5, 1.0], dtype=np.float32)
    np.testing.assert_array_equal(most_moved(values, 4), [4, 1, 3, 0])
    np.testing.assert_array_equal(most_moved(values, 10), [4, 1, 3, 0, 5, 2])
    with pytest.raises(InputError, match="one value per sample"):
        most_moved(values[None, :], 2)
    with pytest.raises(InputError, match="count"):
        most_moved(values, -1)


# --- shared validation and serialisation ----------------------------------------------------


def test_every_vector_probe_refuses_bad_activations():
    rng = np.random.default_rng(14)
    fx = activations(rng, 10, 3)
    probes = [
        lambda a, b: invariance(a, b),
        lambda a, b: learned_equivariance(a, b),
        lambda a, b: lie_derivative(b, b, 0.1, a),
    ]
    for probe in probes:
        with pytest.raises(InputError, match="must match"):
            probe(fx, fx[:, :2])
        with pytest.raises(InputError, match="must match"):
            probe(fx, fx[:8])
        with pytest.raises(InputError, match="at least"):
            probe(fx[:3], fx[:3])
        with pytest.raises(InputError, match="NaN or Inf"):
            probe(fx, np.where(np.eye(10, 3) == 1, np.nan, fx))
        with pytest.raises(InputError, match="n × d"):
            probe(fx.reshape(10, 3, 1), fx)


def test_results_serialise_to_plain_json():
    rng = np.random.default_rng(15)
    fx = activations(rng, 30, 3).astype(np.float32)
    fgx = fx + rng.standard_normal((30, 3)).astype(np.float32)
    results = [
        invariance(fx, fgx),
        learned_equivariance(fx, fgx),
        structured_equivariance(fgx, fx),
        lie_derivative(fgx, fx, 0.5, fx),
        transform_prediction(fx, [fx, fgx], [0.0, 1.0]),
    ]
    for result in results:
        plain = result.to_json()
        assert json.loads(json.dumps(plain)) == plain  # only plain floats, ints, bools and lists
        if "per_sample" in plain:
            assert plain["per_sample"] == result.per_sample.tolist()
            assert len(plain["per_sample"]) == 30
