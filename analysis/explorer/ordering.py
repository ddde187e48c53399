"""Ordering the rows of a model × model matrix so that similar models sit together."""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
from scipy.spatial.distance import squareform


def hierarchical_order(
    values: np.ndarray, larger_is_more_similar: bool, top: float = 1.0
) -> list[int]:
    """Leaf order of average-linkage clustering (with optimal leaf ordering) of a square
    matrix of scores; similarities become distances as ``top − value``. The matrix is
    symmetrised first (asymmetric measures are averaged over both directions)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 3:
        return list(range(n))
    symmetric = (values + values.T) / 2
    distances = top - symmetric if larger_is_more_similar else symmetric
    distances = np.clip(distances - distances.min(), 0.0, None)
    np.fill_diagonal(distances, 0.0)
    condensed = squareform(distances, checks=False)
    tree = optimal_leaf_ordering(linkage(condensed, method="average"), condensed)
    return [int(i) for i in leaves_list(tree)]
