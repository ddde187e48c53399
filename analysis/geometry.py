"""The geometry of one representation space: how many dimensions it really uses, and how well
its classes separate. Each statistic is computed on all samples, rows = samples.

- Effective rank (Roy & Vetterli 2007): exp of the Shannon entropy of the singular values of
  the centred data, normalised to sum to 1.
- Participation ratio: (Σλ)² / Σλ² of the covariance eigenvalues λ.
- Intrinsic dimension, TwoNN (Facco et al. 2017): from μᵢ = r₂/r₁, the ratio of each sample's
  second to first nearest-neighbour distance, the maximum-likelihood estimate
  d = n / Σ log μᵢ (samples with a duplicate, r₁ = 0, are left out).
- kNN accuracy: leave-one-out majority vote of each sample's k nearest neighbours (ties to
  the smallest label).
- Neural collapse NC1 (Papyan, Han & Donoho 2020): tr(Σ_W Σ_B⁺) / C, within-class covariance
  against the pseudo-inverse of the between-class covariance; 0 when every class collapses to
  its mean.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from analysis.errors import InputError
from analysis.knn import knn_indices
from analysis.measures import check_activations

__all__ = ["Geometry", "geometry"]

MIN_SAMPLES = 4


@dataclass
class Geometry:
    n: int
    d: int
    effective_rank: float
    participation_ratio: float
    intrinsic_dimension: float | None  # TwoNN; None when too few distinct samples
    spectrum: list[float]  # covariance eigenvalues, largest first (at most 100)
    knn_accuracy: float | None  # None without labels
    knn_k: int
    nc1: float | None  # None without at least two classes

    def to_json(self) -> dict:
        return asdict(self)


def geometry(x: np.ndarray, labels: np.ndarray | None = None, k: int = 10) -> Geometry:
    """The statistics above for ``x`` (n × d) and, where given, integer class ``labels``."""
    x = check_activations(x, "activations", MIN_SAMPLES)
    n, d = x.shape
    centred = np.asarray(x, dtype=np.float64)
    centred = centred - centred.mean(axis=0)
    # Singular values from the smaller of the two Gram matrices (their eigenvalues are σ²).
    gram = centred.T @ centred if d <= n else centred @ centred.T
    singular = np.sqrt(np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None))
    if not singular.any():
        raise InputError("activations: every column is constant across samples")
    p = singular / singular.sum()
    p = p[p > 0]
    eigenvalues = singular**2 / (n - 1)
    k = min(k, n - 1)
    neighbours = knn_indices(x, k, "euclidean")
    accuracy, nc1 = None, None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise InputError(f"labels: one per sample expected, got shape {labels.shape}")
        accuracy = _knn_accuracy(neighbours, labels)
        nc1 = _nc1(centred, labels)
    return Geometry(
        n=n,
        d=d,
        effective_rank=float(np.exp(-(p * np.log(p)).sum())),
        participation_ratio=float(eigenvalues.sum() ** 2 / (eigenvalues**2).sum()),
        intrinsic_dimension=_two_nn(x, neighbours),
        spectrum=[float(v) for v in eigenvalues[:100]],
        knn_accuracy=accuracy,
        knn_k=k,
        nc1=nc1,
    )


def _two_nn(x: np.ndarray, neighbours: np.ndarray) -> float | None:
    rows = np.asarray(x, dtype=np.float64)
    r1 = np.linalg.norm(rows[neighbours[:, 0]] - rows, axis=1)
    r2 = np.linalg.norm(rows[neighbours[:, 1]] - rows, axis=1) if neighbours.shape[1] > 1 else r1
    usable = (r1 > 0) & (r2 > r1)
    if usable.sum() < 3:
        return None
    return float(usable.sum() / np.log(r2[usable] / r1[usable]).sum())


def _knn_accuracy(neighbours: np.ndarray, labels: np.ndarray) -> float:
    _, codes = np.unique(labels, return_inverse=True)
    votes = codes[neighbours]  # (n, k)
    counts = np.apply_along_axis(np.bincount, 1, votes, minlength=codes.max() + 1)
    return float(np.mean(counts.argmax(axis=1) == codes))


def _nc1(centred: np.ndarray, labels: np.ndarray) -> float | None:
    classes = np.unique(labels)
    if len(classes) < 2:
        return None
    means = np.stack([centred[labels == c].mean(axis=0) for c in classes])
    within = centred - means[np.searchsorted(classes, labels)]
    sigma_w = within.T @ within / len(centred)
    sigma_b = means.T @ means / len(classes)  # the global mean is 0: the data are centred
    return float(np.trace(sigma_w @ np.linalg.pinv(sigma_b)) / len(classes))
