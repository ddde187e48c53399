"""Geometry of one space (analysis/explorer/geometry.py): known answers for each statistic."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import LeaveOneOut, cross_val_predict

from analysis.errors import InputError
from analysis.explorer.geometry import geometry, linear_probe_accuracy
from analysis.measures.regression import DEFAULT_ALPHAS


@pytest.mark.parametrize("r", [1, 3, 7])
def test_rank_measures_count_equal_directions_exactly(r):
    """r orthonormal directions with equal variance: effective rank = participation ratio = r."""
    rng = np.random.default_rng(r)
    n = 400
    basis = np.linalg.qr(rng.standard_normal((n, r)))[0]
    basis -= basis.mean(axis=0)  # centred columns stay (nearly) orthogonal; re-orthogonalise
    basis = np.linalg.qr(basis)[0]
    x = basis @ ortho_group.rvs(12, random_state=r)[:r] * 5.0
    g = geometry(x)
    assert g.effective_rank == pytest.approx(r, rel=1e-6)
    assert g.participation_ratio == pytest.approx(r, rel=1e-6)
    assert len(g.spectrum) == 12 and g.spectrum[0] >= g.spectrum[-1]


@pytest.mark.parametrize(("dimension", "ambient"), [(2, 10), (5, 20)])
def test_two_nn_finds_the_dimension_of_a_flat_manifold(dimension, ambient):
    rng = np.random.default_rng(0)
    z = rng.uniform(size=(3000, dimension))
    x = z @ ortho_group.rvs(ambient, random_state=1)[:dimension] + 3.0
    assert geometry(x).intrinsic_dimension == pytest.approx(dimension, rel=0.15)


def test_knn_accuracy_and_nc1_follow_the_classes():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    centres = rng.standard_normal((4, 8)) * 10
    tight = centres[labels] + 0.01 * rng.standard_normal((200, 8))
    g = geometry(tight, labels)
    assert g.knn_accuracy == 1.0 and g.nc1 < 1e-5 and g.linear_probe_accuracy == 1.0
    shuffled = geometry(tight, rng.permutation(labels))
    assert shuffled.knn_accuracy < 0.5 and shuffled.nc1 > 1.0
    assert shuffled.linear_probe_accuracy < 0.5
    assert g.to_json()["linear_probe_accuracy"] == 1.0


def test_nc1_known_value_and_scale_invariance():
    """Two classes at ±1 on one axis with within-class variance s²: Σ_B = 1, NC1 = s² / 2."""
    s = 0.3
    within = np.array([-s, s] * 50)
    labels = np.repeat([0, 1], 50)
    x = (np.where(labels == 0, -1.0, 1.0) + within)[:, None]
    g = geometry(x, labels)
    assert g.nc1 == pytest.approx(s**2 / 2, rel=1e-9)
    assert geometry(7 * x, labels).nc1 == pytest.approx(g.nc1, rel=1e-9)
    assert geometry(x).nc1 is None and geometry(x).knn_accuracy is None
    assert geometry(x).linear_probe_accuracy is None
    assert geometry(x, np.zeros(100, dtype=int)).linear_probe_accuracy is None  # one class


def test_bad_input_is_refused():
    with pytest.raises(InputError, match="constant"):
        geometry(np.ones((10, 3)))
    with pytest.raises(InputError, match="one per sample"):
        geometry(np.eye(10), np.arange(9))


# --- linear probe ---------------------------------------------------------------------------


def noisy_classes(seed: int, n: int, d: int, classes: int, spread: float = 0.8):
    """Overlapping Gaussian classes, far from the origin: the probe is right only sometimes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    x = spread * rng.standard_normal((classes, d))[labels] + rng.standard_normal((n, d)) + 5.0
    return x, labels


@pytest.mark.parametrize(("n", "d", "classes"), [(60, 5, 3), (40, 3, 2), (30, 50, 3)])
@pytest.mark.parametrize("relative", [1e-6, 1e-2, 1e-1, 1.0])
def test_linear_probe_equals_scikit_learn_leave_one_out(n, d, classes, relative):
    """The closed form against n refits of RidgeClassifier at the same absolute penalty
    (α in units of ‖X_c‖²_F, X centred on all samples); d > n takes the n × n Gram route."""
    x, labels = noisy_classes(n + d, n, d, classes)
    alpha = relative * np.sum((x - x.mean(axis=0)) ** 2)
    predicted = cross_val_predict(
        RidgeClassifier(alpha=alpha, fit_intercept=True), x, labels, cv=LeaveOneOut()
    )
    assert linear_probe_accuracy(x, labels, alphas=(relative,)) == np.mean(predicted == labels)


def test_linear_probe_keeps_the_best_penalty():
    x, labels = noisy_classes(1, 60, 5, 3)
    each = [linear_probe_accuracy(x, labels, alphas=(a,)) for a in DEFAULT_ALPHAS]
    assert len(set(each)) > 1  # the grid matters on this problem
    assert linear_probe_accuracy(x, labels) == max(each)
    assert linear_probe_accuracy(x, labels.astype(str)) == max(each)  # any label type


def test_linear_probe_is_perfect_on_separated_blobs_and_near_chance_on_random_labels():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(4), 100)
    centres = 10 * rng.standard_normal((4, 16))
    x = (centres[labels] + rng.standard_normal((400, 16))).astype(np.float32)
    assert linear_probe_accuracy(x, labels) == 1.0
    chance = rng.integers(0, 4, 400)
    assert abs(linear_probe_accuracy(x, chance) - 0.25) < 0.1


@pytest.mark.parametrize(("n", "d"), [(203, 12), (41, 90)])
def test_linear_probe_does_not_depend_on_the_block_size(n, d):
    x, labels = noisy_classes(3, n, d, 5, spread=0.3)
    for alphas in [DEFAULT_ALPHAS, *((a,) for a in DEFAULT_ALPHAS)]:
        whole = linear_probe_accuracy(x, labels, alphas, block_size=n)
        for block in (1, 7, 64):
            assert linear_probe_accuracy(x, labels, alphas, block_size=block) == whole
    assert 0.3 < linear_probe_accuracy(x, labels) < 1.0


def test_linear_probe_refuses_unusable_input():
    x, labels = noisy_classes(4, 20, 3, 2)
    with pytest.raises(InputError, match="two classes"):
        linear_probe_accuracy(x, np.zeros(20))
    with pytest.raises(InputError, match="one per sample"):
        linear_probe_accuracy(x, labels[:10])
    with pytest.raises(InputError, match="positive"):
        linear_probe_accuracy(x, labels, alphas=(0.0,))
    with pytest.raises(InputError, match="positive"):
        linear_probe_accuracy(x, labels, alphas=())
    with pytest.raises(InputError, match="constant"):
        linear_probe_accuracy(np.ones((20, 3)), labels)
