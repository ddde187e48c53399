"""Helpers for the embedding explorer: lasso selection, aligning two 2-D projections of the same
samples, and comparing the samples' neighbourhoods across two spaces. Rows are samples, in the
same order in every array.

- **Lasso selection** (:func:`points_in_polygon`): the even–odd rule. A point is inside when a
  ray from it towards +x crosses the polygon's boundary an odd number of times. An edge from
  (x₁, y₁) to (x₂, y₂) is crossed by the ray from (pₓ, p_y) when min(y₁, y₂) ≤ p_y < max(y₁, y₂)
  (half-open, so a ray through a vertex counts it once, and horizontal edges never count) and
  pₓ lies strictly left of the edge at height p_y. Points on the boundary therefore get a fixed
  answer (for an axis-aligned rectangle: the left and bottom edges are inside, the right and
  top edges outside, as in pixel rasterisation); points with NaN or ±Inf coordinates are never
  inside. The polygon closes itself (last vertex back to the first) and may self-intersect.
- **Similarity alignment** (:func:`similarity_align`): orthogonal Procrustes with isotropic
  scale and translation (Schönemann 1966; Gower 1975, "Generalized Procrustes Analysis"). For
  the rows finite in both, with centroids μ_m, μ_f and centred rows A = M − μ_m, B = F − μ_f,
  the least-squares solution of min ‖s·A·R − B‖²_F over orthogonal R (rotation or reflection)
  and s ≥ 0 is R = U·Vᵀ and s = tr Σ / ‖A‖²_F, from the SVD AᵀB = U·Σ·Vᵀ; every row is then
  mapped to s·(mᵢ − μ_m)·R + μ_f. The RMS residual √(‖s·A·R − B‖²_F / m) is in the units of F.
- **Neighbourhood agreement** (:func:`neighbourhood_agreement`): per sample, the Jaccard index
  |N_a^k(i) ∩ N_b^k(i)| / |N_a^k(i) ∪ N_b^k(i)| of its k nearest neighbours in two spaces
  (the first k columns of nearest-first lists, self excluded), as
  :func:`analysis.measures.knn.knn_jaccard_per_sample`: 1 when the neighbourhoods agree, 0 when they
  share nobody.
- **Neighbour-aware displacement** (:func:`displacement`), in the spirit of Emblaze (Sivaraman,
  Wu & Perer 2022, "Emblaze: Illuminating Machine Learning Representations through Interactive
  Comparison of Embedding Spaces", IUI): with b′ the second projection similarity-aligned to the
  first, a, and vᵢ = b′ᵢ − aᵢ the displacement of sample i,

      Dᵢ = ‖vᵢ − (1/k)·Σ_{j ∈ N_a^k(i)} vⱼ‖ / ρ,   ρ = √(mean_i ‖aᵢ − ā‖²)

  (N_a^k(i): i's k nearest neighbours in a, self excluded; ā and ρ over the rows finite in both
  projections). Subtracting the neighbours' mean displacement discounts a region that moves or
  turns as a whole, and dividing by the RMS radius ρ of a makes D unit-free: 0 for a sample
  that moves with its neighbourhood, 1 for one that leaves it by a typical distance from the
  centre of the picture. A sample with a non-finite coordinate, or a neighbour with one, scores
  NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.errors import InputError
from analysis.measures.knn import knn_jaccard_per_sample

__all__ = [
    "MAX_POLYGON_VERTICES",
    "displacement",
    "most_changed",
    "neighbourhood_agreement",
    "points_in_polygon",
    "similarity_align",
]

MAX_POLYGON_VERTICES = 10_000


# --- lasso selection ------------------------------------------------------------------------


def _planar(points: np.ndarray, name: str) -> np.ndarray:
    """``points`` as a float64 (n, 2) array, or a clear :class:`InputError`."""
    array = np.asarray(points)
    if array.ndim != 2 or array.shape[1] != 2:
        raise InputError(f"{name}: expected an n × 2 array of (x, y), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InputError(f"{name}: coordinates must be numbers, got {array.dtype}")
    return array.astype(np.float64)


def _polygon(polygon: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    try:
        vertices = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("polygon: expected a list of (x, y) vertices given as numbers") from None
    if vertices.ndim != 2 or vertices.shape[1] != 2:
        raise InputError(f"polygon: expected a list of (x, y) vertices, got shape {vertices.shape}")
    if len(vertices) < 3:
        raise InputError(f"polygon: needs at least 3 vertices, got {len(vertices)}")
    if len(vertices) > MAX_POLYGON_VERTICES:
        raise InputError(
            f"polygon: at most {MAX_POLYGON_VERTICES:,} vertices, got {len(vertices):,}"
        )
    if not np.isfinite(vertices).all():
        raise InputError("polygon: vertices contain NaN or Inf")
    # A polygon whose vertices all lie on one line (or one point) encloses nothing.
    centred = vertices - vertices.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    if singular[1] <= singular[0] * len(vertices) * np.finfo(np.float64).eps:
        raise InputError("polygon: its vertices all lie on one line, so it encloses no area")
    return vertices


def points_in_polygon(
    points: np.ndarray, polygon: Sequence[Sequence[float]] | np.ndarray
) -> np.ndarray:
    """Sorted int64 indices of the rows of ``points`` (n × 2) inside ``polygon`` (its (x, y)
    vertices, 3 to :data:`MAX_POLYGON_VERTICES`), by the even–odd rule of the module docstring.

    Points outside the polygon's bounding box are dropped first (none of them can be inside);
    the rest are sorted by y, so each edge tests only the contiguous run of points within its
    own y-range. The cost is O(n log n) plus, per edge, the points level with it.
    """
    xy = _planar(points, "points")
    vertices = _polygon(polygon)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    with np.errstate(invalid="ignore"):  # NaN compares False: never a candidate
        candidates = np.flatnonzero(((xy >= low) & (xy <= high)).all(axis=1))
    order = np.argsort(xy[candidates, 1], kind="stable")
    candidates = candidates[order]
    xs, ys = xy[candidates, 0], xy[candidates, 1]

    x1, y1 = vertices[:, 0], vertices[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    upward = y1 <= y2
    bottom_x = np.where(upward, x1, x2)  # the edge's lower end: the origin of its x(y)
    bottom_y = np.minimum(y1, y2)
    top_y = np.maximum(y1, y2)
    starts = np.searchsorted(ys, bottom_y, side="left")  # first point with y ≥ bottom
    stops = np.searchsorted(ys, top_y, side="left")  # first point with y ≥ top
    with np.errstate(divide="ignore", invalid="ignore"):  # horizontal edges: never used
        slope = (x2 - x1) / (y2 - y1)

    inside = np.zeros(len(candidates), dtype=bool)
    crossing = np.empty(len(candidates))
    left = np.empty(len(candidates), dtype=bool)
    for e in np.flatnonzero(stops > starts):
        a, b = starts[e], stops[e]
        # The edge's x at each point's height; the ray crosses it when the point is left of it.
        np.subtract(ys[a:b], bottom_y[e], out=crossing[: b - a])
        crossing[: b - a] *= slope[e]
        crossing[: b - a] += bottom_x[e]
        np.less(xs[a:b], crossing[: b - a], out=left[: b - a])
        inside[a:b] ^= left[: b - a]
    return np.sort(candidates[inside]).astype(np.int64)


# --- similarity alignment -------------------------------------------------------------------


@dataclass
class _SimilarityFit:
    scale: float
    rotation: np.ndarray  # (2, 2) orthogonal
    aligned: np.ndarray  # (n, 2) float64: every moving row mapped into the fixed frame
    rms_residual: float  # in the units of the fixed projection
    fixed_rms_radius: float  # √(mean ‖fᵢ − μ_f‖²) over the rows used for the fit


def _fit_similarity(
    moving: np.ndarray, fixed: np.ndarray, moving_name: str, fixed_name: str
) -> _SimilarityFit:
    m = _planar(moving, moving_name)
    f = _planar(fixed, fixed_name)
    if len(m) != len(f):
        raise InputError(
            f"{moving_name} and {fixed_name} must hold the same samples: {len(m)} rows vs {len(f)}"
        )
    used = np.isfinite(m).all(axis=1) & np.isfinite(f).all(axis=1)
    if used.sum() < 2:
        raise InputError(
            f"{moving_name} and {fixed_name}: at least 2 samples with finite coordinates in both "
            f"are needed to align them, got {int(used.sum())}"
        )
    mean_m, mean_f = m[used].mean(axis=0), f[used].mean(axis=0)
    a, b = m[used] - mean_m, f[used] - mean_f
    norm_a = float(np.sum(a**2))
    if norm_a == 0.0:
        raise InputError(f"{moving_name}: all points coincide; there is nothing to align")
    u, sigma, vt = np.linalg.svd(a.T @ b)
    rotation = u @ vt
    scale = float(sigma.sum() / norm_a)
    residual = scale * a @ rotation - b
    return _SimilarityFit(
        scale=scale,
        rotation=rotation,
        aligned=scale * (m - mean_m) @ rotation + mean_f,
        rms_residual=float(np.sqrt(np.sum(residual**2) / len(a))),
        fixed_rms_radius=float(np.sqrt(np.sum(b**2) / len(b))),
    )


def similarity_align(moving: np.ndarray, fixed: np.ndarray) -> tuple[np.ndarray, dict]:
    """``moving`` (n × 2) put into the frame of ``fixed`` (n × 2, the same samples) by the
    least-squares similarity transform aligned = s·(moving − μ_m)·R + μ_f of the module
    docstring, fitted on the rows finite in both.

    Returns
    -------
    aligned : float32 (n, 2); rows with a non-finite coordinate in ``moving`` stay non-finite
    info : {"scale": s, "rotation": R as a nested 2 × 2 list, "reflection": det R < 0,
        "rms_residual": RMS distance of the fitted rows to their ``fixed`` counterparts}
    """
    fit = _fit_similarity(moving, fixed, "moving", "fixed")
    info = {
        "scale": fit.scale,
        "rotation": fit.rotation.tolist(),
        "reflection": bool(np.linalg.det(fit.rotation) < 0),
        "rms_residual": fit.rms_residual,
    }
    return fit.aligned.astype(np.float32), info


# --- neighbourhoods ---------------------------------------------------------------------------


def _neighbour_lists(neighbours: np.ndarray, n: int | None, name: str) -> np.ndarray:
    """``neighbours`` as an (n, width) integer array of sample indices in [0, n) (n: its own
    number of rows when None)."""
    array = np.asarray(neighbours)
    if array.ndim != 2:
        raise InputError(
            f"{name}: expected an n × k array of neighbour indices, got shape {array.shape}"
        )
    if n is None:
        n = array.shape[0]
    if array.shape[0] != n:
        raise InputError(
            f"{name}: expected one row of neighbours per sample ({n}), got {array.shape[0]}"
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name}: neighbour indices must be integers, got {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= n):
        raise InputError(f"{name}: neighbour indices must lie between 0 and {n - 1}")
    return array


def _check_k(k: int, width: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    if k > width:
        raise InputError(
            f"k = {k} exceeds the stored neighbour lists: the largest k available is {width}"
        )


def neighbourhood_agreement(
    neighbours_a: np.ndarray, neighbours_b: np.ndarray, k: int
) -> np.ndarray:
    """float32 (n,): the Jaccard index of each sample's k nearest neighbours in two spaces,
    from the first ``k`` columns of nearest-first lists ``neighbours_a`` (n × k_a) and
    ``neighbours_b`` (n × k_b), each row holding distinct indices; 1 = same neighbourhood."""
    a = _neighbour_lists(neighbours_a, None, "neighbours_a")
    b = _neighbour_lists(neighbours_b, len(a), "neighbours_b")
    _check_k(k, min(a.shape[1], b.shape[1]))
    return knn_jaccard_per_sample(a[:, :k], b[:, :k]).astype(np.float32)


def displacement(a: np.ndarray, b: np.ndarray, neighbours_a: np.ndarray, k: int) -> np.ndarray:
    """float32 (n,): the neighbour-aware displacement Dᵢ of the module docstring of each sample
    between projections ``a`` and ``b`` (n × 2 each), with i's neighbourhood the first ``k``
    columns of ``neighbours_a`` (n × k_a, nearest first, self excluded: neighbours in a)."""
    fit = _fit_similarity(b, a, "b", "a")
    neighbours = _neighbour_lists(neighbours_a, len(fit.aligned), "neighbours_a")
    _check_k(k, neighbours.shape[1])
    if fit.fixed_rms_radius == 0.0:
        raise InputError("a: all points coincide; displacements have no scale")
    moved = fit.aligned - _planar(a, "a")
    mean = np.zeros_like(moved)
    for column in range(k):  # one (n, 2) gather at a time: memory O(n), not O(n·k)
        mean += moved[neighbours[:, column]]
    mean /= k
    return (np.linalg.norm(moved - mean, axis=1) / fit.fixed_rms_radius).astype(np.float32)


def most_changed(agreement: np.ndarray, count: int) -> np.ndarray:
    """int64 indices of the ``count`` lowest values of ``agreement`` (n,), lowest first, equal
    values by index; NaN (unknown) sorts after every number. All n when ``count`` ≥ n."""
    values = np.asarray(agreement)
    if values.ndim != 1:
        raise InputError(f"agreement: expected one value per sample, got shape {values.shape}")
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
        raise InputError(f"count must be a non-negative integer, got {count!r}")
    return np.argsort(values, kind="stable")[:count].astype(np.int64)
