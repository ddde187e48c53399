"""Quality of the prefixes of a nested (Matryoshka) embedding (Kusupati et al. 2022,
"Matryoshka Representation Learning", NeurIPS).

A Matryoshka-trained embedding X (n × d) is meant to be usable truncated: its first m
coordinates X[:, :m] should already serve. For each prefix dimension m (by default
:func:`prefix_dims`: 8, 16, 32, …, the powers of two below d, then d) this module measures on
the prefix alone, with class or identity ``labels``:

- **Retrieval** (:mod:`analysis.measures.compatibility`): top-1, top-5 and mAP, a query's
  relevant items being those with its label, cosine or Euclidean distance, ties by index.
  Two protocols: *leave-one-out* (default), every sample a query against all the others, or a
  *query/gallery split* (indices given, e.g. by :func:`~analysis.measures.compatibility.
  query_gallery_split`), scored by :func:`~analysis.measures.compatibility.retrieval`. Queries
  with no relevant item (labels seen once) are left out, as there.
- **Linear probe**: the exact leave-one-out accuracy of a ridge classifier over all samples,
  :func:`analysis.explorer.geometry.linear_probe_accuracy` (best of its relative α grid).
- **Linear CKA** (Kornblith et al. 2019) of the prefix to the full embedding,
  :func:`analysis.measures.gram.cka_prepared`: 1 at m = d; for orthogonal centred columns of
  squared norms s_j it is √(Σ_{j≤m} s_j² / Σ_j s_j²).

Chance levels sit beside the accuracies: for retrieval, the expectation under a uniformly
random ranking (:func:`~analysis.measures.compatibility.chance_levels`; for leave-one-out a
query of a class of n_c samples has n_c − 1 relevant items among n − 1); for the probe, the
share of the most frequent class, what predicting one class for every sample scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from analysis.errors import InputError
from analysis.explorer.geometry import linear_probe_accuracy
from analysis.measures import gram
from analysis.measures.compatibility import (
    METRICS,
    Retrieval,
    _check_indices,
    chance_levels,
    retrieval,
)
from analysis.measures.engine import check_activations
from analysis.measures.knn import knn_indices
from analysis.measures.regression import DEFAULT_ALPHAS

__all__ = ["MAX_LOO_SAMPLES", "NestedQuality", "nested_quality", "prefix_dims"]

FIRST_PREFIX = 8
MAX_LOO_SAMPLES = 5000
"""Leave-one-out retrieval ranks all n − 1 other samples of every sample (n² indices in
memory); above this many samples, use a query/gallery split."""
MIN_SAMPLES = 4
BLOCK_ENTRIES = 1 << 21  # ranks of leave-one-out retrieval scored at once
PROTOCOLS = ("leave-one-out", "query/gallery")


def prefix_dims(d: int) -> list[int]:
    """The prefix dimensions of a width-``d`` embedding: 8, 16, 32, … below d, then d itself
    (just [d] for d ≤ 8)."""
    if d < 1:
        raise InputError(f"an embedding needs at least one dimension, got {d}")
    dims = []
    m = FIRST_PREFIX
    while m < d:
        dims.append(m)
        m *= 2
    return [*dims, d]


@dataclass
class NestedQuality:
    """Per prefix dimension ``dims[i]``, the statistics of X[:, :dims[i]] (lists aligned with
    ``dims``) and, in ``chance``, the chance level of each accuracy (``top1``, ``top5``,
    ``mean_ap``, ``probe``)."""

    dims: list[int]
    top1: list[float]
    top5: list[float]
    mean_ap: list[float]
    probe_accuracy: list[float]  # leave-one-out ridge classifier over all n samples
    cka: list[float]  # linear CKA of the prefix to the full embedding
    chance: dict[str, float]
    protocol: str  # one of PROTOCOLS
    metric: str
    n: int
    d: int
    n_queries: int  # queries scored (with at least one relevant item)
    n_gallery: int  # gallery size (n − 1 for leave-one-out)
    warnings: list[str]

    def to_json(self) -> dict:
        return asdict(self)


def nested_quality(
    x: np.ndarray,
    labels: np.ndarray,
    *,
    dims: Sequence[int] | None = None,
    metric: str = "cosine",
    query_idx: np.ndarray | None = None,
    gallery_idx: np.ndarray | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> NestedQuality:
    """Retrieval, linear-probe accuracy and CKA to the full embedding of each prefix of ``x``.

    Parameters
    ----------
    x : (n, d) embedding, rows = samples
    labels : (n,) class or identity labels, at least two classes
    dims : prefix dimensions in (0, d], increasing; default :func:`prefix_dims` (d)
    metric : "cosine" or "euclidean", the retrieval distance
    query_idx, gallery_idx : disjoint sample indices for a query/gallery split; both omitted,
        retrieval is leave-one-out over all samples (at most :data:`MAX_LOO_SAMPLES`)
    alphas : the probe's relative ridge penalties (:func:`linear_probe_accuracy`)

    Returns
    -------
    :class:`NestedQuality`
    """
    x = check_activations(x, "embedding", MIN_SAMPLES)
    n, d = x.shape
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise InputError(f"labels: one per sample expected, got shape {labels.shape}")
    classes, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise InputError("labels: nested-embedding quality needs at least two classes")
    dims = prefix_dims(d) if dims is None else [int(m) for m in dims]
    if not dims or dims[0] < 1 or dims[-1] > d or (np.diff(dims) <= 0).any():
        raise InputError(f"prefix dimensions must increase within 1..{d}, got {dims}")
    if metric not in METRICS:
        raise InputError(f"unknown retrieval metric {metric!r}: use 'cosine' or 'euclidean'")
    if (query_idx is None) != (gallery_idx is None):
        raise InputError("give both query and gallery indices, or neither (leave-one-out)")
    warnings = []
    split = None
    if query_idx is None or gallery_idx is None:
        if n > MAX_LOO_SAMPLES:
            raise InputError(
                f"leave-one-out retrieval ranks every pair of samples; {n} samples are more "
                f"than {MAX_LOO_SAMPLES}: use a query/gallery split"
            )
        if counts.max() < 2:
            raise InputError("every label occurs once: no sample has another one to retrieve")
        protocol = PROTOCOLS[0]
        chance = _loo_chance(classes, counts)
        n_queries, n_gallery = int(counts[counts > 1].sum()), n - 1
        singletons = int((counts == 1).sum())
        if singletons:
            warnings.append(
                f"{singletons} label(s) occur once: their samples are left out as queries"
            )
    else:
        protocol = PROTOCOLS[1]
        split = (
            _check_indices(query_idx, n, "query indices"),
            _check_indices(gallery_idx, n, "gallery indices"),
        )
        if np.intersect1d(*split).size:
            raise InputError("a sample is both query and gallery: it would retrieve itself")
        chance = chance_levels(labels[split[0]], labels[split[1]])
        n_queries, n_gallery = 0, int(split[1].size)
    chance["probe"] = float(counts.max() / n)

    full = gram.prepare(x, "embedding")
    out: dict[str, list[float]] = {
        key: [] for key in ("top1", "top5", "mean_ap", "probe_accuracy", "cka")
    }
    for m in dims:
        name = f"the prefix of {m} dimension{'s' if m > 1 else ''}"
        prefix = x[:, :m]
        if split is None:
            scores = _loo_retrieval(prefix, codes, metric, name)
        else:
            query, gallery = split
            scores = retrieval(
                prefix[query], prefix[gallery], labels[query], labels[gallery], metric=metric
            )
            n_queries = int(scores.has_relevant.sum())
        out["top1"].append(scores.top1)
        out["top5"].append(scores.top5)
        out["mean_ap"].append(scores.mean_ap)
        out["probe_accuracy"].append(linear_probe_accuracy(prefix, labels, alphas))
        layer = full if m == d else gram.prepare(prefix, name)
        out["cka"].append(gram.cka_prepared(layer, full))
    return NestedQuality(
        dims=dims,
        chance=chance,
        protocol=protocol,
        metric=metric,
        n=n,
        d=d,
        n_queries=n_queries,
        n_gallery=n_gallery,
        warnings=warnings,
        **out,
    )


def _loo_retrieval(x: np.ndarray, codes: np.ndarray, metric: str, name: str) -> Retrieval:
    """Leave-one-out retrieval: each sample a query against the n − 1 others, ranked by
    :func:`knn_indices` (exact, ties by index, as in :func:`retrieval`); top-k is a relevant
    item among the k nearest, AP the mean over relevant items of the precision at their rank."""
    n = x.shape[0]
    order = knn_indices(x, n - 1, metric, name=name)
    first_hit = np.full(n, n - 1)
    average_precision = np.zeros(n)
    has_relevant = np.zeros(n, dtype=bool)
    rows = max(1, BLOCK_ENTRIES // n)
    for start in range(0, n, rows):
        block = slice(start, start + rows)
        relevant = codes[order[block]] == codes[block, None]  # by rank
        n_relevant = relevant.sum(axis=1)
        has_relevant[block] = found = n_relevant > 0
        first_hit[block][found] = relevant.argmax(axis=1)[found]
        precision = np.cumsum(relevant, axis=1) / np.arange(1, n)
        average_precision[block] = (precision * relevant).sum(axis=1) / np.maximum(n_relevant, 1)
    scored = first_hit[has_relevant]
    return Retrieval(
        top1=float(np.mean(scored < 1)),
        top5=float(np.mean(scored < 5)),
        mean_ap=float(np.mean(average_precision[has_relevant])),
        correct_top1=first_hit < 1,
        n_queries=n,
        n_gallery=n - 1,
        has_relevant=has_relevant,
        first_hit=first_hit,
        average_precision=average_precision,
    )


def _loo_chance(classes: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """Chance levels of leave-one-out retrieval: per class of n_c ≥ 2 samples, those of one
    query against the other n − 1 samples, averaged with weight n_c (its number of queries)."""
    labels = np.repeat(classes, counts)
    starts = np.cumsum(counts) - counts
    per_class, weights = [], []
    for start, count in zip(starts, counts, strict=True):
        if count < 2:
            continue
        gallery = np.delete(labels, start)
        per_class.append(chance_levels(labels[start : start + 1], gallery))
        weights.append(count)
    return {
        key: float(np.average([c[key] for c in per_class], weights=weights)) for key in per_class[0]
    }
