"""Geometry of one space (analysis/geometry.py): known answers for each statistic."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from analysis.errors import InputError
from analysis.geometry import geometry


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
    assert g.knn_accuracy == 1.0 and g.nc1 < 1e-5
    shuffled = geometry(tight, rng.permutation(labels))
    assert shuffled.knn_accuracy < 0.5 and shuffled.nc1 > 1.0


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


def test_bad_input_is_refused():
    with pytest.raises(InputError, match="constant"):
        geometry(np.ones((10, 3)))
    with pytest.raises(InputError, match="one per sample"):
        geometry(np.eye(10), np.arange(9))
