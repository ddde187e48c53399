"""Alignment between spaces (analysis/measures/alignment.py): known answers, agreement with scipy
and
scikit-learn, baselines, per-sample residuals, the split, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.metrics import r2_score

from analysis.errors import InputError
from analysis.measures.alignment import METHODS, fit_alignment
from analysis.measures.regression import DEFAULT_ALPHAS, fit_ridge, training_svd

SEEDS = [0, 1, 2, 3]


def similarity_pair(rng: np.random.Generator, n: int, p: int, s: float = 1.0):
    """X with uneven column scales and an offset, and Y = s·XQ + t exactly."""
    x = rng.standard_normal((n, p)) * rng.uniform(0.5, 3.0, size=p) + rng.normal(0, 5, size=p)
    q = ortho_group.rvs(p, random_state=rng)
    return x, s * x @ q + rng.normal(0, 5, size=p)


def split(result):
    return np.flatnonzero(~result.test), np.flatnonzero(result.test)


def reference_scores(y: np.ndarray, predicted: np.ndarray, train, test):
    """R² against the training mean and per-sample residuals, by hand."""
    y_train_mean = y[train].mean(axis=0)
    spread = np.sum((y[test] - y_train_mean) ** 2, axis=1)
    errors = np.sum((predicted - y) ** 2, axis=1)
    return 1.0 - errors[test].sum() / spread.sum(), errors / spread.mean()


# --- known answers --------------------------------------------------------------------------


def test_methods_in_order():
    assert list(METHODS) == ["procrustes", "procrustes-scaled", "ridge", "anchors"]


@pytest.mark.parametrize("seed", SEEDS)
def test_similarity_transform_is_aligned_exactly(seed):
    """Y = s·XQ + t: the scaled Procrustes map, ridge and anchors recover it; the unscaled map
    predicts XQ for s·XQ, so R² = 1 − (s − 1)² / s² exactly."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.3, 3.0)
    x, y = similarity_pair(rng, 150, 6, s)
    for method in ("procrustes-scaled", "ridge", "anchors"):
        result = fit_alignment(x, y, method, seed=seed)
        assert result.r2 == pytest.approx(1.0, abs=1e-10), method
        assert result.retrieval_top1 == result.retrieval_top5 == 1.0
        assert result.residuals.max() < 1e-10
    scaled = fit_alignment(x, y, "procrustes-scaled", seed=seed)
    assert f"s = {s:.3g}" in scaled.estimator
    plain = fit_alignment(x, y, "procrustes", seed=seed)
    assert plain.r2 == pytest.approx(1.0 - (s - 1.0) ** 2 / s**2, abs=1e-10)
    assert plain.retrieval_top1 == 1.0  # cosine ignores the scale


@pytest.mark.parametrize("seed", SEEDS)
def test_general_linear_map_needs_ridge(seed):
    """An invertible but not orthogonal map: ridge recovers it, Procrustes cannot."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((200, 5)) + 2.0
    a = rng.standard_normal((5, 5)) + np.diag([4.0, 3.0, 0.5, 0.2, 0.1])
    y = x @ a - 1.0
    assert fit_alignment(x, y, "ridge", seed=seed).r2 == pytest.approx(1.0, abs=1e-8)
    for method in ("procrustes", "procrustes-scaled"):
        assert fit_alignment(x, y, method, seed=seed).r2 < 0.98


@pytest.mark.parametrize("seed", SEEDS)
def test_different_widths_both_ways(seed):
    """p < q: an isometric embedding of X is aligned exactly by every method. p > q: Y is X's
    two widest coordinates, which ridge recovers exactly; Procrustes solves the zero-padded
    problem there (tr WᵀXᵀY ignores what W leaves out) and comes close, and the least-squares
    scale of the map (not of the padded problem, which would count the dropped variance of X
    and shrink the map) keeps it as close."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((160, 4)) * [3.0, 2.0, 1.0, 0.5]
    embedding = ortho_group.rvs(9, random_state=rng)[:4]  # 4 × 9, orthonormal rows
    wide = x @ embedding + 1.0
    for method in METHODS:
        result = fit_alignment(x, wide, method, seed=seed)
        assert (result.d_a, result.d_b) == (4, 9)
        assert result.r2 == pytest.approx(1.0, abs=1e-10), method
    narrow = x[:, :2]
    results = {method: fit_alignment(wide, narrow, method, seed=seed) for method in METHODS}
    assert all((r.d_a, r.d_b) == (9, 2) for r in results.values())
    assert results["ridge"].r2 == pytest.approx(1.0, abs=1e-8)
    assert 0.99 < results["procrustes"].r2 < 1.0 - 1e-6
    assert results["procrustes-scaled"].r2 >= results["procrustes"].r2 - 1e-3


@pytest.mark.parametrize("seed", SEEDS)
def test_unrelated_spaces_score_like_their_shuffled_baseline(seed):
    """Independent X and Y: no map transfers. Ridge and scaled Procrustes shrink to the mean
    (R² ≈ 0); an unscaled isometry adds X's variance to Y's (R² ≈ −1), as does the identity
    between relative spaces. Retrieval is at chance and the shuffled baseline scores the same."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((1000, 6)), rng.standard_normal((1000, 6))
    expected = {"procrustes": -1.0, "procrustes-scaled": 0.0, "ridge": 0.0, "anchors": -1.0}
    tolerance = {"procrustes": 0.3, "procrustes-scaled": 0.05, "ridge": 0.05, "anchors": 0.1}
    for method in METHODS:
        result = fit_alignment(x, y, method, seed=seed)
        assert result.r2 == pytest.approx(expected[method], abs=tolerance[method]), method
        assert result.r2_shuffled == pytest.approx(result.r2, abs=tolerance[method]), method
        assert result.retrieval_chance_top1 == 1 / result.n_test == 0.005
        assert result.retrieval_top1 <= 0.03
        assert result.retrieval_top5 <= 0.08


@pytest.mark.parametrize("seed", SEEDS)
def test_related_spaces_beat_their_shuffled_baseline(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((400, 6))
    y = x @ rng.standard_normal((6, 6)) + 0.5 * rng.standard_normal((400, 6))
    for method in METHODS:
        result = fit_alignment(x, y, method, seed=seed)
        assert result.r2 > result.r2_shuffled + 0.3, method
        assert result.retrieval_top1 > 10 * result.retrieval_chance_top1, method


@pytest.mark.parametrize("seed", SEEDS)
def test_invariant_to_rotating_and_translating_either_space(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((200, 5))
    y = np.tanh(x @ rng.standard_normal((5, 7))) + 0.3 * rng.standard_normal((200, 7))
    moved_x = x @ ortho_group.rvs(5, random_state=rng) + 10.0
    moved_y = y @ ortho_group.rvs(7, random_state=rng) - 3.0
    for method in METHODS:
        a = fit_alignment(x, y, method, seed=seed)
        b = fit_alignment(moved_x, moved_y, method, seed=seed)
        assert b.r2 == pytest.approx(a.r2, abs=1e-9), method
        assert b.r2_shuffled == pytest.approx(a.r2_shuffled, abs=1e-9), method
        assert b.retrieval_top1 == a.retrieval_top1
        np.testing.assert_allclose(b.residuals, a.residuals, rtol=1e-4, atol=1e-6)


# --- agreement with independent implementations ---------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(150, 10, 3), (70, 80, 5)])
def test_ridge_agrees_with_sklearn(seed, shape):
    """The map is scikit-learn's ``Ridge`` (with intercept) at the α that ``RidgeCV`` (exact
    leave-one-out, first α of equal errors) chooses on the training split from the same grid,
    converted to absolute units by the training ‖X_c‖²_F."""
    rng = np.random.default_rng(seed)
    n, p, q = shape
    x = rng.standard_normal((n, p)) * rng.uniform(0.5, 2.0, size=p) + 4.0
    y = x @ rng.standard_normal((p, q)) + 3.0 * rng.standard_normal((n, q))
    result = fit_alignment(x, y, "ridge", seed=seed)
    train, test = split(result)
    scale = float(np.sum((x[train] - x[train].mean(axis=0)) ** 2))
    alpha = RidgeCV(alphas=np.array(DEFAULT_ALPHAS) * scale).fit(x[train], y[train]).alpha_
    peer = Ridge(alpha=alpha).fit(x[train], y[train]).predict(x)

    fitted = fit_ridge(training_svd(x[train].astype(np.float64)), y[train])
    assert fitted.alpha == pytest.approx(alpha, rel=1e-12)
    np.testing.assert_allclose(fitted.predict(x), peer, rtol=1e-8, atol=1e-8 * np.abs(y).max())
    assert f"α = {alpha / scale:.0e}" in result.estimator

    r2, residuals = reference_scores(y, peer, train, test)
    assert result.r2 == pytest.approx(r2, abs=1e-10)
    np.testing.assert_allclose(result.residuals, residuals, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scaled", [False, True])
def test_procrustes_agrees_with_scipy(seed, scaled):
    """scipy's ``orthogonal_procrustes`` on the training rows centred with the training means;
    it returns tr Σ as its second value, so the scale is tr Σ / ‖X_c‖²_F.

    R² is checked by hand against the training mean, and against scikit-learn's ``r2_score``
    (``variance_weighted``), which centres with the *test* mean: the two share the error sum, and
    their totals differ by n_test · ‖ȳ_test − ȳ_train‖²."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((120, 6)) + 1.0
    y = 2.0 * x @ ortho_group.rvs(6, random_state=rng) + rng.standard_normal((120, 6))
    result = fit_alignment(x, y, "procrustes-scaled" if scaled else "procrustes", seed=seed)
    train, test = split(result)
    xc, yc = x - x[train].mean(axis=0), y - y[train].mean(axis=0)
    rotation, trace = orthogonal_procrustes(xc[train], yc[train])
    s = trace / np.sum(xc[train] ** 2) if scaled else 1.0
    predicted = s * xc @ rotation + y[train].mean(axis=0)

    r2, residuals = reference_scores(y, predicted, train, test)
    assert result.r2 == pytest.approx(r2, abs=1e-10)
    np.testing.assert_allclose(result.residuals, residuals, rtol=1e-5, atol=1e-7)

    sse = np.sum((predicted[test] - y[test]) ** 2)
    gap = len(test) * np.sum((y[test].mean(axis=0) - y[train].mean(axis=0)) ** 2)
    sklearn = r2_score(y[test], predicted[test], multioutput="variance_weighted")
    assert sklearn == pytest.approx(1.0 - sse / (sse / (1.0 - result.r2) - gap), abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_retrieval_agrees_with_brute_force(seed):
    """Top-1 and top-5 from a loop over held-out samples ranking every held-out target by cosine
    similarity to the mapped sample (in the training-centred space)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((300, 8))
    y = x @ ortho_group.rvs(8, random_state=rng) + 1.2 * rng.standard_normal((300, 8)) + 5.0
    result = fit_alignment(x, y, "procrustes", seed=seed)
    train, test = split(result)
    xc, yc = x - x[train].mean(axis=0), y - y[train].mean(axis=0)
    mapped = xc @ orthogonal_procrustes(xc[train], yc[train])[0]
    hits1 = hits5 = 0
    for i in test:
        cosines = [
            mapped[i] @ yc[j] / (np.linalg.norm(mapped[i]) * np.linalg.norm(yc[j])) for j in test
        ]
        order = [j for _, j in sorted(zip(cosines, test, strict=True), reverse=True)]
        hits1 += order[0] == i
        hits5 += i in order[:5]
    assert 0.05 < result.retrieval_top1 < 0.95  # neither trivial nor hopeless
    assert result.retrieval_top1 == pytest.approx(hits1 / len(test), abs=1e-12)
    assert result.retrieval_top5 == pytest.approx(hits5 / len(test), abs=1e-12)


# --- per-sample residuals, split, outputs ---------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", list(METHODS))
def test_a_corrupted_held_out_sample_has_the_largest_residual(seed, method):
    """A held-out sample plays no part in the fit: corrupting its Y changes no map, and its
    residual stands out."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((200, 6))
    y = x @ ortho_group.rvs(6, random_state=rng) + 0.1 * rng.standard_normal((200, 6))
    clean = fit_alignment(x, y, method, seed=seed)
    victim = np.flatnonzero(clean.test)[rng.integers(clean.n_test)]
    corrupted = y.copy()
    corrupted[victim] += 5.0 * rng.standard_normal(6)
    result = fit_alignment(x, corrupted, method, seed=seed)
    assert int(np.argmax(result.residuals)) == victim
    assert result.residuals[victim] > clean.residuals[victim]
    assert result.r2 < clean.r2
    assert result.estimator == clean.estimator


@pytest.mark.parametrize("seed", SEEDS)
def test_split_is_seeded_and_sized(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((97, 4)), rng.standard_normal((97, 3))
    first = fit_alignment(x, y, "ridge", seed=seed, test_fraction=0.3)
    again = fit_alignment(x, y, "ridge", seed=seed, test_fraction=0.3)
    other = fit_alignment(x, y, "ridge", seed=seed + 100, test_fraction=0.3)
    assert first.n_test == first.test.sum() == math.ceil(0.3 * 97)
    assert first.n_train == 97 - first.n_test
    assert (first.test == again.test).all()
    assert first.r2 == again.r2 and first.r2_shuffled == again.r2_shuffled
    np.testing.assert_array_equal(first.residuals, again.residuals)
    assert (first.test != other.test).any()


def test_outputs_have_the_documented_types():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 5)).astype(np.float32)
    y = rng.standard_normal((100, 3)).astype(np.float32)
    calls = []
    result = fit_alignment(x, y, "anchors", n_anchors=12, progress=calls.append)
    assert result.method == "anchors"
    assert result.estimator == "12 anchors, cosine; fit on 80 samples, tested on 20"
    assert (result.d_a, result.d_b, result.n_train, result.n_test) == (5, 3, 80, 20)
    assert result.residuals.dtype == np.float32 and result.residuals.shape == (100,)
    assert result.test.dtype == bool and result.test.shape == (100,)
    assert calls == sorted(calls) and calls[-1] == 1.0 and len(calls) >= 2
    default = fit_alignment(x, y, "anchors")
    assert default.estimator.startswith("40 anchors, cosine")  # min(300, n_train // 2)


def test_warnings():
    rng = np.random.default_rng(0)
    underdetermined = fit_alignment(
        rng.standard_normal((40, 50)), rng.standard_normal((40, 3)), "ridge", name_a="conv1"
    )
    assert underdetermined.warnings == [
        "32 training samples for 50 dimensions of conv1: the map is underdetermined, and "
        "directions the training samples do not span are guesses",
        "only 8 held-out samples: R² and retrieval are noisy",
    ]
    x = rng.standard_normal((300, 5))
    assert fit_alignment(x, x @ rng.standard_normal((5, 5)), "ridge").warnings == []


@pytest.mark.parametrize("method", list(METHODS))
def test_constant_columns_give_finite_results(method):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 6))
    x[:, 2] = 7.0
    noise = 0.1 * rng.standard_normal((80, 6))
    y = np.c_[x @ ortho_group.rvs(6, random_state=rng) + noise, np.full(80, -2.0)]
    result = fit_alignment(x, y, method)
    values = [result.r2, result.r2_shuffled, result.retrieval_top1, result.retrieval_top5]
    assert np.isfinite(values).all()
    assert np.isfinite(result.residuals).all()
    assert result.r2 > 0.9


# --- bad input ------------------------------------------------------------------------------


def good_pair(n: int = 20):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 3)), rng.standard_normal((n, 2))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x, y: (np.where(np.eye(20, 3) > 0, np.nan, x), y), "A: activations contain NaN"),
        (lambda x, y: (x, y[:19]), "different numbers of samples: 20 vs 19"),
        (lambda x, y: (x[:, 0], y), "A: expected an n × d array, got shape (20,)"),
        (lambda x, y: (x[:5], y[:5]), "A: needs at least 6 samples, got 5"),
        (
            lambda x, y: (np.tile(x[:1], (20, 1)), y),
            "A: every column is constant across the training samples",
        ),
        (lambda x, y: (x, np.ones_like(y)), "B: every column is constant across samples"),
    ],
)
def test_bad_arrays_are_refused(change, message):
    x, y = change(*good_pair())
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fit_alignment(x, y)


def test_names_appear_in_messages():
    x, y = good_pair()
    y[3, 1] = np.inf
    with pytest.raises(InputError, match="layer4: activations contain NaN or Inf"):
        fit_alignment(x, y, name_a="layer3", name_b="layer4")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "cca"}, "unknown alignment method 'cca': use one of procrustes, "),
        ({"test_fraction": 0.0}, "test_fraction must be between 0 and 1, got 0.0"),
        ({"test_fraction": 1.0}, "test_fraction must be between 0 and 1"),
        ({"test_fraction": float("nan")}, "test_fraction must be between 0 and 1, got nan"),
        ({"test_fraction": 0.05}, "splits 20 samples into 19 to train and 1 to test"),
        ({"test_fraction": 0.9}, "splits 20 samples into 2 to train and 18 to test"),
        ({"n_anchors": 5}, "n_anchors applies to the 'anchors' method only"),
        ({"method": "anchors", "n_anchors": 16}, "from 1 to 15 .* got 16"),
        ({"method": "anchors", "n_anchors": 0}, "from 1 to 15 .* got 0"),
        ({"method": "anchors", "n_anchors": 2.5}, "must be a whole number"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        fit_alignment(*good_pair(), **kwargs)
