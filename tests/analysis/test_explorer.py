"""Embedding-explorer helpers (analysis/explorer/selections.py): lasso selection against an
independent
point-in-polygon test, similarity alignment with a known answer, neighbourhood agreement by
hand, neighbour-aware displacement, and the ordering of the most changed samples."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.errors import InputError
from analysis.explorer.selections import (
    MAX_POLYGON_VERTICES,
    displacement,
    most_changed,
    neighbourhood_agreement,
    points_in_polygon,
    similarity_align,
)

try:
    from matplotlib.path import Path
except ImportError:  # pragma: no cover - matplotlib is a dependency today
    Path = None


def ray_casting(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Brute-force even–odd test, one point and one edge at a time (W. R. Franklin's PNPOLY)."""
    inside = []
    m = len(polygon)
    for i, (px, py) in enumerate(points):
        odd = False
        for e in range(m):
            (x1, y1), (x2, y2) = polygon[e], polygon[(e + 1) % m]
            if (y1 > py) != (y2 > py) and px < x1 + (py - y1) * (x2 - x1) / (y2 - y1):
                odd = not odd
        if odd:
            inside.append(i)
    return np.array(inside, dtype=np.int64)


def reference(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    if Path is not None:
        return np.flatnonzero(Path(polygon).contains_points(points))
    return ray_casting(points, polygon)


def convex(rng: np.random.Generator, m: int) -> np.ndarray:
    angles = np.sort(rng.uniform(0, 2 * np.pi, m))
    return np.c_[np.cos(angles), 0.6 * np.sin(angles)] + [0.2, -0.1]


def star(rng: np.random.Generator, m: int) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, m, endpoint=False)
    radii = np.where(np.arange(m) % 2 == 0, 1.0, 0.35) * rng.uniform(0.7, 1.0, m)
    return np.c_[radii * np.cos(angles), radii * np.sin(angles)]


def comb(rng: np.random.Generator, teeth: int) -> np.ndarray:
    """A non-convex polygon whose vertical teeth put many edges level with each point."""
    xs = np.linspace(-1, 1, 2 * teeth + 1)
    heights = rng.uniform(0.2, 1.0, teeth)
    top = []
    for i in range(teeth):
        top += [(xs[2 * i], heights[i]), (xs[2 * i + 1], heights[i])]
        top += [(xs[2 * i + 1], -0.8), (xs[2 * i + 2], -0.8)]
    return np.array([(-1.0, -1.0), *top[:-1], (1.0, -1.0)])


# --- points_in_polygon ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["convex", "star", "comb"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_points_in_polygon_matches_an_independent_test(shape, seed):
    rng = np.random.default_rng(seed)
    polygon = {"convex": convex(rng, 40), "star": star(rng, 60), "comb": comb(rng, 12)}[shape]
    points = rng.uniform(-1.3, 1.3, (20_000, 2))
    inside = points_in_polygon(points, polygon)
    assert inside.dtype == np.int64 and np.all(np.diff(inside) > 0)
    assert 0 < len(inside) < len(points)
    np.testing.assert_array_equal(inside, reference(points, polygon))
    few = points[:1500]
    np.testing.assert_array_equal(points_in_polygon(few, polygon), ray_casting(few, polygon))
    # float32 points, a list of tuples and the reversed vertex order give the same selection
    as_list = [tuple(v) for v in polygon[::-1]]
    points32 = points.astype(np.float32)
    np.testing.assert_array_equal(
        points_in_polygon(points32, as_list),
        reference(points32.astype(np.float64), polygon),
    )


def test_self_intersecting_polygon_follows_the_even_odd_rule():
    """A pentagram: the tips are inside, the central pentagon (crossed twice) is outside."""
    angles = np.pi / 2 + 4 * np.pi / 5 * np.arange(5)
    pentagram = np.c_[np.cos(angles), np.sin(angles)]
    tips = 0.8 * np.c_[np.cos(angles), np.sin(angles)]
    points = np.vstack([[[0.0, 0.0]], tips, [[2.0, 2.0]]])
    np.testing.assert_array_equal(points_in_polygon(points, pentagram), [1, 2, 3, 4, 5])
    rng = np.random.default_rng(0)
    cloud = rng.uniform(-1, 1, (2000, 2))
    np.testing.assert_array_equal(
        points_in_polygon(cloud, pentagram), ray_casting(cloud, pentagram)
    )


def test_square_exactly_with_a_fixed_boundary_rule():
    square = [(0, 0), (2, 0), (2, 2), (0, 2)]
    grid = np.array([(x, y) for y in np.arange(-1, 4) * 0.5 for x in np.arange(-1, 6) * 0.5])
    inside = points_in_polygon(grid, square)
    x, y = grid[inside].T
    # strictly interior points are in, outside ones out; on the boundary the left and bottom
    # edges count as inside and the right and top edges as outside (half-open, like pixels)
    assert np.all((x >= 0) & (x < 2) & (y >= 0) & (y < 2))
    expected = np.flatnonzero((grid[:, 0] >= 0) & (grid[:, 0] < 2) & (grid[:, 1] >= 0))
    expected = expected[grid[expected, 1] < 2]
    np.testing.assert_array_equal(inside, expected)
    # deterministic, and the same closed (first vertex repeated) or from another start vertex
    np.testing.assert_array_equal(points_in_polygon(grid, square), inside)
    np.testing.assert_array_equal(points_in_polygon(grid, [*square, square[0]]), inside)
    np.testing.assert_array_equal(points_in_polygon(grid, square[2:] + square[:2]), inside)


def test_non_finite_points_are_never_inside():
    square = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    points = np.array([[0, 0], [np.nan, 0], [0, np.nan], [np.inf, 0], [-np.inf, 0], [0.5, 0.5]])
    np.testing.assert_array_equal(points_in_polygon(points, square), [0, 5])
    assert points_in_polygon(np.empty((0, 2)), square).shape == (0,)


@pytest.mark.parametrize(
    ("polygon", "message"),
    [
        ([(0, 0), (1, 1)], "at least 3 vertices"),
        ([(0, 0), (1, 1), (2, 2), (3, 3)], "one line"),
        ([(1, 1), (1, 1), (1, 1)], "one line"),
        ([(0, 0), (1, 0), (np.nan, 1)], "NaN or Inf"),
        ([(0, 0), (1, 0), (0, np.inf)], "NaN or Inf"),
        ([(0, 0, 0), (1, 0, 0), (0, 1, 0)], "vertices"),
        ([("a", "b"), (1, 0), (0, 1)], "numbers"),
        (np.random.default_rng(0).random((MAX_POLYGON_VERTICES + 1, 2)), "at most"),
    ],
)
def test_invalid_polygons_are_refused(polygon, message):
    with pytest.raises(InputError, match=message):
        points_in_polygon(np.zeros((3, 2)), polygon)


def test_invalid_points_are_refused():
    with pytest.raises(InputError, match="n × 2"):
        points_in_polygon(np.zeros((3, 3)), [(0, 0), (1, 0), (0, 1)])


# --- similarity_align -----------------------------------------------------------------------


def similarity(theta: float, reflect: bool) -> np.ndarray:
    rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    return np.diag([1.0, -1.0]) @ rotation if reflect else rotation


@pytest.mark.parametrize("reflect", [True, False])
def test_similarity_align_recovers_a_known_transform(reflect):
    rng = np.random.default_rng(3)
    moving = rng.standard_normal((50, 2)) * [3.0, 1.0]
    rotation, scale, shift = similarity(0.7, reflect), 2.5, np.array([3.0, -1.0])
    fixed = scale * moving @ rotation + shift
    aligned, info = similarity_align(moving, fixed)
    assert aligned.dtype == np.float32 and aligned.shape == (50, 2)
    assert info["scale"] == pytest.approx(scale, rel=1e-10)
    np.testing.assert_allclose(info["rotation"], rotation, atol=1e-10)
    assert info["reflection"] is reflect
    assert info["rms_residual"] < 1e-10
    np.testing.assert_allclose(aligned, fixed, rtol=0, atol=1e-5 * np.abs(fixed).max())
    assert set(info) == {"scale", "rotation", "reflection", "rms_residual"}


def test_similarity_align_is_invariant_to_a_similarity_of_the_moving_side():
    rng = np.random.default_rng(4)
    moving = rng.standard_normal((80, 2))
    fixed = moving @ similarity(2.0, True) + 0.3 * rng.standard_normal((80, 2))
    transformed = 0.01 * moving @ similarity(-1.1, True) + [100.0, 7.0]
    a, info_a = similarity_align(moving, fixed)
    b, info_b = similarity_align(transformed, fixed)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert info_a["rms_residual"] == pytest.approx(info_b["rms_residual"], rel=1e-9)
    assert info_a["rms_residual"] > 0.1  # a real residual: not an exact fit


def test_similarity_align_fits_on_rows_finite_in_both():
    rng = np.random.default_rng(5)
    moving = rng.standard_normal((30, 2))
    fixed = 3 * moving @ similarity(0.4, False) - 2
    moving[3] = np.nan
    fixed[7] = [np.inf, 0.0]
    fixed[9] = [1e6, 1e6]  # finite rows all count: this outlier does disturb the fit
    aligned, info = similarity_align(moving, fixed)
    assert np.isnan(aligned[3]).all() and np.isfinite(np.delete(aligned, 3, axis=0)).all()
    keep = np.setdiff1d(np.arange(30), [3, 7])
    sub, sub_info = similarity_align(moving[keep], fixed[keep])
    np.testing.assert_array_equal(aligned[keep], sub)
    assert info == sub_info


def test_similarity_align_refuses_unusable_input():
    with pytest.raises(InputError, match="same samples"):
        similarity_align(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(InputError, match="coincide"):
        similarity_align(np.ones((4, 2)), np.arange(8.0).reshape(4, 2))
    with pytest.raises(InputError, match="at least 2"):
        similarity_align(np.array([[0.0, 1.0], [np.nan, 0.0]]), np.zeros((2, 2)))
    with pytest.raises(InputError, match="n × 2"):
        similarity_align(np.zeros((4, 3)), np.zeros((4, 3)))


# --- neighbourhood_agreement ----------------------------------------------------------------

A = np.array([[1, 2, 3], [0, 2, 4], [3, 4, 0], [2, 4, 1], [3, 2, 0]])
B = np.array([[2, 1, 3], [0, 3, 4], [4, 3, 1], [1, 0, 2], [3, 2, 1]])


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, [0, 1, 0, 0, 1]),
        (2, [1, 1 / 3, 1, 0, 1]),  # row 1: {0, 2} vs {0, 3} share 1 of 3
        (3, [1, 0.5, 0.5, 0.5, 0.5]),  # rows 1-4: 2 shared of 4
    ],
)
def test_neighbourhood_agreement_by_hand(k, expected):
    agreement = neighbourhood_agreement(A, B, k)
    assert agreement.dtype == np.float32
    np.testing.assert_allclose(agreement, expected, rtol=1e-6)


def test_neighbourhood_agreement_is_one_for_identical_lists_and_uses_the_first_k():
    rng = np.random.default_rng(0)
    lists = np.argsort(rng.random((100, 100)), axis=1)[:, :20].astype(np.int32)
    np.testing.assert_array_equal(neighbourhood_agreement(lists, lists, 7), np.ones(100))
    wider = np.hstack([lists[:, :7], lists[:, 7:][:, ::-1]])  # columns after k differ
    np.testing.assert_array_equal(neighbourhood_agreement(lists, wider, 7), np.ones(100))
    assert neighbourhood_agreement(lists, wider, 8).min() < 1


def test_neighbourhood_agreement_refuses_a_bad_k():
    with pytest.raises(InputError, match="largest k available is 3"):
        neighbourhood_agreement(A, B, 4)
    with pytest.raises(InputError, match="largest k available is 2"):
        neighbourhood_agreement(A, B[:, :2], 3)
    with pytest.raises(InputError, match="positive integer"):
        neighbourhood_agreement(A, B, 0)
    with pytest.raises(InputError, match="one row of neighbours per sample"):
        neighbourhood_agreement(A, B[:4], 2)
    with pytest.raises(InputError, match="between 0 and 4"):
        neighbourhood_agreement(A, B + 1, 2)
    with pytest.raises(InputError, match="integers"):
        neighbourhood_agreement(A.astype(float), B, 2)


# --- displacement ---------------------------------------------------------------------------


def neighbours_of(points: np.ndarray, k: int) -> np.ndarray:
    distances = np.linalg.norm(points[:, None] - points[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


def test_displacement_is_zero_for_a_similarity_transform():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((200, 2))
    b = 4.0 * a @ similarity(1.3, True) + [10.0, -3.0]
    moved = displacement(a, b, neighbours_of(a, 10), 10)
    assert moved.dtype == np.float32 and moved.shape == (200,)
    assert np.abs(moved).max() < 1e-6


def test_displacement_singles_out_a_sample_that_leaves_its_neighbourhood():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((300, 2))
    b = a @ similarity(0.5, False) + 0.01 * rng.standard_normal((300, 2))
    b[42] += [5.0, 5.0]  # about five RMS radii away, while the rest barely move
    nbrs = neighbours_of(a, 10)
    moved = displacement(a, b, nbrs, 10)
    assert int(np.argmax(moved)) == 42 and moved[42] > 4.0
    others = np.delete(moved, np.r_[42, np.flatnonzero((nbrs == 42).any(axis=1))])
    assert np.median(others) < 0.05
    # unit-free: the same picture at another scale scores the same
    np.testing.assert_allclose(displacement(100 * a, 0.1 * b, nbrs, 10), moved, atol=1e-5)
    np.testing.assert_array_equal(most_changed(-moved, 1), [42])


def test_displacement_propagates_non_finite_samples_and_checks_k():
    rng = np.random.default_rng(8)
    a = rng.standard_normal((50, 2))
    b = a.copy()
    b[0] = np.nan
    nbrs = neighbours_of(a, 5)
    moved = displacement(a, b, nbrs, 5)
    affected = np.r_[0, np.flatnonzero((nbrs == 0).any(axis=1))]
    assert np.isnan(moved[affected]).all()
    assert np.abs(np.delete(moved, affected)).max() < 1e-6
    with pytest.raises(InputError, match="largest k available is 5"):
        displacement(a, b, nbrs, 6)
    with pytest.raises(InputError, match="one row of neighbours per sample"):
        displacement(a, b, nbrs[:10], 3)


# --- most_changed ---------------------------------------------------------------------------


def test_most_changed_lowest_first_ties_by_index():
    agreement = np.array([0.5, 0.1, 0.9, 0.1, np.nan, 0.0, 0.5], dtype=np.float32)
    np.testing.assert_array_equal(most_changed(agreement, 4), [5, 1, 3, 0])
    np.testing.assert_array_equal(most_changed(agreement, 100), [5, 1, 3, 0, 6, 2, 4])
    assert most_changed(agreement, 0).shape == (0,)
    assert most_changed(agreement, 2).dtype == np.int64
    with pytest.raises(InputError, match="non-negative"):
        most_changed(agreement, -1)
    with pytest.raises(InputError, match="one value per sample"):
        most_changed(agreement.reshape(7, 1), 2)
