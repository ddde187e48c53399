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

Each sample's nearest neighbours in the original space (:func:`nearest_neighbours`, which the
explorer's neighbour lists, the share of them a picture keeps, and a UMAP's graph all read) are
exact up to :data:`EXACT_LIMIT` samples (a blocked search, O(n²·d)). Above it they come from
NN-descent (Dong, Moses & Li 2011) through pynndescent, seeded and single-threaded so that a run
is reproducible, and their recall@k against the exact lists is measured on
:data:`RECALL_SAMPLE` random samples (exact search of those rows against every row) and kept in
the result's provenance. A UMAP above the limit takes that same graph (umap-learn's
``precomputed_knn``) instead of searching again; its own search would be NN-descent too. The
2-D neighbours a picture keeps are exact at every n (a k-d tree above the limit).

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

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic

import numpy as np

from analysis.errors import InputError
from analysis.explorer.selections import similarity_align
from analysis.measures.engine import check_activations
from analysis.measures.knn import knn_indices, mutual_knn_per_sample

__all__ = [
    "ALIGNED_METHODS",
    "EXACT_LIMIT",
    "METHODS",
    "METRICS",
    "PARAMETERS",
    "RECALL_SAMPLE",
    "WIDTH",
    "NeighbourSearch",
    "Neighbourhoods",
    "Projection",
    "nearest_neighbours",
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
EXACT_LIMIT = 20_000
"""Up to this many samples the original-space neighbours are exact; above, NN-descent. Exact
search is O(n²·d): minutes at 50,000 samples on two cores, about six times less at 20,000."""
RECALL_SAMPLE = 1_000
"""Approximate neighbour lists: recall@k against exact search on this many random samples."""
WIDTH = 30
"""Neighbours kept per sample: the explorer compares two spaces' neighbourhoods at any k ≤ this."""


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
    search: NeighbourSearch | None = None,
) -> Projection:
    """Project the rows of ``x`` (n × d) to 2-D with ``method`` (a key of :data:`METHODS`).

    ``search``: the rows' nearest neighbours already found (:func:`nearest_neighbours`, same
    metric, at least ``n_neighbors - 1`` of each); a UMAP then builds its graph from them
    instead of searching again, and says so in its estimator."""
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
        result = _umap(x, n_neighbors, min_dist, metric, seed, name, search)
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
    x: np.ndarray,
    n_neighbors: int,
    min_dist: float,
    metric: str,
    seed: int,
    name: str,
    search: NeighbourSearch | None = None,
) -> Projection:
    import umap  # heavy (numba): imported where it is used

    _check_umap(len(x), n_neighbors, min_dist)
    estimator = f"umap-learn {umap.__version__}"
    precomputed: tuple = (None, None, None)
    usable = search is not None and search.metric == metric and search.k >= n_neighbors - 1
    if search is not None and usable:
        # umap-learn's graph lists each sample first among its own neighbours.
        n = len(x)
        own = np.arange(n, dtype=np.int32)[:, None]
        indices = np.hstack([own, search.indices[:, : n_neighbors - 1]])
        distances = np.hstack(
            [np.zeros((n, 1), np.float32), search.distances[:, : n_neighbors - 1]]
        )
        precomputed = (indices, distances, None)
        estimator += f" on the {search.describe()} neighbour graph"
    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        n_components=2,
        n_jobs=1,  # a seeded UMAP runs single-threaded anyway
        precomputed_knn=precomputed,
    )
    with warnings.catch_warnings():  # without a search index only transform() is lost
        warnings.filterwarnings("ignore", "precomputed_knn", UserWarning)
        coordinates = np.asarray(reducer.fit_transform(np.asarray(x, dtype=np.float32)))
    params = {"n_neighbors": n_neighbors, "min_dist": min_dist, "metric": metric, "seed": seed}
    return Projection("umap", params, coordinates.astype(np.float32), estimator)


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
class NeighbourSearch:
    """Each sample's ``k`` nearest other samples in the original space, and how they were found
    (exact, or NN-descent with its recall@k against exact search on a random sample)."""

    k: int
    metric: str
    indices: np.ndarray  # int32 (n, k): nearest first, self excluded
    distances: np.ndarray  # float32 (n, k): Euclidean, or cosine distance 1 − cos
    method: str  # "exact" | "nn-descent"
    estimator: str
    recall: float | None = None  # mean recall@k on `recall_sample` queries (nn-descent only)
    recall_low: float | None = None  # its 95% interval (normal approximation over queries)
    recall_high: float | None = None
    recall_sample: int = 0
    seconds: float = 0.0  # the search's wall time (recall measurement not included)
    recall_seconds: float = 0.0

    def describe(self) -> str:
        """A few words for an estimator line: 'exact 30-NN (euclidean)' or 'NN-descent …'."""
        if self.method == "exact":
            return f"exact {self.k}-NN ({self.metric})"
        return f"NN-descent {self.k}-NN ({self.metric}, recall@{self.k} {self.recall:.3f})"

    def provenance(self) -> dict:
        """JSON for a stored result: what a page says about the neighbour lists."""
        out: dict[str, object] = {
            "method": self.method,
            "estimator": self.estimator,
            "k": self.k,
            "metric": self.metric,
            "seconds": round(self.seconds, 3),
        }
        if self.method != "exact":
            out.update(
                recall=self.recall,
                recall_interval=[self.recall_low, self.recall_high],
                recall_sample=self.recall_sample,
                recall_seconds=round(self.recall_seconds, 3),
            )
        return out


def nearest_neighbours(
    x: np.ndarray,
    k: int,
    metric: str = "euclidean",
    *,
    seed: int = 0,
    exact_limit: int = EXACT_LIMIT,
    recall_sample: int = RECALL_SAMPLE,
) -> NeighbourSearch:
    """The ``k`` nearest other rows of every row of ``x`` (n × d): exact when n ≤ ``exact_limit``,
    else NN-descent with its recall@k measured against exact search on ``recall_sample`` random
    rows (drawn with ``seed``)."""
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    n = len(x)
    k = min(k, n - 1)
    started = monotonic()
    if n <= exact_limit:
        indices = knn_indices(x, k, metric).astype(np.int32)
        distances = _distances(x, indices, metric)
        estimator = "exact blocked search (analysis.measures.knn), float64 distances"
        return NeighbourSearch(
            k, metric, indices, distances, "exact", estimator, seconds=monotonic() - started
        )
    import pynndescent  # type: ignore[import-untyped]  # heavy (numba): imported where used

    data = np.ascontiguousarray(x, dtype=np.float32)
    index = pynndescent.NNDescent(
        data,
        n_neighbors=k + 1,  # it lists each row among its own neighbours
        metric=metric,
        random_state=seed,
        # umap-learn's settings (more candidates than pynndescent's default: at 200,000 × 32,
        # recall@30 0.989 against 0.963, in no more time on the same machine)
        n_trees=min(64, 5 + int(round(n**0.5 / 20.0))),
        n_iters=max(5, int(round(np.log2(n)))),
        max_candidates=60,
        low_memory=True,
        n_jobs=1,  # seeded and single-threaded: the same lists every run
        compressed=True,
    )
    found, found_distances = index.neighbor_graph
    indices, distances = _without_self(found, found_distances)
    seconds = monotonic() - started
    del index
    estimator = (
        f"NN-descent (pynndescent {pynndescent.__version__}, seed {seed}, single-threaded), "
        "float32 distances"
    )
    search = NeighbourSearch(
        k, metric, indices, distances, "nn-descent", estimator, seconds=seconds
    )
    started = monotonic()
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(n, size=min(recall_sample, n), replace=False))
    exact = exact_neighbours_of(x, queries, k, metric)
    hits = np.array(
        [len(np.intersect1d(a, b)) for a, b in zip(exact, indices[queries], strict=True)]
    )
    per_query = hits / k
    mean = float(per_query.mean())
    half = 1.96 * float(per_query.std(ddof=1)) / np.sqrt(len(queries)) if len(queries) > 1 else 0.0
    search.recall = mean
    search.recall_low, search.recall_high = max(0.0, mean - half), min(1.0, mean + half)
    search.recall_sample = len(queries)
    search.recall_seconds = monotonic() - started
    return search


def _without_self(indices: np.ndarray, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lists of k + 1 that may hold the row itself → lists of k without it (the last entry is
    dropped from a list that does not), sorted by distance."""
    n, width = indices.shape
    drop = indices == np.arange(n)[:, None]
    missing = ~drop.any(axis=1)
    drop[missing, width - 1] = True
    first = np.argmax(drop, axis=1)  # one entry per row: the first self entry (or the last)
    keep = np.ones_like(drop)
    keep[np.arange(n), first] = False
    kept_indices = indices[keep].reshape(n, width - 1)
    kept_distances = distances[keep].reshape(n, width - 1)
    order = np.argsort(kept_distances, axis=1, kind="stable")
    return (
        np.take_along_axis(kept_indices, order, axis=1).astype(np.int32),
        np.take_along_axis(kept_distances, order, axis=1).astype(np.float32),
    )


def exact_neighbours_of(
    x: np.ndarray, queries: np.ndarray, k: int, metric: str = "euclidean"
) -> np.ndarray:
    """(len(queries), k) int64: the exact k nearest other rows of each of the rows ``queries``
    of ``x``, as sets (their order is not guaranteed), by a float64 search of every row in
    blocks: O(q · n · d) time, O(q · block) memory."""
    data = np.asarray(x)
    q = np.asarray(data[queries], dtype=np.float64)
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), np.finfo(float).tiny)
    q_squares = np.einsum("ij,ij->i", q, q)
    best_d = np.full((len(q), k), np.inf)
    best_i = np.zeros((len(q), k), dtype=np.int64)
    block = max(1, (1 << 24) // max(1, len(q)))
    for start in range(0, len(data), block):
        rows = np.asarray(data[start : start + block], dtype=np.float64)
        if metric == "cosine":
            rows = rows / np.maximum(
                np.linalg.norm(rows, axis=1, keepdims=True), np.finfo(float).tiny
            )
        d2 = q_squares[:, None] - 2.0 * (q @ rows.T) + np.einsum("ij,ij->i", rows, rows)[None, :]
        own = (queries >= start) & (queries < start + len(rows))
        d2[np.flatnonzero(own), queries[own] - start] = np.inf
        all_d = np.hstack([best_d, d2])
        all_i = np.hstack([best_i, np.broadcast_to(np.arange(start, start + len(rows)), d2.shape)])
        part = np.argpartition(all_d, k - 1, axis=1)[:, :k]
        best_d = np.take_along_axis(all_d, part, axis=1)
        best_i = np.take_along_axis(all_i, part, axis=1)
    return best_i


def _distances(x: np.ndarray, indices: np.ndarray, metric: str) -> np.ndarray:
    """float32 (n, width): the distance from each row to each of its listed neighbours,
    computed in float64 from the rows, in blocks."""
    n, width = indices.shape
    distances = np.empty((n, width), dtype=np.float32)
    step = max(1, (1 << 22) // max(1, width * x.shape[1]))
    for start in range(0, n, step):
        rows = np.asarray(x[start : start + step], dtype=np.float64)
        others = np.asarray(x[indices[start : start + step].ravel()], dtype=np.float64)
        others = others.reshape(len(rows), width, -1)
        if metric == "cosine":
            rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
            others = others / np.linalg.norm(others, axis=2, keepdims=True)
            distances[start : start + step] = 1.0 - np.einsum("ij,ikj->ik", rows, others)
        else:
            distances[start : start + step] = np.linalg.norm(others - rows[:, None, :], axis=2)
    return distances


@dataclass
class Neighbourhoods:
    """Each sample's k nearest neighbours in the original space, and how many of them a 2-D
    projection keeps: the distortion the picture hides."""

    k: int
    metric: str
    indices: np.ndarray  # int32 (n, width ≥ k): nearest first, ties by index, self excluded
    distances: np.ndarray  # float32 (n, width): Euclidean, or cosine distance 1 − cos
    kept: np.ndarray  # float32 (n,): |N_original(i) ∩ N_2-D(i)| / k, first k of each
    search: dict = field(default_factory=dict)  # NeighbourSearch.provenance() of the lists
    found: NeighbourSearch | None = None  # the search itself (for geometry to reuse)


def neighbourhoods(
    x: np.ndarray,
    coordinates: np.ndarray,
    k: int = 10,
    metric: str = "euclidean",
    width: int = WIDTH,
    *,
    search: NeighbourSearch | None = None,
    seed: int = 0,
    exact_limit: int = EXACT_LIMIT,
) -> Neighbourhoods:
    """The nearest neighbours of every row of ``x`` (n × d) in the original space, the first
    ``max(k, width)`` of each (the explorer compares two spaces' neighbourhoods at any k up to
    ``width``; exact or NN-descent as :func:`nearest_neighbours` decides, or ``search`` when it
    was found already), and the share of each sample's k nearest original neighbours that are
    also among its k nearest in ``coordinates`` (n × 2): Venna & Kaski's neighbourhood
    preservation, per sample. The 2-D neighbours are exact."""
    n = len(x)
    k = min(k, n - 1)
    width = min(max(k, width), n - 1)
    if search is None or search.metric != metric or search.k < width:
        search = nearest_neighbours(x, width, metric, seed=seed, exact_limit=exact_limit)
    original = search.indices[:, :width]
    plane = np.asarray(coordinates, dtype=np.float64)
    if n <= exact_limit:
        projected = knn_indices(plane, k, "euclidean")
    else:  # a k-d tree: exact in 2-D, O(n log n)
        from scipy.spatial import cKDTree

        found = np.asarray(cKDTree(plane).query(plane, k + 1)[1])
        projected = _without_self(found, np.zeros(found.shape, np.float32))[0]
    kept = mutual_knn_per_sample(original[:, :k], projected).astype(np.float32)
    return Neighbourhoods(
        k,
        metric,
        original.astype(np.int32),
        search.distances[:, :width],
        kept,
        search.provenance(),
        search,
    )
