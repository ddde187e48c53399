"""Compatibility between model versions, a retrieval protocol (Shen et al. 2020, "Towards
Backward-Compatible Representation Learning", CVPR — BCT; Biondi et al. 2024, "Stationary
Representations: Optimally Approximating Compatibility and Implications for Improved Model
Replacements", CVPR — AC and AM).

Samples are split into queries and a gallery. ``M(q, g)`` is the retrieval quality (top-1,
top-5, mAP) when the queries are embedded by model q and the gallery by model g; a query's
relevant items are the gallery items with its label. The empirical compatibility
criterion (ECC) and the rest, for models 1..T in series order::

    ECC (BCT)           M(new, old) > M(old, old)
    update gain (BCT)   (M(new, old) − M(old, old)) / (M(new, new) − M(old, old))
    C[i][j] = M(i, j)   lower triangle i ≥ j (Biondi et al.)
    AC                  share of pairs i > j with C[i][j] > C[j][j]
    AM                  mean of the lower triangle of C

and the negative flips of a pair are the queries right under (old, old) and wrong under
(new, old).

Uncertainty: every M is a mean over queries, so a bootstrap over queries (drawn with
replacement, the gallery kept, :data:`N_BOOTSTRAP` resamples seeded by ``seed``; the same
resampled queries for every cell, so differences are paired) gives 95 % percentile intervals
on each cell of the criterion, on the ECC difference M(new, old) − M(old, old), on the update
gain, AC and AM. An ECC whose difference interval covers 0 is "not distinguishable": the
queries drawn cannot tell the update from no change. Chance levels are the exact expectations
of top-1, top-5 and AP under a uniformly random ranking of the gallery (:func:`chance_levels`).

Rankings are exact, with ties broken by gallery index: distances are screened by one
matrix product per block of queries and near-equal ones recomputed from differences, as in
:mod:`analysis.measures.knn`, so duplicated gallery items rank the same in every cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from analysis.errors import InputError
from analysis.measures.engine import check_activations
from analysis.measures.knn import _embed, _squared_distances

__all__ = [
    "N_BOOTSTRAP",
    "ROLES",
    "VERDICTS",
    "Compatibility",
    "Retrieval",
    "bootstrap_means",
    "chance_levels",
    "compatibility",
    "percentile_interval",
    "query_gallery_split",
    "retrieval",
    "verdict",
]

ROLES = ("query", "gallery")
METRICS = ("cosine", "euclidean")
CRITERIA = ("top1", "top5", "mean_ap")
BLOCK_ENTRIES = 1 << 21  # query × gallery entries ranked at once; a block holds a few such arrays
CANDIDATE_BAND = 1e-8  # distances this close (relative) are recomputed from differences
N_BOOTSTRAP = 1000  # resamples of the queries behind every interval
LEVEL = 0.95  # the intervals' nominal coverage
RESAMPLES_AT_ONCE = 100  # bootstrap resamples whose weights are held at once
VERDICTS = ("yes", "no", "not distinguishable")


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise InputError(f"unknown retrieval metric {metric!r}: use 'cosine' or 'euclidean'")


def _check_labels(
    labels: np.ndarray, name: str, n: int | None = None, rows: str = ""
) -> np.ndarray:
    """``labels`` as a 1-D array without NaN, of length ``n`` (that of ``rows``) when given."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise InputError(f"{name} must be a 1-D array, got shape {labels.shape}")
    if n is not None and labels.shape[0] != n:
        raise InputError(f"{name} has {labels.shape[0]} entries but {rows} has {n}")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise InputError(f"{name} contain NaN or Inf")
    return labels


def _codes(*labels: np.ndarray) -> list[np.ndarray]:
    """Integer codes of label arrays, equal where the labels are equal (across arrays too)."""
    codes = np.unique(np.concatenate(labels), return_inverse=True)[1]
    return np.split(codes, np.cumsum([len(part) for part in labels])[:-1])


def _has_relevant(query_codes: np.ndarray, gallery_codes: np.ndarray) -> np.ndarray:
    return np.isin(query_codes, gallery_codes)


def query_gallery_split(
    labels: np.ndarray,
    roles: np.ndarray | None = None,
    *,
    query_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Query and gallery sample indices for the retrieval protocol of BCT (Shen et al. 2020).

    Parameters
    ----------
    labels : (n,) array of class or identity labels
    roles : (n,) array of strings, optional
        "query" or "gallery" per sample (anything else leaves the sample out). Without it, a
        seeded split takes about ``query_fraction`` of each label's samples as queries, only
        from labels with at least 2 samples and never all of them, so every query has a gallery
        item with its label; all other samples form the gallery.
    query_fraction : float in (0, 1)
    seed : int

    Returns
    -------
    (query indices, gallery indices), ascending int arrays, disjoint.
    """
    labels = _check_labels(labels, "labels")
    if labels.shape[0] < 2:
        raise InputError(f"a query/gallery split needs at least 2 samples, got {labels.shape[0]}")
    if roles is not None:
        roles = _check_labels(roles, "roles", labels.shape[0], "labels")
        query = np.flatnonzero(roles == ROLES[0])
        gallery = np.flatnonzero(roles == ROLES[1])
        for role, idx in zip(ROLES, (query, gallery), strict=True):
            if idx.size == 0:
                raise InputError(f"no sample has the role {role!r}")
    else:
        if not 0 < query_fraction < 1:
            raise InputError(
                f"query_fraction must lie strictly between 0 and 1, got {query_fraction}"
            )
        rng = np.random.default_rng(seed)
        codes = _codes(labels)[0]
        by_label = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes))[:-1])
        chosen = []
        for members in by_label:
            # Randomised rounding: each label gives query_fraction of its samples on average.
            n_query = min(members.size - 1, int(query_fraction * members.size + rng.random()))
            chosen.append(rng.choice(members, n_query, replace=False))
        query = np.sort(np.concatenate(chosen))
        if query.size == 0:
            raise InputError(
                f"the split drew no query from {labels.shape[0]} samples: retrieval needs labels "
                "with at least 2 samples, or a larger query_fraction"
            )
        gallery = np.setdiff1d(np.arange(labels.shape[0]), query).astype(np.intp)
    query_codes, gallery_codes = _codes(labels[query], labels[gallery])
    if not _has_relevant(query_codes, gallery_codes).any():
        raise InputError("no query has a gallery item with its label: nothing can be retrieved")
    return query, gallery


@dataclass
class Retrieval:
    """Retrieval quality of queries against a gallery. Top-k and mAP average over the queries
    with at least one relevant gallery item (``has_relevant``); the others count as wrong in
    ``correct_top1``."""

    top1: float
    top5: float
    mean_ap: float
    correct_top1: np.ndarray  # bool (n_queries,)
    n_queries: int
    n_gallery: int
    has_relevant: np.ndarray  # bool (n_queries,): some gallery item carries the query's label
    first_hit: np.ndarray  # int (n_queries,): rank of the first relevant item, from 0
    average_precision: np.ndarray  # float (n_queries,): 0 where nothing is relevant

    def per_query(self, criterion: str) -> np.ndarray:
        """Each scored query's contribution to ``criterion`` (its mean over them is the
        criterion): hit or miss for top-k, the average precision for mAP."""
        scored = self.has_relevant
        if criterion == "mean_ap":
            return self.average_precision[scored]
        return (self.first_hit[scored] < (1 if criterion == "top1" else 5)).astype(float)


def _relevance_by_rank(
    approx: np.ndarray,
    band: np.ndarray,
    relevant: np.ndarray,
    pairs: np.ndarray,
    query_rows: np.ndarray,
) -> np.ndarray:
    """Whether the gallery item at each rank is relevant, per query row; (b, n_g) bool.

    ``approx`` are squared distances from a matrix product and ``relevant`` the (b, n_g)
    relevance of the gallery items in index order. Items rank nearest first, equal distances by
    index: runs of approximate distances within ``band`` of each other that mix relevant and
    other items (only their order changes a score) are re-ranked by squared distances from
    differences (computed on ``pairs``, the gallery rows followed by the query rows, for the
    queries at ``query_rows``), which are equal in floating point when the distances are equal
    (duplicates, discrete embeddings). As every such tie is re-ranked, the first sort need not
    be stable.
    """
    order = np.argsort(approx, axis=1)
    ranked = np.take_along_axis(approx, order, axis=1)
    by_rank = np.take_along_axis(relevant, order, axis=1)
    close = np.diff(ranked, axis=1) <= band[:, None]
    tied = np.zeros(order.shape, dtype=bool)
    tied[:, 1:] |= close
    tied[:, :-1] |= close
    r, p = np.nonzero(tied)  # row-major, so each run of ties is contiguous
    run = np.cumsum((p == 0) | ~close[r, np.maximum(p - 1, 0)]) - 1
    n_relevant = np.bincount(run, by_rank[r, p])
    mixed = ((n_relevant > 0) & (n_relevant < np.bincount(run)))[run]
    r, p, run = r[mixed], p[mixed], run[mixed]
    gallery_idx = order[r, p]
    exact = _squared_distances(pairs, query_rows[r], gallery_idx)
    by_rank[r, p] = relevant[r, gallery_idx][np.lexsort((gallery_idx, exact, run))]
    return by_rank


def _retrieve(
    queries: np.ndarray,
    gallery: np.ndarray,
    query_codes: np.ndarray,
    gallery_codes: np.ndarray,
    metric: str,
    block_size: int | None,
) -> Retrieval:
    """Top-1, top-5 and mAP of embedded rows (unit rows for cosine), queries in blocks."""
    n_q, n_g = queries.shape[0], gallery.shape[0]
    # Euclidean: a common shift limits cancellation in ‖q‖² − 2 q·g + ‖g‖²; cosine rows are unit.
    shift = gallery.mean(axis=0) if metric == "euclidean" else np.zeros(gallery.shape[1])
    q_screen, g_screen = queries - shift, gallery - shift
    q_squares = np.einsum("ij,ij->i", q_screen, q_screen)
    g_squares = np.einsum("ij,ij->i", g_screen, g_screen)
    band = CANDIDATE_BAND * (q_squares + g_squares.max())
    pairs = np.concatenate([gallery, queries])
    first_hit = np.full(n_q, n_g, dtype=np.intp)  # rank of the first relevant item, from 0
    average_precision = np.zeros(n_q)
    has_relevant = _has_relevant(query_codes, gallery_codes)
    rows = block_size or max(1, BLOCK_ENTRIES // n_g)
    for start in range(0, n_q, rows):
        stop = min(n_q, start + rows)
        approx = q_screen[start:stop] @ g_screen.T
        approx *= -2.0
        approx += g_squares[None, :]
        approx += q_squares[start:stop, None]
        relevant = gallery_codes[None, :] == query_codes[start:stop, None]
        queries_at = n_g + np.arange(start, stop)
        # relevant items by (query, rank), row-major; AP = mean of precision at their ranks
        r, p = np.nonzero(_relevance_by_rank(approx, band[start:stop], relevant, pairs, queries_at))
        row_start = np.searchsorted(r, np.arange(stop - start))
        n_relevant = np.bincount(r, minlength=stop - start)
        hits = np.arange(1, r.size + 1) - row_start[r]
        precision_sum = np.bincount(r, hits / (p + 1), minlength=stop - start)
        average_precision[start:stop] = precision_sum / np.maximum(n_relevant, 1)
        found = n_relevant > 0
        first_hit[start:stop][found] = p[row_start[found]]
    scored = first_hit[has_relevant]
    return Retrieval(
        top1=float(np.mean(scored < 1)),
        top5=float(np.mean(scored < 5)),
        mean_ap=float(np.mean(average_precision[has_relevant])),
        correct_top1=first_hit < 1,
        n_queries=n_q,
        n_gallery=n_g,
        has_relevant=has_relevant,
        first_hit=first_hit,
        average_precision=average_precision,
    )


def retrieval(
    queries: np.ndarray,
    gallery: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    *,
    metric: str = "cosine",
    block_size: int | None = None,
) -> Retrieval:
    """Retrieval quality of ``queries`` (embedded by one model) against ``gallery`` (embedded by
    another), the quantity ``M(q, g)`` of BCT (Shen et al. 2020).

    Parameters
    ----------
    queries : (n_q, d) array
    gallery : (n_g, d) array, the same width d
    query_labels : (n_q,) array
    gallery_labels : (n_g,) array
    metric : "cosine" or "euclidean"
    block_size : queries ranked at once (default: about 2M query × gallery entries)

    Returns
    -------
    :class:`Retrieval`: top-k is the share of queries with a relevant item (a gallery item with
    their label) among their k nearest; mAP the mean over those queries of the average precision
    of the full ranking. Queries without any relevant item are left out of both.
    """
    _check_metric(metric)
    queries = check_activations(queries, "queries", 1)
    gallery = check_activations(gallery, "gallery", 1)
    if queries.shape[1] != gallery.shape[1]:
        raise InputError(
            f"queries have width {queries.shape[1]} and the gallery width {gallery.shape[1]}: "
            "retrieval needs embeddings of the same width"
        )
    query_codes, gallery_codes = _codes(
        _check_labels(query_labels, "query_labels", queries.shape[0], "queries"),
        _check_labels(gallery_labels, "gallery_labels", gallery.shape[0], "the gallery"),
    )
    if not _has_relevant(query_codes, gallery_codes).any():
        raise InputError("no query has a gallery item with its label: nothing can be retrieved")
    return _retrieve(
        _embed(queries, metric, "queries"),
        _embed(gallery, metric, "gallery"),
        query_codes,
        gallery_codes,
        metric,
        block_size,
    )


def chance_levels(query_labels: np.ndarray, gallery_labels: np.ndarray) -> dict[str, float]:
    """Expected top-1, top-5 and mAP when the gallery is ranked uniformly at random, over the
    queries with a relevant gallery item (those the scores average over).

    A query with R relevant items among N: top-1 R/N; top-5 1 − C(N − R, 5) / C(N, 5) (no
    relevant item among 5 drawn without replacement); AP
    (H_N + (R − 1)/(N − 1) · (N − H_N)) / N, H_N the N-th harmonic number: a relevant item
    at rank k has, in expectation, 1 + (k − 1)(R − 1)/(N − 1) relevant items at ranks ≤ k.
    """
    query_codes, gallery_codes = _codes(
        _check_labels(query_labels, "query_labels"),
        _check_labels(gallery_labels, "gallery_labels"),
    )
    n = gallery_codes.size
    r = np.bincount(gallery_codes, minlength=query_codes.max() + 1)[query_codes].astype(float)
    r = r[r > 0]
    if r.size == 0:
        raise InputError("no query has a gallery item with its label: nothing can be retrieved")
    none_in_5 = np.ones_like(r)
    for i in range(min(5, n)):
        none_in_5 *= np.clip(n - r - i, 0, None) / (n - i)
    harmonic = float(np.sum(1.0 / np.arange(1, n + 1)))
    share = (r - 1) / (n - 1) if n > 1 else np.zeros_like(r)
    return {
        "top1": float(np.mean(r / n)),
        "top5": float(np.mean(1 - none_in_5)),
        "mean_ap": float(np.mean((harmonic + share * (n - harmonic)) / n)),
    }


def bootstrap_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of the rows of ``values`` over ``n_resamples`` bootstrap resamples of its columns.

    Parameters
    ----------
    values : (m, n) array, m statistics of the same n units (queries)
    n_resamples : int, at least 1
    seed : int; each resample draws n columns with replacement, the same for every row

    Returns
    -------
    (n_resamples, m) array: row b holds the m means over resample b.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] == 0:
        raise InputError(f"values must be an m × n array with n ≥ 1, got shape {values.shape}")
    if n_resamples < 1:
        raise InputError(f"n_resamples must be at least 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    n = values.shape[1]
    means = np.empty((n_resamples, values.shape[0]))
    for start in range(0, n_resamples, RESAMPLES_AT_ONCE):
        b = min(RESAMPLES_AT_ONCE, n_resamples - start)
        drawn = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=b * n).reshape(b, n)
        means[start : start + b] = counts @ values.T / n
    return means


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap ``samples`` (1-D)."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def verdict(low: float, high: float) -> str:
    """ECC from the interval of M(new, old) − M(old, old): "yes" when it lies above 0, "no"
    below, "not distinguishable" when it covers 0."""
    if low > 0:
        return VERDICTS[0]
    if high < 0:
        return VERDICTS[1]
    return VERDICTS[2]


@dataclass
class Compatibility:
    """Cross-model retrieval of a series of models, with the criteria of BCT (Shen et al. 2020)
    and Biondi et al. 2024. Matrices are T × T, ``[i][j]`` = M(queries by model i, gallery by
    model j), None where the two widths differ; pair dicts are keyed (i, j) with i > j."""

    names: list[str]
    criterion: str
    top1: list[list[float | None]]
    top5: list[list[float | None]]
    mean_ap: list[list[float | None]]
    ecc: dict[tuple[int, int], bool]  # M(i, j) > M(j, j); False where the widths differ
    # None where the widths differ or the new model is no better on its own gallery
    # (M(i, i) ≤ M(j, j)): the gain is a share of an improvement that did not happen.
    update_gain: dict[tuple[int, int], float | None]
    ac: float | None  # None for a single model
    am: float | None
    flips: dict[tuple[int, int], np.ndarray]  # query positions; only pairs of equal width
    n_queries: int
    n_gallery: int
    warnings: list[str]
    # M(i, j) − M(j, j) per pair, None where the widths differ
    difference: dict[tuple[int, int], float | None]
    # 95 % bootstrap intervals over queries: of the criterion per cell (T × T, None where the
    # widths differ), of the difference and the gain per pair (None where undefined, for the
    # gain also where the new model is not better on its own gallery in every resample), of
    # AC and AM
    ci_low: list[list[float | None]]
    ci_high: list[list[float | None]]
    difference_ci: dict[tuple[int, int], tuple[float, float] | None]
    update_gain_ci: dict[tuple[int, int], tuple[float, float] | None]
    ac_ci: tuple[float, float] | None
    am_ci: tuple[float, float]
    verdict: dict[tuple[int, int], str]  # one of VERDICTS, from difference_ci
    chance: dict[str, float]  # top1, top5, mean_ap under a random ranking of the gallery
    n_bootstrap: int
    seed: int

    def to_json(self) -> dict:
        """A JSON-serialisable dict: pair keys as "i,j", arrays as lists."""

        def pairs(values: dict) -> dict:
            return {f"{i},{j}": value for (i, j), value in values.items()}

        return {
            "names": list(self.names),
            "criterion": self.criterion,
            "top1": self.top1,
            "top5": self.top5,
            "mean_ap": self.mean_ap,
            "ecc": pairs(self.ecc),
            "update_gain": pairs(self.update_gain),
            "ac": self.ac,
            "am": self.am,
            "flips": pairs({key: value.tolist() for key, value in self.flips.items()}),
            "n_queries": self.n_queries,
            "n_gallery": self.n_gallery,
            "warnings": list(self.warnings),
            "difference": pairs(self.difference),
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "difference_ci": pairs({k: _listed(v) for k, v in self.difference_ci.items()}),
            "update_gain_ci": pairs({k: _listed(v) for k, v in self.update_gain_ci.items()}),
            "ac_ci": _listed(self.ac_ci),
            "am_ci": _listed(self.am_ci),
            "verdict": pairs(self.verdict),
            "chance": dict(self.chance),
            "n_bootstrap": self.n_bootstrap,
            "seed": self.seed,
        }


def _listed(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else list(interval)


def _check_indices(idx: np.ndarray, n: int, name: str) -> np.ndarray:
    idx = np.asarray(idx)
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
        raise InputError(f"{name} must be a non-empty 1-D array of sample indices")
    if idx.min() < 0 or idx.max() >= n:
        raise InputError(f"{name} must lie in [0, {n}), got {idx.min()}..{idx.max()}")
    if np.unique(idx).size != idx.size:
        raise InputError(f"{name} lists a sample more than once")
    return idx


def compatibility(
    embeddings: Sequence[tuple[str, np.ndarray]],
    labels: np.ndarray,
    query_idx: np.ndarray,
    gallery_idx: np.ndarray,
    *,
    metric: str = "cosine",
    criterion: str = "top1",
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
    block_size: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> Compatibility:
    """The compatibility matrix of a series of models and its criteria (Shen et al. 2020, BCT;
    Biondi et al. 2024, AC and AM).

    Parameters
    ----------
    embeddings : (name, (n, d) array) per model, oldest first; rows are the same n samples
    labels : (n,) class or identity labels
    query_idx, gallery_idx : disjoint sample indices (see :func:`query_gallery_split`)
    metric : "cosine" or "euclidean"
    criterion : "top1", "top5" or "mean_ap", the retrieval quality M the criteria use
    n_bootstrap : resamples of the queries behind the intervals (see the module docstring)
    seed : seeds the resamples
    block_size : queries ranked at once (default: about 2M query × gallery entries)
    progress : called with the fraction of cells done

    Returns
    -------
    :class:`Compatibility`. M is computed for every ordered pair (i, j); models of different
    width cannot search each other's gallery, so those cells are None, the pair is not
    compatible (ECC false, verdict "no", counted in AC) and AM averages the cells that exist.
    """
    _check_metric(metric)
    if criterion not in CRITERIA:
        raise InputError(f"unknown criterion {criterion!r}: use 'top1', 'top5' or 'mean_ap'")
    if not embeddings:
        raise InputError("choose at least one model")
    if n_bootstrap < 1:
        raise InputError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    labels = _check_labels(labels, "labels")
    n = labels.shape[0]
    query_idx = _check_indices(query_idx, n, "query indices")
    gallery_idx = _check_indices(gallery_idx, n, "gallery indices")
    shared = np.intersect1d(query_idx, gallery_idx)
    if shared.size:
        raise InputError(
            f"{shared.size} sample(s) are both query and gallery (first: {shared[0]}): each "
            "query would retrieve itself"
        )
    query_codes, gallery_codes = _codes(labels[query_idx], labels[gallery_idx])
    has_relevant = _has_relevant(query_codes, gallery_codes)
    if not has_relevant.any():
        raise InputError("no query has a gallery item with its label: nothing can be retrieved")
    names, queries, gallery = [], [], []
    for name, x in embeddings:
        x = check_activations(x, name, 2)
        if x.shape[0] != n:
            raise InputError(f"{name}: {x.shape[0]} rows, but there are {n} labels")
        rows = _embed(x, metric, name)
        names.append(name)
        queries.append(rows[query_idx])
        gallery.append(rows[gallery_idx])

    warnings = []
    missing = int((~has_relevant).sum())
    if missing:
        warnings.append(
            f"{missing} of {has_relevant.size} queries have no gallery item with their label: "
            "they are left out of every score"
        )
    t = len(names)
    widths = [x.shape[1] for x in queries]
    cells = [(i, j) for i in range(t) for j in range(t) if widths[i] == widths[j]]
    results: dict[tuple[int, int], Retrieval] = {}
    for done, (i, j) in enumerate(cells, 1):
        results[(i, j)] = _retrieve(
            queries[i], gallery[j], query_codes, gallery_codes, metric, block_size
        )
        if progress:
            progress(done / len(cells))

    def matrix(field: str) -> list[list[float | None]]:
        return [
            [getattr(results[(i, j)], field) if (i, j) in results else None for j in range(t)]
            for i in range(t)
        ]

    tables = {field: matrix(field) for field in CRITERIA}
    # M of the cells that exist; every model searches its own gallery, so (i, i) is one
    c: dict[tuple[int, int], float] = {key: getattr(r, criterion) for key, r in results.items()}
    # the criterion of every cell over each bootstrap resample of the queries: (B,) per cell
    per_query = np.stack([r.per_query(criterion) for r in results.values()])
    resampled = dict(zip(results, bootstrap_means(per_query, n_bootstrap, seed).T, strict=True))
    ci = {key: percentile_interval(values) for key, values in resampled.items()}
    ecc: dict[tuple[int, int], bool] = {}
    update_gain: dict[tuple[int, int], float | None] = {}
    difference: dict[tuple[int, int], float | None] = {}
    difference_ci: dict[tuple[int, int], tuple[float, float] | None] = {}
    update_gain_ci: dict[tuple[int, int], tuple[float, float] | None] = {}
    verdicts: dict[tuple[int, int], str] = {}
    compatible_b = []  # ECC of each pair over the resamples
    flips: dict[tuple[int, int], np.ndarray] = {}
    for i in range(t):
        for j in range(i):
            if (i, j) not in c:
                warnings.append(
                    f"{names[i]!r} (d={widths[i]}) and {names[j]!r} (d={widths[j]}) differ in "
                    "width: neither can search the other's gallery, so the pair is not compatible"
                )
                ecc[(i, j)], update_gain[(i, j)], verdicts[(i, j)] = False, None, VERDICTS[1]
                difference[(i, j)] = difference_ci[(i, j)] = update_gain_ci[(i, j)] = None
                compatible_b.append(np.zeros(n_bootstrap, dtype=bool))
                continue
            ecc[(i, j)] = c[(i, j)] > c[(j, j)]
            difference[(i, j)] = c[(i, j)] - c[(j, j)]
            gain = c[(i, i)] - c[(j, j)]
            update_gain[(i, j)] = (c[(i, j)] - c[(j, j)]) / gain if gain > 0 else None
            difference_b = resampled[(i, j)] - resampled[(j, j)]
            gain_b = resampled[(i, i)] - resampled[(j, j)]
            interval = percentile_interval(difference_b)
            difference_ci[(i, j)], verdicts[(i, j)] = interval, verdict(*interval)
            defined = update_gain[(i, j)] is not None and bool(np.all(gain_b > 0))
            update_gain_ci[(i, j)] = percentile_interval(difference_b / gain_b) if defined else None
            compatible_b.append(difference_b > 0)
            flips[(i, j)] = np.flatnonzero(
                results[(j, j)].correct_top1 & ~results[(i, j)].correct_top1
            )
    lower_cells = [(i, j) for i in range(t) for j in range(i + 1) if (i, j) in c]
    lower = [c[key] for key in lower_cells]
    if len(lower) < t * (t + 1) // 2:
        warnings.append(f"AM averages the {len(lower)} cells of the lower triangle that exist")
    am_b = np.mean([resampled[key] for key in lower_cells], axis=0)
    return Compatibility(
        names=names,
        criterion=criterion,
        top1=tables["top1"],
        top5=tables["top5"],
        mean_ap=tables["mean_ap"],
        ecc=ecc,
        update_gain=update_gain,
        ac=float(np.mean(list(ecc.values()))) if ecc else None,
        am=float(np.mean(lower)),
        flips=flips,
        n_queries=int(query_idx.size),
        n_gallery=int(gallery_idx.size),
        warnings=warnings,
        difference=difference,
        ci_low=[[ci[(i, j)][0] if (i, j) in ci else None for j in range(t)] for i in range(t)],
        ci_high=[[ci[(i, j)][1] if (i, j) in ci else None for j in range(t)] for i in range(t)],
        difference_ci=difference_ci,
        update_gain_ci=update_gain_ci,
        ac_ci=percentile_interval(np.mean(compatible_b, axis=0)) if ecc else None,
        am_ci=percentile_interval(am_b),
        verdict=verdicts,
        chance=chance_levels(labels[query_idx], labels[gallery_idx]),
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
