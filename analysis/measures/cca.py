"""The CCA family: mean CCA, SVCCA (Raghu et al. 2017) and PWCCA (Morcos et al. 2018).

The canonical correlations ρ₁ ≥ ρ₂ ≥ … between X (n × p) and Y (n × q) are the singular values
of Q_Xᵀ Q_Y, where Q_X, Q_Y are orthonormal bases of the column spaces of the centred data
(Björck & Golub 1973). They only depend on those spans, so mean CCA is invariant to any
invertible linear map of either side.

Two hazards are handled explicitly:

* Rank deficiency. Constant or linearly dependent columns would add directions made of
  round-off, which can pair up across X and Y into a spurious ρ = 1. Each side keeps only its
  numerical rank: constant columns are dropped, the others scaled to unit norm (so the rank
  does not depend on the units of each neuron) and factorised by QR; directions whose singular
  value (from the SVD of the small R factor) is below √ε of the largest are dropped, and the
  basis keeps the others, ε being the machine epsilon of the dtype the activations came in
  (1.5e-8 for float64, 3.5e-4 for float32, 0.03 for float16: "independent in less than half
  the significant digits the input has"). A float32 layer that is a linear map of a smaller
  one has float32 rounding noise (≈ 1e-7) in its extra directions: the float32 tolerance
  drops them, a float64 one would keep them as signal.
* Too few samples. Within the n − 1 dimensions that centred samples span, subspaces of ranks
  r_X and r_Y must share r_X + r_Y − (n − 1) directions, each a canonical correlation of
  exactly 1 whatever the data. Each side may therefore use at most half of them: a layer is
  refused when 2·rank > n − 1. Well before that bound unrelated data already scores high (mean
  CCA ≈ 0.63 at n = 2d + 1, 0.27 at n = 10d): the permutation baseline beside every value
  shows it, and SVCCA, which keeps only the top directions, needs fewer samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.linalg

from analysis.errors import InputError
from analysis.measures.engine import Measure, check_activations
from analysis.parameters import Parameter

__all__ = ["MeanCCA", "SVCCA", "PWCCA", "canonical_correlations"]

MIN_SAMPLES = 4
VARIANCE_KEPT = 0.99
"""SVCCA keeps the top directions that explain this share of variance (Raghu et al. 2017)."""

# Cumulative variance shares within this of the threshold count as reaching it, so that
# round-off (e.g. an orthogonal transform of the input) cannot change how many directions
# are kept when the spectrum meets the threshold exactly.
_THRESHOLD_SLACK = 1e-9


@dataclass
class CCALayer:
    """A layer ready for CCA: an orthonormal basis of its centred column space."""

    data: np.ndarray  # the activations as given (their dtype sets the rank tolerance)
    centred: np.ndarray  # float64, n × d
    basis: np.ndarray  # n × r, orthonormal columns spanning the kept directions
    rank: int  # numerical rank of the centred data
    d: int

    @property
    def n(self) -> int:
        return self.centred.shape[0]


def _rank_tolerance(x: np.ndarray, tolerance: float | None = None) -> float:
    """Relative size (to the largest singular value) under which a direction counts as
    round-off: ``tolerance``, by default √ε of the input's dtype."""
    if tolerance is not None:
        return tolerance
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return float(np.sqrt(np.finfo(dtype).eps))


RANK_TOLERANCE = Parameter(
    "rank_tolerance",
    "float",
    None,
    "singular values below this fraction of the largest are round-off (the rank rule of the "
    "whole CCA family); default √ε of the activations' dtype (3.5e-4 for float32)",
    minimum=0,
    exclusive_minimum=True,
    maximum=0.5,
    nullable=True,
)


def _centre(x: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The validated input and its float64 column-centred copy."""
    x = check_activations(x, name, MIN_SAMPLES)
    if not np.ptp(x, axis=0).any():
        raise InputError(f"{name}: every column is constant across samples; CCA is undefined")
    return x, x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)


def _check_enough_samples(name: str, n: int, kept: int, remedy: str) -> None:
    if 2 * kept > n - 1:
        raise InputError(
            f"{name}: CCA needs at least twice as many samples as directions (n − 1 ≥ 2 × "
            f"{kept} = {2 * kept}, got n = {n}); otherwise some canonical correlations are 1 "
            f"whatever the data. {remedy}"
        )


def prepare_qr(
    x: np.ndarray, name: str = "activations", rank_tolerance: float | None = None
) -> CCALayer:
    """Centre in float64 and keep an orthonormal basis of the numerically independent columns:
    a QR of the unit-norm non-constant columns, then the SVD of its small R, whose singular
    values (those of the columns) reveal the rank. Householder QR runs at matrix-product speed,
    several times faster on tall inputs than QR with column pivoting."""
    x, centred = _centre(x, name)
    varying = np.ptp(x, axis=0) > 0
    columns = centred[:, varying]
    columns = columns / np.linalg.norm(columns, axis=0)
    q, r = scipy.linalg.qr(columns, mode="economic", overwrite_a=True, check_finite=False)
    u, singular_values, _ = np.linalg.svd(r)
    tolerance = _rank_tolerance(x, rank_tolerance)
    rank = int(np.count_nonzero(singular_values > tolerance * singular_values[0]))
    basis = q if rank == q.shape[1] else q @ u[:, :rank]
    _check_enough_samples(
        name, len(x), rank, "Use SVCCA, which keeps only the top directions, or more samples."
    )
    return CCALayer(x, centred, basis, rank, x.shape[1])


def canonical_correlations(a: CCALayer, b: CCALayer) -> np.ndarray:
    """ρ₁ ≥ … ≥ ρ_r, r = min of the two bases' sizes, clipped to [0, 1] against round-off."""
    return np.clip(np.linalg.svd(a.basis.T @ b.basis, compute_uv=False), 0.0, 1.0)


class MeanCCA(Measure):
    """Mean canonical correlation over the min(r_X, r_Y) canonical directions."""

    id = "cca/mean"
    name = "Mean CCA"
    reference = "Hotelling 1936; Raghu et al. 2017"
    invariant_to: tuple[str, ...] = (
        "invertible linear",
        "orthogonal",
        "isotropic scaling",
        "translation",
    )
    min_samples = MIN_SAMPLES
    parameters: ClassVar[tuple[Parameter, ...]] = (RANK_TOLERANCE,)

    def __init__(self, rank_tolerance: float | None = None) -> None:
        self.rank_tolerance = rank_tolerance

    def prepare(self, x: np.ndarray, name: str = "activations") -> CCALayer:
        return prepare_qr(x, name, self.rank_tolerance)

    def score(self, a: CCALayer, b: CCALayer) -> float:
        return float(np.mean(canonical_correlations(a, b)))

    def permute(self, prepared: CCALayer, perm: np.ndarray) -> CCALayer:
        """Rows permuted: the permuted basis spans the permuted (still centred) data."""
        return CCALayer(
            prepared.data[perm],
            prepared.centred[perm],
            prepared.basis[perm],
            prepared.rank,
            prepared.d,
        )

    def estimator(self, a: CCALayer, b: CCALayer) -> str:
        text = f"QR, rank {a.rank} of {a.d} × {b.rank} of {b.d}"
        if a.rank < a.d or b.rank < b.d:
            text += " (constant or linearly dependent columns dropped)"
        return text


class SVCCA(MeanCCA):
    """Mean CCA between the top singular directions of each side (Raghu et al. 2017, "SVCCA:
    Singular Vector Canonical Correlation Analysis for Deep Learning Dynamics and
    Interpretability"): each centred layer keeps the fewest left singular vectors whose
    variance (σᵢ²) adds up to ``variance_kept`` of the total, then CCA on those.
    """

    id = "cca/svcca"
    name = "SVCCA"
    reference = "Raghu et al. 2017"
    # The SVD step weighs directions by variance, so general linear maps change what is kept.
    invariant_to = ("orthogonal", "isotropic scaling", "translation")

    parameters = (
        Parameter(
            "variance_kept",
            "float",
            VARIANCE_KEPT,
            "share of each layer's variance its kept singular directions explain",
            minimum=0,
            exclusive_minimum=True,
            maximum=1,
        ),
        RANK_TOLERANCE,
    )

    def __init__(
        self, variance_kept: float = VARIANCE_KEPT, rank_tolerance: float | None = None
    ) -> None:
        if not 0.0 < variance_kept <= 1.0:
            raise InputError(f"variance_kept must be in (0, 1], got {variance_kept}")
        super().__init__(rank_tolerance)
        self.variance_kept = variance_kept

    def prepare(self, x: np.ndarray, name: str = "activations") -> CCALayer:
        x, centred = _centre(x, name)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        rank = int(np.count_nonzero(s > _rank_tolerance(x, self.rank_tolerance) * s[0]))
        shares = np.cumsum(s[:rank] ** 2) / np.sum(s[:rank] ** 2)
        kept = int(np.searchsorted(shares, self.variance_kept - _THRESHOLD_SLACK) + 1)
        kept = min(kept, rank)
        _check_enough_samples(
            name,
            len(x),
            kept,
            f"SVCCA keeps {kept} directions to explain {self.variance_kept:.0%} of the "
            "variance: keep a smaller share of variance, or use more samples.",
        )
        return CCALayer(x, centred, u[:, :kept], rank, x.shape[1])

    def estimator(self, a: CCALayer, b: CCALayer) -> str:
        return (
            f"SVD, kept {a.basis.shape[1]} of {a.rank} × {b.basis.shape[1]} of {b.rank} "
            f"directions ({self.variance_kept:.0%} of variance)"
        )


class PWCCA(MeanCCA):
    """Projection-weighted CCA (Morcos, Raghu & Bengio 2018, "Insights on representational
    similarity in neural networks with canonical correlation", NeurIPS)::

        PWCCA(X, Y) = Σᵢ αᵢ ρᵢ / Σᵢ αᵢ,   αᵢ = Σⱼ |⟨hᵢ, xⱼ⟩|

    where hᵢ is the i-th canonical variate of X (unit norm, in sample space) and xⱼ the j-th
    centred neuron of X: directions that account for more of X weigh more. Weights come from
    X only, so PWCCA(X, Y) ≠ PWCCA(Y, X) in general. The L1 sum over neurons depends on the
    neuron basis: permuting, sign-flipping or scaling all units leaves it unchanged, rotating
    them does not.
    """

    id = "cca/pwcca"
    name = "PWCCA"
    reference = "Morcos et al. 2018"
    symmetric = False
    invariant_to = ("permutation of units", "isotropic scaling", "translation")

    def score(self, a: CCALayer, b: CCALayer) -> float:
        left, rho, _ = np.linalg.svd(a.basis.T @ b.basis, full_matrices=False)
        variates = a.basis @ left  # n × r canonical variates of X, orthonormal
        weights = np.abs(variates.T @ a.centred).sum(axis=1)
        return float(np.clip(rho, 0.0, 1.0) @ weights / weights.sum())
