"""Linear CKA (Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited").

For column-centred X (n × p) and Y (n × q)::

    CKA(X, Y) = ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)

which equals HSIC(K, L) / √(HSIC(K, K) HSIC(L, L)) with linear Gram matrices K = XXᵀ, L = YYᵀ
and the plug-in ("biased") HSIC estimator. Everything is accumulated in float64 after explicit
centring, so uncentred float32 input cannot push the value above 1.

A layer × layer matrix prepares each layer once (column means, self-similarity norm and, when
the Gram form is cheaper, a normalised centred Gram matrix), so L₁ + L₂ preparations serve all
L₁ × L₂ pairs. The feature form streams blocks of rows: a pair holds one p × q cross-product
and one block of each layer in memory, whatever n is, so the activations can be memory maps of
files larger than memory. The products run with torch, on CUDA when there is a GPU.

Linear CKA is the RV coefficient (Escoufier 1973) of the two centred configurations, whose
exact mean and variance over all n! row permutations are known in closed form (Kazi-Aoual et
al. 1995, "Refined approximations to permutation tests for multivariate inference"; Josse,
Pagès & Husson 2008): the permutation baseline beside every value — what unrelated
representations of this n and d score (about d/(n+d) for independent isotropic data: 0.94 at
n=32, d=512) — is therefore exact and costs nothing.

Two variants follow the same pattern: :class:`DebiasedCKA` (the unbiased HSIC estimator, which
removes that bias) and :class:`RBFCKA` (a Gaussian kernel instead of the linear one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analysis.errors import InputError
from analysis.measures.engine import BASELINE_WARNING, Layers, Measure, PairResult, compare_layers
from analysis.parameters import Parameter

# The torch core (analysis.measures.gram) is imported inside the methods that compare
# activations, not here: the web process lists and validates measures without torch.
if TYPE_CHECKING:
    from analysis.measures.gram import PreparedLayer

__all__ = [
    "BASELINE_WARNING",
    "PairResult",
    "LinearCKA",
    "DebiasedCKA",
    "RBFCKA",
    "cka_matrix",
]


class LinearCKA(Measure):
    id = "cka/linear"
    name = "Linear CKA"
    reference = "Kornblith et al. 2019"
    invariant_to = ("orthogonal", "isotropic scaling", "translation")
    exact_baseline = True
    compares_positions = True

    def prepare(self, x: np.ndarray, name: str = "activations") -> PreparedLayer:
        from analysis.measures.gram import prepare

        return prepare(x, name, self.device)

    def score(self, a: PreparedLayer, b: PreparedLayer) -> float:
        from analysis.measures.gram import cka_prepared

        return cka_prepared(a, b)

    def permute(self, prepared: PreparedLayer, perm: np.ndarray) -> PreparedLayer:
        from analysis.measures.gram import permuted

        return permuted(prepared, perm)

    def permutation_moments(self, a: PreparedLayer, b: PreparedLayer) -> tuple[float, float]:
        from analysis.measures.gram import permutation_moments

        return permutation_moments(a, b)

    def estimator(self, a: PreparedLayer, b: PreparedLayer) -> str:
        from analysis.measures.gram import form

        return form(a, b)


def cka_matrix(
    layers_a: Layers,
    layers_b: Layers,
    n_permutations: int = 10,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> dict[tuple[str, str], PairResult]:
    """Linear CKA with its exact permutation baseline for every pair (layer of A, layer of B)."""
    return compare_layers(LinearCKA(), layers_a, layers_b, n_permutations, 0, seed, progress)


@dataclass
class DebiasedLayer:
    """A layer ready for debiased CKA: the linear-CKA preparation (whose Gram diagonal the
    unbiased estimator zeroes) and the self-HSIC."""

    layer: PreparedLayer
    self_hsic: float  # n(n − 3) · HSIC₁(K, K)

    @property
    def data(self) -> np.ndarray:
        return self.layer.rows


def _unscaled_unbiased_hsic(a: PreparedLayer, b: PreparedLayer, cross: float) -> float:
    """n(n − 3) · HSIC₁(K, L), the unbiased estimator of Song et al. (2012), for
    K = XXᵀ, L = YYᵀ of centred X, Y and ``cross`` = tr(KL) = ‖YᵀX‖²_F. With K̃, L̃ the Grams
    with zeroed diagonals::

        HSIC₁ = [tr(K̃L̃) + 1ᵀK̃1 · 1ᵀL̃1 / ((n − 1)(n − 2)) − 2/(n − 2) · 1ᵀK̃L̃1] / (n(n − 3))

    Centred columns make K1 = 0, so 1ᵀK̃1 = −tr K and K̃1 = −diag K, which leaves
    ‖YᵀX‖²_F − n/(n − 2) · ⟨diag K, diag L⟩ + tr K · tr L / ((n − 1)(n − 2)).
    """
    n = a.n
    diagonals = float(a.sq_row_norms @ b.sq_row_norms)
    return cross - n / (n - 2) * diagonals + a.total * b.total / ((n - 1) * (n - 2))


class DebiasedCKA(Measure):
    """Linear CKA with the unbiased HSIC estimator of Song et al. (2012, "Feature Selection via
    Dependence Maximization", JMLR 13) in numerator and both denominator terms, as in Kornblith
    et al. (2019) and Nguyen et al. (2021, "Do Wide and Deep Networks Learn the Same Things?").

    Unlike plug-in CKA it is not biased towards 1 when n is small against d: unrelated data
    scores about 0 ± O(1/n), so it can come out slightly negative; that value is reported as is.
    """

    id = "cka/linear-debiased"
    name = "Debiased linear CKA"
    reference = "Song et al. 2012; Kornblith et al. 2019"
    # The unbiased HSIC is an inner product of U-centred Gram matrices (Székely & Rizzo 2014),
    # so the ratio lies in [−1, 1], but it is below 0 only by chance: unrelated data scores
    # 0 ± O(1/n), under −0.2 in 1 of 500 draws at n = 20 and in none of 5000 at n = 30
    # (Gaussian data, d = 1 to 100); at n = 4 anything in [−1, 1] happens. The display range
    # fits the colour scale to the values met in practice; values are reported unclipped.
    range = (-0.2, 1.0)
    bounds = (-1.0, 1.0)
    invariant_to = ("orthogonal", "isotropic scaling", "translation")

    def prepare(self, x: np.ndarray, name: str = "activations") -> DebiasedLayer:
        from analysis.measures.gram import prepare

        layer = prepare(x, name, self.device)
        self_hsic = _unscaled_unbiased_hsic(layer, layer, layer.self_norm**2)
        # HSIC₁(K, K) ≥ 0 in exact arithmetic, and exactly 0 for instance when a single sample
        # differs from all the others; at or near 0 the ratio is undefined or round-off.
        if not self_hsic > 1e-10 * layer.self_norm**2:
            raise InputError(
                f"{name}: the unbiased self-similarity HSIC(K, K) is not positive with "
                f"n = {layer.n} samples; debiased CKA is undefined (use more samples)"
            )
        return DebiasedLayer(layer, self_hsic)

    def score(self, a: DebiasedLayer, b: DebiasedLayer) -> float:
        from analysis.measures.gram import cross_sq_norm

        hsic = _unscaled_unbiased_hsic(a.layer, b.layer, cross_sq_norm(a.layer, b.layer))
        value = hsic / np.sqrt(a.self_hsic * b.self_hsic)
        return float(min(1.0, max(-1.0, value)))

    def permute(self, prepared: DebiasedLayer, perm: np.ndarray) -> DebiasedLayer:
        """Rows permuted; the self-HSIC does not change."""
        from analysis.measures.gram import permuted

        return DebiasedLayer(permuted(prepared.layer, perm), prepared.self_hsic)

    def estimator(self, a: DebiasedLayer, b: DebiasedLayer) -> str:
        from analysis.measures.gram import form

        return form(a.layer, b.layer)


RBF_FRACTION = 0.8
"""σ as a fraction of the median pairwise distance: Kornblith et al. (2019) report 0.2–0.8."""


@dataclass
class RBFLayer:
    """A layer ready for RBF CKA: its double-centred kernel matrix scaled to unit norm."""

    centred: np.ndarray  # float64, n × d (the rows bootstrap resamples)
    sigma: float
    kernel: np.ndarray  # HKH / ‖HKH‖_F, n × n

    @property
    def data(self) -> np.ndarray:
        return self.centred


class RBFCKA(Measure):
    """CKA with a Gaussian kernel k(x, x') = exp(−‖x − x'‖² / (2σ²)) (Kornblith et al. 2019),
    σ = ``fraction`` × the median distance between distinct samples, and the plug-in
    HSIC of Gretton et al. (2005) on the centred kernel matrices::

        CKA = ⟨HKH, HLH⟩_F / (‖HKH‖_F ‖HLH‖_F),   H = I − 11ᵀ/n

    Because σ follows the median distance, scaling a layer scales σ with it. (Kornblith's
    published code instead takes σ² = fraction² × the median of all n² squared distances, the
    n zero self-distances included, which gives a slightly smaller σ.)
    """

    id = "cka/rbf"
    name = "RBF CKA"
    reference = "Kornblith et al. 2019"
    invariant_to = ("orthogonal", "isotropic scaling", "translation")

    parameters = (
        Parameter(
            "fraction",
            "float",
            RBF_FRACTION,
            "σ as a fraction of the bandwidth rule's distance",
            minimum=0,
            exclusive_minimum=True,
            maximum=100,
        ),
        Parameter(
            "bandwidth",
            "choice",
            "median-distance",
            "median-distance: σ = fraction × the median distance between distinct samples; "
            "kornblith-2019: σ² = fraction² × the median of all n² squared distances, zero "
            "self-distances included (Kornblith's published code)",
            choices=("median-distance", "kornblith-2019"),
        ),
    )

    def __init__(self, fraction: float = RBF_FRACTION, bandwidth: str = "median-distance") -> None:
        if not fraction > 0:
            raise InputError(f"the bandwidth fraction must be positive, got {fraction}")
        self.fraction = fraction
        self.bandwidth = bandwidth

    def prepare(self, x: np.ndarray, name: str = "activations") -> RBFLayer:
        from analysis.measures.gram import prepare

        centred = prepare(x, name).centred()
        gram = centred @ centred.T
        sq_norms = np.diag(gram)
        sq_distances = np.maximum(sq_norms[:, None] + sq_norms[None, :] - 2 * gram, 0.0)
        np.fill_diagonal(sq_distances, 0.0)
        if self.bandwidth == "kornblith-2019":
            median = float(np.sqrt(np.median(sq_distances)))
        else:
            upper = np.triu_indices(len(centred), k=1)
            median = float(np.median(np.sqrt(sq_distances[upper])))
        if median == 0.0:
            raise InputError(
                f"{name}: more than half of the sample pairs are identical, so the median "
                "distance (which sets the RBF bandwidth) is 0; RBF CKA is undefined"
            )
        sigma = self.fraction * median
        kernel = np.exp(-sq_distances / (2 * sigma**2))
        kernel -= kernel.mean(axis=0)
        kernel -= kernel.mean(axis=1, keepdims=True)
        # Not 0: with a positive median some kernel entries are below the diagonal's 1.
        return RBFLayer(centred, sigma, kernel / np.linalg.norm(kernel))

    def score(self, a: RBFLayer, b: RBFLayer) -> float:
        return min(1.0, max(0.0, float(np.vdot(a.kernel, b.kernel))))

    def permute(self, prepared: RBFLayer, perm: np.ndarray) -> RBFLayer:
        """Rows permuted: σ and the centring are unchanged, the kernel is permuted."""
        return RBFLayer(prepared.centred[perm], prepared.sigma, prepared.kernel[np.ix_(perm, perm)])

    def estimator(self, a: RBFLayer, b: RBFLayer) -> str:
        if self.bandwidth == "kornblith-2019":
            return f"gram, σ² = {self.fraction:g}² × median squared distance (all n² pairs)"
        return f"gram, σ = {self.fraction:g} × median distance"
