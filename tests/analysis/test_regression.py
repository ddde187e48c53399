"""Cross-validated ridge predictivity (analysis/measures/regression.py): definition, sklearn
agreement,
invariances, asymmetry, the engine, degenerate input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

from analysis.errors import InputError
from analysis.measures.engine import compare_layers
from analysis.measures.regression import (
    DEFAULT_ALPHAS,
    RidgePredictivity,
    kfold,
    ridge_predictivity,
)

SEEDS = [0, 1, 2, 3, 4]


def noisy_linear(rng: np.random.Generator, n: int, p: int, q: int, noise: float = 1.0):
    x = rng.standard_normal((n, p)) * rng.uniform(0.2, 5.0, size=p) + rng.normal(0, 10, size=p)
    y = x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))
    return x, y


def sklearn_r2(x, y, seed, estimator_for_fold, n_splits=5):
    """Pooled out-of-fold R² with scikit-learn estimators on the same folds."""
    predictions = np.empty_like(y, dtype=np.float64)
    chosen = []
    for train, test in kfold(len(x), n_splits, seed):
        model = estimator_for_fold(x[train]).fit(x[train], y[train])
        predictions[test] = model.predict(x[test]).reshape(len(test), -1)
        chosen.append(getattr(model, "alpha_", None))
    return r2_score(y, predictions, multioutput="variance_weighted"), chosen


def fold_scale(x_train: np.ndarray) -> float:
    """The unit of the α grid: ‖X_c‖²_F of the centred training fold."""
    return float(np.sum((x_train - x_train.mean(axis=0)) ** 2))


# --- definition -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(80, 6, 4), (60, 10, 1)])
def test_exact_linear_map_is_predicted_perfectly(seed, shape):
    rng = np.random.default_rng(seed)
    n, p, q = shape
    x = rng.standard_normal((n, p)) + 3.0
    y = x @ rng.standard_normal((p, q)) - 2.0
    assert ridge_predictivity(x, y, seed=seed) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(200, 5, 5), (60, 200, 8)])
def test_independent_noise_scores_about_zero(seed, shape):
    """Nothing to predict: R² ≈ 0, slightly negative (held-out samples are predicted by the
    training mean, not the overall mean). Also when p ≫ n, where least squares would overfit."""
    rng = np.random.default_rng(seed)
    n, p, q = shape
    value = ridge_predictivity(rng.standard_normal((n, p)), rng.standard_normal((n, q)), seed=seed)
    assert -0.15 < value < 0.05


@pytest.mark.parametrize("seed", SEEDS)
def test_not_symmetric(seed):
    """Y is X's first column: X predicts Y perfectly, Y predicts a tenth of X's variance."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((150, 10))
    y = x[:, :1]
    assert ridge_predictivity(x, y, seed=seed) == pytest.approx(1.0, abs=1e-6)
    assert ridge_predictivity(y, x, seed=seed) < 0.2
    assert not RidgePredictivity.symmetric


@pytest.mark.parametrize("seed", SEEDS)
def test_folds_are_seeded_partitions_with_kfold_sizes(seed):
    folds = kfold(23, 5, seed)
    assert [len(test) for _, test in folds] == [
        len(test) for _, test in KFold(5).split(np.zeros(23))
    ]
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests) == list(range(23))
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0 and len(train) + len(test) == 23
    again = kfold(23, 5, seed)
    assert all((t1 == t2).all() for (_, t1), (_, t2) in zip(folds, again, strict=True))
    other = kfold(23, 5, seed + 100)
    assert any((t1 != t2).any() for (_, t1), (_, t2) in zip(folds, other, strict=True))


# --- agreement with scikit-learn ------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(60, 5, 3), (40, 50, 7), (100, 20, 1), (30, 29, 4)])
def test_agrees_with_sklearn_ridgecv(seed, shape):
    """Cross-check against scikit-learn 1.9's ``RidgeCV`` (default ``cv=None``) fitted on every
    training fold, pooled with ``r2_score(multioutput="variance_weighted")``.

    Peer's convention: ``RidgeCV`` chooses α by the efficient exact leave-one-out error of ridge
    with an unpenalised intercept (its "GCV" mode: the Rifkin–Lippert formula), averaged over
    all samples and targets (``alpha_per_target=False``), the first α of the grid winning ties
    — the same rule as ours. It takes absolute α, so ours (relative to the fold's total sum of
    squares ‖X_c‖²_F) are converted per fold. Both the value and the chosen α agree.
    """
    rng = np.random.default_rng(seed)
    x, y = noisy_linear(rng, *shape, noise=2.0)
    measure = RidgePredictivity(seed=seed)
    ours = measure.fit(measure.prepare(x), measure.prepare(y))
    grid = np.array(DEFAULT_ALPHAS)
    peer, chosen = sklearn_r2(x, y, seed, lambda xt: RidgeCV(alphas=grid * fold_scale(xt)))
    assert ours.r2 == pytest.approx(peer, abs=1e-6)
    assert ours.alphas == pytest.approx(chosen, rel=1e-12)
    assert 0.0 < ours.r2 < 0.999  # a non-trivial value, so the check above can fail


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("relative_alpha", [1e-6, 1e-2, 1.0])
def test_single_alpha_agrees_with_sklearn_ridge(seed, relative_alpha):
    """With a one-value grid there is no selection: plain ``Ridge`` on the same folds."""
    rng = np.random.default_rng(seed)
    x, y = noisy_linear(rng, 45, 12, 5)
    ours = ridge_predictivity(x, y, alphas=[relative_alpha], seed=seed)
    peer, _ = sklearn_r2(x, y, seed, lambda xt: Ridge(alpha=relative_alpha * fold_scale(xt)))
    assert ours == pytest.approx(peer, abs=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_out_of_fold_predictions_use_training_means_only(seed):
    """A held-out sample far from the rest must not move the centring of its training folds:
    the predictions equal those of models that never saw the held-out fold."""
    rng = np.random.default_rng(seed)
    x, y = noisy_linear(rng, 30, 4, 2)
    x[0] += 1e3
    measure = RidgePredictivity(alphas=[0.1], seed=seed)
    ours = measure.fit(measure.prepare(x), measure.prepare(y))
    for train, test in kfold(30, 5, seed):
        model = Ridge(alpha=0.1 * fold_scale(x[train])).fit(x[train], y[train])
        expected = model.predict(x[test]) - y.mean(axis=0)  # ours are in centred Y coordinates
        np.testing.assert_allclose(ours.predictions[test], expected, atol=1e-8)


# --- invariances ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_invariant_to_orthogonal_scaling_and_translation(seed):
    rng = np.random.default_rng(seed)
    x, y = noisy_linear(rng, 70, 8, 6, noise=3.0)
    base = ridge_predictivity(x, y, seed=seed)
    assert 0.05 < base < 0.99
    q_x = ortho_group.rvs(8, random_state=seed)
    q_y = ortho_group.rvs(6, random_state=seed + 100)
    for x2, y2 in [
        (x @ q_x, y),
        (x, y @ q_y),
        (x * 1e3, y),
        (x, y * 1e-3),
        (x + 50.0, y - 7.0),
        (3.0 * x @ q_x - 1.0, 0.5 * y @ q_y),
    ]:
        assert ridge_predictivity(x2, y2, seed=seed) == pytest.approx(base, abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_invertible_linear_map_of_x_only_without_shrinkage(seed):
    """Least squares (tiny α) sees only the column space of X; real shrinkage does not."""
    rng = np.random.default_rng(seed)
    x, y = noisy_linear(rng, 80, 6, 4, noise=3.0)
    a = rng.standard_normal((6, 6)) @ np.diag([10.0, 1, 1, 1, 1, 0.1])
    assert abs(np.linalg.det(a)) > 1e-6
    tiny = [1e-12]
    assert ridge_predictivity(x @ a, y, alphas=tiny, seed=seed) == pytest.approx(
        ridge_predictivity(x, y, alphas=tiny, seed=seed), abs=1e-6
    )
    strong = [0.1]
    assert (
        abs(
            ridge_predictivity(x @ a, y, alphas=strong, seed=seed)
            - ridge_predictivity(x, y, alphas=strong, seed=seed)
        )
        > 1e-3
    )


# --- the engine -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_baseline_low_and_directions_differ_in_compare_layers(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((400, 5))
    y = x[:, :2] @ rng.standard_normal((2, 3)) + 0.1 * rng.standard_normal((400, 3))
    measure = RidgePredictivity(seed=seed)
    forward = compare_layers(measure, [("x", x)], [("y", y)], n_permutations=3, seed=seed)
    backward = compare_layers(measure, [("y", y)], [("x", x)], n_permutations=3, seed=seed)
    xy, yx = forward[("x", "y")], backward[("y", "x")]
    assert xy.value > 0.95 and xy.value == pytest.approx(ridge_predictivity(x, y, seed=seed))
    assert yx.value < 0.5  # Y only sees two of X's five directions
    assert -0.05 < xy.baseline < 0.02 and xy.warnings == []
    assert xy.estimator.startswith("5-fold ridge")


@pytest.mark.parametrize("seed", SEEDS)
def test_permuted_layer_scores_like_permuted_data_and_svds_are_cached(seed):
    rng = np.random.default_rng(seed)
    x, y = noisy_linear(rng, 50, 7, 3)
    perm = rng.permutation(50)
    measure = RidgePredictivity(seed=seed)
    a, b = measure.prepare(x), measure.prepare(y)
    assert measure.score(a, measure.permute(b, perm)) == pytest.approx(
        ridge_predictivity(x, y[perm], seed=seed), abs=1e-12
    )
    assert len(a._svds) == 5 and b._svds == {}  # only the predictor is decomposed
    cached = dict(a._svds)
    measure.score(a, measure.permute(b, rng.permutation(50)))
    assert all(a._svds[k] is cached[k] for k in cached)


# --- degenerate input -----------------------------------------------------------------------


def test_constant_layer_is_refused_and_constant_columns_are_fine():
    rng = np.random.default_rng(0)
    x, y = noisy_linear(rng, 40, 4, 3)
    with pytest.raises(InputError, match="constant"):
        ridge_predictivity(np.full((40, 3), 0.1, dtype=np.float32), y)
    with pytest.raises(InputError, match="dead_layer"):
        compare_layers(RidgePredictivity(), [("x", x)], [("dead_layer", np.ones((40, 2)))])
    padded = np.hstack([x, np.full((40, 1), 7.0)])
    assert ridge_predictivity(padded, y) == pytest.approx(ridge_predictivity(x, y), abs=1e-9)


def test_predictor_constant_on_a_training_fold_gives_a_finite_value():
    """One sample carries all of X's variance: the folds without it have a constant X."""
    rng = np.random.default_rng(0)
    x = np.zeros((20, 3))
    x[4] = [1.0, 2.0, 3.0]
    value = ridge_predictivity(x, rng.standard_normal((20, 2)))
    assert np.isfinite(value) and value < 0.1


def test_too_few_samples_non_finite_and_mismatched_input():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="at least 5 samples"):
        ridge_predictivity(rng.standard_normal((4, 2)), rng.standard_normal((4, 2)))
    assert np.isfinite(
        ridge_predictivity(rng.standard_normal((4, 2)), rng.standard_normal((4, 2)), n_splits=2)
    )
    x = rng.standard_normal((10, 3))
    x[2, 1] = np.nan
    with pytest.raises(InputError, match="layer3.*NaN or Inf"):
        compare_layers(RidgePredictivity(), [("layer3", x)], [("b", rng.standard_normal((10, 2)))])
    with pytest.raises(InputError, match="different numbers of samples"):
        ridge_predictivity(rng.standard_normal((10, 3)), rng.standard_normal((11, 3)))
    with pytest.raises(InputError, match="at least 2 folds"):
        ridge_predictivity(rng.standard_normal((10, 3)), rng.standard_normal((10, 3)), n_splits=1)
    with pytest.raises(InputError, match="positive"):
        RidgePredictivity(alphas=[0.0, 1.0])
