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

  The neighbours of TwoNN and of the kNN accuracy are exact up to
  :data:`analysis.explorer.projection.EXACT_LIMIT` samples, NN-descent above it (``knn_search``
  says which, with the measured recall@k).
- Linear-probe accuracy: exact leave-one-out accuracy of a ridge classifier (scikit-learn's
  ``RidgeClassifier``): ridge regression with an unpenalised intercept onto the one-hot class
  indicators Y (n × C), predicting the class of the largest score. With H = 11ᵀ/n +
  X_c(X_cᵀX_c + αI)⁻¹X_cᵀ the hat matrix (X_c the column-centred X) and R = Y − HY the
  residuals, sample i's scores from the fit without it are Ŷ₋ᵢ = Yᵢ − Rᵢ / (1 − Hᵢᵢ), exactly
  (Rifkin & Lippert 2007, "Notes on Regularized Least Squares"). H comes from the
  eigendecomposition of the smaller Gram matrix (X_cᵀX_c, d × d, or X_cX_cᵀ when n < d), and the
  rows are processed in blocks, so memory is O(min(n, d)² + block · d), never n × n for n ≥ d.
  α runs over the relative grid of analysis/measures/regression.py (units of ‖X_c‖²_F,
  from 1e-9 to 10);
  the α with the best leave-one-out accuracy is kept (the first of equals), and that accuracy
  is reported. Choosing among 11 values on the same leave-one-out predictions favours the probe
  slightly; with random labels it stays near chance, 1/C for balanced classes.
- Neural collapse NC1 (Papyan, Han & Donoho 2020): tr(Σ_W Σ_B⁺) / C, within-class covariance
  against the pseudo-inverse of the between-class covariance; 0 when every class collapses to
  its mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from analysis.errors import InputError
from analysis.explorer.projection import NeighbourSearch, nearest_neighbours
from analysis.measures.engine import check_activations
from analysis.measures.regression import DEFAULT_ALPHAS

__all__ = ["STATISTICS", "Geometry", "geometry", "linear_probe_accuracy"]

MIN_SAMPLES = 4
BLOCK_ENTRIES = 1 << 22  # float64 entries of one block of rows: 32 MiB


@dataclass
class Geometry:
    n: int
    d: int
    effective_rank: float
    participation_ratio: float
    intrinsic_dimension: float | None  # TwoNN; None when too few distinct samples
    spectrum: list[float]  # covariance eigenvalues, largest first (at most 100)
    knn_accuracy: float | None  # None without labels
    linear_probe_accuracy: float | None  # None without labels or with fewer than two classes
    knn_k: int
    nc1: float | None  # None without at least two classes
    knn_search: str = "exact"  # how the neighbours were found (NeighbourSearch.describe())

    def to_json(self) -> dict:
        return asdict(self)


STATISTICS: dict[str, tuple[str, str]] = {
    "effective_rank": (
        "effective rank",
        "exp of the entropy of the normalised singular values (Roy & Vetterli 2007): how many "
        "directions the layer uses, at most min(n, d)",
    ),
    "participation_ratio": (
        "participation ratio",
        "(Σλ)² / Σλ² of the covariance eigenvalues: how many directions hold the variance",
    ),
    "intrinsic_dimension": (
        "intrinsic dimension",
        "TwoNN maximum-likelihood estimate from ratios of second to first neighbour distances "
        "(Facco et al. 2017)",
    ),
    "knn_accuracy": (
        "kNN accuracy",
        "leave-one-out majority vote of each sample's k nearest neighbours for its label",
    ),
    "linear_probe_accuracy": (
        "linear-probe accuracy",
        "exact leave-one-out accuracy of a ridge classifier for the label",
    ),
    "nc1": (
        "NC1",
        "within- against between-class covariance, tr(Σ_W Σ_B⁺) / C (Papyan et al. 2020): "
        "0 when every class collapses to its mean",
    ),
}
"""The single-number statistics of :class:`Geometry` with a name and a one-line definition for
the pages: the dynamics views draw each of them over training steps."""

ACCURACIES = ("knn_accuracy", "linear_probe_accuracy")
"""The statistics that are accuracies on the label: their chance level is drawn beside them."""


def geometry(
    x: np.ndarray,
    labels: np.ndarray | None = None,
    k: int = 10,
    search: NeighbourSearch | None = None,
) -> Geometry:
    """The statistics above for ``x`` (n × d) and, where given, integer class ``labels``;
    ``search``: the rows' Euclidean neighbours already found (at least k of each), else they are
    searched here."""
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
    if search is None or search.metric != "euclidean" or search.k < k:
        search = nearest_neighbours(x, k, "euclidean")
    neighbours = search.indices[:, :k]
    accuracy, probe, nc1 = None, None, None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise InputError(f"labels: one per sample expected, got shape {labels.shape}")
        accuracy = _knn_accuracy(neighbours, labels)
        if len(np.unique(labels)) >= 2:
            probe = linear_probe_accuracy(x, labels)
        nc1 = _nc1(centred, labels)
    return Geometry(
        n=n,
        d=d,
        effective_rank=float(np.exp(-(p * np.log(p)).sum())),
        participation_ratio=float(eigenvalues.sum() ** 2 / (eigenvalues**2).sum()),
        intrinsic_dimension=_two_nn(x, neighbours),
        spectrum=[float(v) for v in eigenvalues[:100]],
        knn_accuracy=accuracy,
        linear_probe_accuracy=probe,
        knn_k=k,
        nc1=nc1,
        knn_search=search.describe().replace(f"{search.k}-NN", f"{k}-NN"),
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


def linear_probe_accuracy(
    x: np.ndarray,
    labels: np.ndarray,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    *,
    block_size: int | None = None,
) -> float:
    """Exact leave-one-out accuracy of a ridge classifier on the rows of ``x`` (n × d) for the
    class ``labels`` (n,), the best over the penalties ``alphas`` (relative: in units of
    ‖X_c‖²_F); see the module docstring. ``block_size``: rows processed at once (default:
    about 4M float64 entries)."""
    x = check_activations(x, "activations", MIN_SAMPLES)
    n, d = x.shape
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise InputError(f"labels: one per sample expected, got shape {labels.shape}")
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise InputError("labels: a linear probe needs at least two classes")
    alphas = tuple(float(a) for a in alphas)
    if not alphas or not all(np.isfinite(a) and a > 0 for a in alphas):
        raise InputError("the ridge penalties must be positive numbers")
    if block_size is not None and block_size < 1:
        raise InputError(f"block_size must be a positive integer, got {block_size!r}")
    hits = _loo_hits(x, codes.reshape(-1), len(classes), alphas, block_size)
    return float(hits[int(np.argmax(hits))] / n)  # argmax: the first of equal counts


def _one_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(codes), n_classes))
    out[np.arange(len(codes)), codes] = 1.0
    return out


def _loo_hits(
    x: np.ndarray,
    codes: np.ndarray,
    n_classes: int,
    alphas: tuple[float, ...],
    block_size: int | None,
) -> np.ndarray:
    """Per relative α, how many samples the leave-one-out ridge classifier gets right.

    Both Gram routes give Z (n × r) with ZᵀZ = Λ = diag(λ) and ZZᵀ = X_cX_cᵀ, so that
    H = 11ᵀ/n + Z(Λ + αI)⁻¹Zᵀ, HY = ȳ + Z(Λ + αI)⁻¹ZᵀY and Hᵢᵢ = 1/n + Σⱼ Zᵢⱼ² / (λⱼ + α).
    For d ≤ n, Z = X_cV from X_cᵀX_c = VΛVᵀ, computed block by block; for n < d, Z = UΛ^½
    from X_cX_cᵀ = UΛUᵀ.
    """
    n, d = x.shape
    mean = x.mean(axis=0, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    rows = block_size or max(1, BLOCK_ENTRIES // max(d, n_classes))
    if d <= n:
        gram = np.zeros((d, d))
        class_sums = np.zeros((n_classes, d))  # X_cᵀY, transposed
        for start in range(0, n, rows):
            block = x[start : start + rows].astype(np.float64) - mean
            gram += block.T @ block
            class_sums += _one_hot(codes[start : start + rows], n_classes).T @ block
        total = float(np.trace(gram))
        eigenvalues, vectors = np.linalg.eigh(gram)
        keep = eigenvalues > eigenvalues[-1] * d * eps
        eigenvalues, vectors = eigenvalues[keep], vectors[:, keep]
        zty = vectors.T @ class_sums.T  # ZᵀY = VᵀX_cᵀY

        def basis(start: int) -> np.ndarray:
            return (x[start : start + rows].astype(np.float64) - mean) @ vectors
    else:
        gram = np.zeros((n, n))
        columns = max(1, BLOCK_ENTRIES // n)
        for start in range(0, d, columns):
            block = x[:, start : start + columns].astype(np.float64) - mean[start : start + columns]
            gram += block @ block.T
        total = float(np.trace(gram))
        eigenvalues, vectors = np.linalg.eigh(gram)
        keep = eigenvalues > eigenvalues[-1] * n * eps
        eigenvalues = eigenvalues[keep]
        z = vectors[:, keep] * np.sqrt(eigenvalues)
        zty = z.T @ _one_hot(codes, n_classes)

        def basis(start: int) -> np.ndarray:
            return z[start : start + rows]

    if total <= 0.0:
        raise InputError("activations: every column is constant across samples")
    prior = np.bincount(codes, minlength=n_classes) / n  # ȳ: the intercept's share of HY
    inverses = [1.0 / (eigenvalues + a * total) for a in alphas]
    weights = [inverse[:, None] * zty for inverse in inverses]
    hits = np.zeros(len(alphas), dtype=np.int64)
    for start in range(0, n, rows):
        zb = basis(start)
        squares = zb**2
        truth = codes[start : start + rows]
        yb = _one_hot(truth, n_classes)
        for i, (inverse, weight) in enumerate(zip(inverses, weights, strict=True)):
            fitted = prior + zb @ weight
            leverage = 1.0 / n + squares @ inverse
            with np.errstate(divide="ignore", invalid="ignore"):
                loo = yb - (yb - fitted) / (1.0 - leverage)[:, None]
            right = (loo.argmax(axis=1) == truth) & np.isfinite(loo).all(axis=1)
            hits[i] += int(right.sum())
    return hits
