"""2-D projections of one representation space, computed on every sample (never a subsample).

- **PCA**: the two leading principal axes of the column-centred activations (float64), from
  the eigendecomposition of the d × d covariance when d ≤ n, else of the n × n Gram matrix;
  each axis's sign is fixed so that its largest loading is positive, so a projection does not
  flip between runs. The share of variance each axis explains is reported.
- **UMAP** (McInnes, Healy & Melville 2018) through umap-learn, seeded, with the user's
  ``n_neighbors``, ``min_dist`` and ``metric``. umap-learn compiles its kernels with numba on
  first use: a worker process pays that once, not per run.
- **t-SNE** (van der Maaten & Hinton 2008) through scikit-learn (Barnes–Hut), seeded, with the
  user's ``perplexity`` (it must stay below n / 3).

Coordinates come back as float32 ``n × 2``, rows in dataset order.

Aligned projections of several spaces of the same samples (layers of one model, one layer of
several checkpoints or epochs), so that a sample sits in comparable places in each picture
(:func:`project_aligned`):

- **aligned UMAP**: umap-learn's ``AlignedUMAP``, fitted on every space at once with the
  identity relation between consecutive spaces (sample i of one is sample i of the next): each
  layout is a UMAP of its own space, regularised towards its neighbours' layouts.
- **Procrustes-aligned PCA**: the PCA of each space, each moved by the similarity transform
  (rotation or reflection, scale, shift) that best fits it onto the previous, already aligned,
  one. Distances within each picture are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from analysis.errors import InputError
from analysis.explorer.selections import similarity_align
from analysis.measures.engine import check_activations
from analysis.measures.knn import knn_indices, mutual_knn_per_sample

__all__ = [
    "ALIGNED_METHODS",
    "METHODS",
    "METRICS",
    "PARAMETERS",
    "Neighbourhoods",
    "Projection",
    "neighbourhoods",
    "project",
    "project_aligned",
]

METHODS = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}
PARAMETERS = {
    "pca": (),
    "umap": ("n_neighbors", "min_dist", "metric"),
    "tsne": ("perplexity", "metric"),
}
"""The options of :func:`project` each method uses (a request names only these)."""
ALIGNED_METHODS = {"umap": "aligned UMAP", "pca": "Procrustes-aligned PCA"}
METRICS = ("euclidean", "cosine")
MIN_SAMPLES = 4


@dataclass
class Projection:
    method: str
    params: dict  # the parameters used, defaults filled in (JSON-serialisable)
    coordinates: np.ndarray  # float32 (n, 2)
    estimator: str
    explained_variance: list[float] | None = None  # PCA: share of the variance per axis
    warnings: list[str] = field(default_factory=list)


def project(
    x: np.ndarray,
    method: str = "pca",
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    perplexity: float = 30.0,
    seed: int = 0,
    name: str = "activations",
    progress: Callable[[float], None] | None = None,
) -> Projection:
    """Project the rows of ``x`` (n × d) to 2-D with ``method`` (a key of :data:`METHODS`)."""
    if method not in METHODS:
        raise InputError(f"unknown projection {method!r}; choose one of: {', '.join(METHODS)}")
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    x = check_activations(x, name, MIN_SAMPLES)
    if progress:
        progress(0.05)
    if method == "pca":
        result = _pca(x, name)
    elif method == "umap":
        result = _umap(x, n_neighbors, min_dist, metric, seed, name)
    else:
        result = _tsne(x, perplexity, metric, seed, name)
    if progress:
        progress(1.0)
    return result


def project_aligned(
    spaces: list[np.ndarray],
    method: str = "umap",
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    seed: int = 0,
    names: list[str] | None = None,
    progress: Callable[[float], None] | None = None,
) -> list[Projection]:
    """One projection per space (each n × d_i, rows = the same samples in the same order),
    aligned with each other; ``method`` is a key of :data:`ALIGNED_METHODS`."""
    if method not in ALIGNED_METHODS:
        raise InputError(
            f"unknown aligned projection {method!r}; choose one of: {', '.join(ALIGNED_METHODS)}"
        )
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    if len(spaces) < 2:
        raise InputError("aligned projections need at least two spaces")
    names = names or [f"space {i + 1}" for i in range(len(spaces))]
    spaces = [
        check_activations(x, name, MIN_SAMPLES) for x, name in zip(spaces, names, strict=True)
    ]
    if len({len(x) for x in spaces}) != 1:
        raise InputError("aligned projections need the same samples in every space")
    if progress:
        progress(0.05)
    if method == "pca":
        results = [_pca(x, name) for x, name in zip(spaces, names, strict=True)]
        for previous, result in zip(results, results[1:], strict=False):
            result.coordinates = similarity_align(result.coordinates, previous.coordinates)[0]
        estimator = "PCA of each space, similarity-aligned to the previous one (float64)"
        params = {}
    else:
        results, estimator = _aligned_umap(spaces, n_neighbors, min_dist, metric, seed)
        params = {"n_neighbors": n_neighbors, "min_dist": min_dist, "metric": metric, "seed": seed}
    if progress:
        progress(1.0)
    for position, result in enumerate(results):
        result.method = f"aligned-{method}"
        result.params = {**params, "position": position, "of": len(results)}
        result.estimator = estimator
    return results


def _aligned_umap(
    spaces: list[np.ndarray], n_neighbors: int, min_dist: float, metric: str, seed: int
) -> tuple[list[Projection], str]:
    import umap

    n = len(spaces[0])
    _check_umap(n, n_neighbors, min_dist)
    identity = {i: i for i in range(n)}
    reducer = umap.AlignedUMAP(
        n_neighbors=n_neighbors, min_dist=min_dist, metric=metric, random_state=seed
    )
    reducer.fit(
        [np.asarray(x, dtype=np.float32) for x in spaces], relations=[identity] * (len(spaces) - 1)
    )
    results = [
        Projection("umap", {}, np.asarray(e, dtype=np.float32), "") for e in reducer.embeddings_
    ]
    return results, f"umap-learn {umap.__version__} AlignedUMAP, identity relations"


def _pca(x: np.ndarray, name: str) -> Projection:
    centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    n, d = centred.shape
    if d <= n:
        eigenvalues, axes = np.linalg.eigh(centred.T @ centred)
        eigenvalues, axes = eigenvalues[::-1][:2], axes[:, ::-1][:, :2]
    else:  # the same axes from the smaller Gram matrix: Xᵀu / ‖Xᵀu‖
        eigenvalues, left = np.linalg.eigh(centred @ centred.T)
        eigenvalues, left = eigenvalues[::-1][:2], left[:, ::-1][:, :2]
        axes = centred.T @ left
        axes /= np.maximum(np.linalg.norm(axes, axis=0), np.finfo(float).tiny)
    total = float(np.einsum("ij,ij->", centred, centred))
    if total == 0.0:
        raise InputError(f"{name}: every column is constant across samples; nothing to project")
    # The sign of an eigenvector is arbitrary: make the largest loading of each axis positive.
    flip = np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(axes.shape[1])])
    axes *= np.where(flip == 0, 1.0, flip)
    coordinates = np.zeros((n, 2), dtype=np.float32)
    coordinates[:, : axes.shape[1]] = centred @ axes
    explained = [max(0.0, float(v)) / total for v in eigenvalues]
    warnings = [] if d >= 2 else [f"{name} has a single dimension: the second axis is 0"]
    return Projection(
        "pca",
        {},
        coordinates,
        f"eigendecomposition of the {'covariance' if d <= n else 'Gram'} matrix, float64",
        explained,
        warnings,
    )


def _check_umap(n: int, n_neighbors: int, min_dist: float) -> None:
    if not 2 <= n_neighbors < n:
        raise InputError(f"n_neighbors must be between 2 and {n - 1} for {n} samples")
    if not 0.0 <= min_dist <= 1.0:
        raise InputError("min_dist must be between 0 and 1")


def _umap(
    x: np.ndarray, n_neighbors: int, min_dist: float, metric: str, seed: int, name: str
) -> Projection:
    import umap  # heavy (numba): imported where it is used

    _check_umap(len(x), n_neighbors, min_dist)
    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        n_components=2,
        n_jobs=1,  # a seeded UMAP runs single-threaded anyway
    )
    coordinates = np.asarray(reducer.fit_transform(np.asarray(x, dtype=np.float32)))
    params = {"n_neighbors": n_neighbors, "min_dist": min_dist, "metric": metric, "seed": seed}
    return Projection(
        "umap", params, coordinates.astype(np.float32), f"umap-learn {umap.__version__}"
    )


def _tsne(x: np.ndarray, perplexity: float, metric: str, seed: int, name: str) -> Projection:
    from sklearn import __version__ as sklearn_version
    from sklearn.manifold import TSNE

    n = len(x)
    if not 1.0 <= perplexity < n / 3:
        raise InputError(f"perplexity must be between 1 and {n / 3:.1f} (n / 3) for {n} samples")
    tsne = TSNE(n_components=2, perplexity=perplexity, metric=metric, random_state=seed)
    coordinates = tsne.fit_transform(np.asarray(x, dtype=np.float32))
    params = {"perplexity": perplexity, "metric": metric, "seed": seed}
    estimator = f"scikit-learn {sklearn_version} Barnes–Hut t-SNE"
    return Projection("tsne", params, coordinates.astype(np.float32), estimator)


@dataclass
class Neighbourhoods:
    """Each sample's k nearest neighbours in the original space, and how many of them a 2-D
    projection keeps: the distortion the picture hides."""

    k: int
    metric: str
    indices: np.ndarray  # int32 (n, width ≥ k): nearest first, ties by index, self excluded
    distances: np.ndarray  # float32 (n, width): Euclidean, or cosine distance 1 − cos
    kept: np.ndarray  # float32 (n,): |N_original(i) ∩ N_2-D(i)| / k, first k of each


def neighbourhoods(
    x: np.ndarray,
    coordinates: np.ndarray,
    k: int = 10,
    metric: str = "euclidean",
    width: int = 30,
) -> Neighbourhoods:
    """Exact nearest neighbours of every row of ``x`` (n × d), the first ``max(k, width)`` of
    each (the explorer compares two spaces' neighbourhoods at any k up to ``width``), and the
    share of each sample's k nearest original neighbours that are also among its k nearest in
    ``coordinates`` (n × 2): Venna & Kaski's neighbourhood preservation, per sample."""
    n = len(x)
    k = min(k, n - 1)
    width = min(max(k, width), n - 1)
    original = knn_indices(x, width, metric)
    projected = knn_indices(np.asarray(coordinates, dtype=np.float64), k, "euclidean")
    distances = np.empty((n, width), dtype=np.float32)
    step = max(1, (1 << 22) // max(1, width * x.shape[1]))
    for start in range(0, n, step):
        rows = np.asarray(x[start : start + step], dtype=np.float64)
        others = np.asarray(x[original[start : start + step].ravel()], dtype=np.float64)
        others = others.reshape(len(rows), width, -1)
        if metric == "cosine":
            rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
            others = others / np.linalg.norm(others, axis=2, keepdims=True)
            distances[start : start + step] = 1.0 - np.einsum("ij,ikj->ik", rows, others)
        else:
            distances[start : start + step] = np.linalg.norm(others - rows[:, None, :], axis=2)
    kept = mutual_knn_per_sample(original[:, :k], projected).astype(np.float32)
    return Neighbourhoods(k, metric, original.astype(np.int32), distances, kept)
