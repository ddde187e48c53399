"""Procrustes shape metrics (Williams et al. 2021, "Generalized Shape Metrics on Neural
Representations", NeurIPS).

Each space is centred and scaled to unit Frobenius norm; the two are then compared after the
best orthogonal alignment. For such X (n × p) and Y (n × q)::

    min_Q ‖X − YQ‖²_F = 2 − 2 ‖XᵀY‖_*        (‖·‖_*: nuclear norm, sum of singular values)

    angular distance    θ(X, Y) = arccos ‖XᵀY‖_*          in [0, π/2]
    Euclidean distance  d(X, Y) = √(2 − 2 ‖XᵀY‖_*)       in [0, √2]

Both are metrics (symmetric, triangle inequality) on shapes modulo translation, isotropic
scaling and orthogonal transforms; 0 means identical up to those. When p ≠ q, Williams et al.
zero-pad the smaller side to a common width; padding adds zero rows or columns to XᵀY, which
leaves its singular values unchanged, so the nuclear norm of the p × q cross-product is used as
is.

Per layer, :func:`prepare` centres and normalises once in float64. When a layer is wider than it
has samples (p > n) it is replaced by Rᵀ from the QR decomposition of Xᵀ (n × n, the same Gram
matrix): an orthogonal change of basis of its columns, which changes no distance (nor any
bootstrap resample of its rows), so a pair costs O(n · min(n, p) · min(n, q)) plus a small SVD.

On a GPU (``Measure.device``, :mod:`analysis.measures.placement`) the same steps run in torch,
float64: the layer is validated on the host, sent through
:func:`analysis.measures.transfer.to_device` (chunked, the copies overlapped with the
conversion), centred, scaled, QR-reduced and multiplied there; only the singular values' sum
comes back. ``prepare(x, name, device)`` with any torch device (the CPU too) takes that path.

Pitfalls: near zero, arccos amplifies round-off (a nuclear norm of 1 − 1e-16 reads as 1.5e-8
rad), so distances below about 1e-7 are zero. And like CKA, these distances are biased when d is
not well below n: independent random spaces with p, q ≥ n are close to each other (they are all
close to isotropic) — read every value next to its permutation baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analysis.errors import InputError
from analysis.measures.engine import Measure, check_activations
from analysis.measures.placement import torch_device

if TYPE_CHECKING:
    import torch

__all__ = [
    "ProcrustesAngular",
    "ProcrustesEuclidean",
    "orthogonal_procrustes_map",
    "prepare",
    "procrustes_angular",
    "procrustes_euclidean",
]

MIN_SAMPLES = 4


@dataclass
class PreparedShape:
    """A layer centred and scaled to ‖X‖_F = 1 in float64; ``data`` is n × min(n, p), a numpy
    array, or a torch tensor on the device the torch path computes on."""

    data: np.ndarray | torch.Tensor
    reduced: bool  # True when a p > n layer was replaced by Rᵀ of the QR of its transpose

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    def rows(self) -> np.ndarray:
        """``data`` on the host (for bootstrap resamples, which are prepared again)."""
        if isinstance(self.data, np.ndarray):
            return self.data
        return self.data.cpu().numpy()


def _single_point(name: str) -> InputError:
    """The error for a layer whose samples are all one point (constant, or centred to 0)."""
    return InputError(
        f"{name}: every column is constant across samples; its shape is a single point"
    )


def prepare(x: np.ndarray, name: str = "activations", device: str | None = None) -> PreparedShape:
    """Centre the columns of ``x`` (n × d) and scale it to unit Frobenius norm, in float64;
    with a ``device``, in torch on that device."""
    x = check_activations(x, name, MIN_SAMPLES)
    if not np.ptp(x, axis=0).any():
        raise _single_point(name)
    if device is not None:
        return _prepare_torch(x, name, device)
    centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    norm = np.linalg.norm(centred)
    if norm == 0.0:
        raise _single_point(name)
    centred /= norm
    n, p = centred.shape
    if p <= n:
        return PreparedShape(centred, reduced=False)
    # X = RᵀQᵀ from the QR of Xᵀ: Rᵀ (n × n) has X's Gram matrix, so it differs from X by an
    # orthogonal map of the columns, to which every distance here is blind.
    # numpy's stubs type every mode as QRResult; mode="r" returns R alone.
    r_factor: np.ndarray = np.linalg.qr(centred.T, mode="r")  # type: ignore[assignment]
    return PreparedShape(r_factor.T, reduced=True)


def _prepare_torch(x: np.ndarray, name: str, device: str) -> PreparedShape:
    """:func:`prepare`'s steps in torch on ``device`` (``x`` already validated)."""
    import torch

    from analysis.measures.transfer import to_device

    centred = to_device(x, device, torch.float64)
    centred -= centred.mean(dim=0)
    norm = torch.linalg.vector_norm(centred)
    if float(norm) == 0.0:
        raise _single_point(name)
    centred /= norm
    n, p = centred.shape
    if p <= n:
        return PreparedShape(centred, reduced=False)
    return PreparedShape(torch.linalg.qr(centred.T, mode="r").R.T, reduced=True)


def nuclear_similarity(a: PreparedShape, b: PreparedShape) -> float:
    """‖XᵀY‖_* of two prepared layers, clipped to [0, 1] against round-off."""
    if a.n != b.n:
        raise InputError(f"the two spaces have different numbers of samples: {a.n} vs {b.n}")
    if isinstance(a.data, np.ndarray) and isinstance(b.data, np.ndarray):
        total = float(np.linalg.svd(a.data.T @ b.data, compute_uv=False).sum())
    else:
        import torch

        total = float(torch.linalg.svdvals(a.data.T @ b.data).sum())
    return min(1.0, max(0.0, total))


def procrustes_angular(x: np.ndarray, y: np.ndarray) -> float:
    """Angular shape distance arccos ‖XᵀY‖_* between two ``n × p`` and ``n × q`` arrays."""
    return float(np.arccos(nuclear_similarity(prepare(x, "X"), prepare(y, "Y"))))


def procrustes_euclidean(x: np.ndarray, y: np.ndarray) -> float:
    """Euclidean shape distance √(2 − 2‖XᵀY‖_*) between two ``n × p`` and ``n × q`` arrays."""
    return float(np.sqrt(2.0 - 2.0 * nuclear_similarity(prepare(x, "X"), prepare(y, "Y"))))


def orthogonal_procrustes_map(
    x: np.ndarray, y: np.ndarray, scale: bool = False
) -> tuple[np.ndarray, float]:
    """The orthogonal map ``(W, s)`` that best aligns X to Y (s·XW ≈ Y), for alignment work.

    W = UVᵀ from the thin SVD XᵀY = UΣVᵀ (Schönemann 1966): it maximises tr(WᵀXᵀY). When
    p ≠ q it solves the zero-padded problem of Williams et al. 2021 and keeps the real
    dimensions: for p ≤ q, W (orthonormal rows) minimises ‖XW − Y‖_F; for p > q, W (orthonormal
    columns) is the first q columns of the rotation R minimising ‖XR − [Y 0]‖_F, the part of XR
    beyond Y's width being what no map to q dimensions can keep. With ``scale``,
    s = tr Σ / ‖X‖²_F, the optimal isotropic scale of that problem; otherwise s = 1. The arrays
    are used as given: centre (and normalise) them first for a map between shapes. Unlike
    ``scipy.linalg.orthogonal_procrustes``, which returns tr Σ as its second value, this
    returns the scale to apply.

    Parameters
    ----------
    x : (n, p) array
    y : (n, q) array, rows the same samples as ``x``
    scale : bool
        Also fit an isotropic scale s ≥ 0.

    Returns
    -------
    w : (p, q) float64 array
    s : float
    """
    x = check_activations(x, "X", 1).astype(np.float64)
    y = check_activations(y, "Y", 1).astype(np.float64)
    if x.shape[0] != y.shape[0]:
        raise InputError(
            f"the two spaces have different numbers of samples: {x.shape[0]} vs {y.shape[0]}"
        )
    u, sigma, vt = np.linalg.svd(x.T @ y, full_matrices=False)
    w = u @ vt
    if not scale:
        return w, 1.0
    norm2 = float(np.vdot(x, x))
    if norm2 == 0.0:
        raise InputError("X: all zeros; no scale maps it onto Y")
    return w, float(sigma.sum()) / norm2


class _ProcrustesDistance(Measure):
    reference = "Williams et al. 2021"
    larger_is_more_similar = False
    is_metric = True
    invariant_to = ("orthogonal", "permutation of units", "isotropic scaling", "translation")
    min_samples = MIN_SAMPLES

    def prepare(self, x: np.ndarray, name: str = "activations") -> PreparedShape:
        return prepare(x, name, torch_device(self.device))

    def rows(self, prepared: PreparedShape) -> np.ndarray:
        return prepared.rows()

    def draws_in_parallel(self) -> bool:
        """On the CPU: each permutation or resample is the SVD of a p × q product, a few
        hundred columns, which BLAS's threads barely speed up."""
        return torch_device(self.device) is None

    def permute(self, prepared: PreparedShape, perm: np.ndarray) -> PreparedShape:
        """Rows permuted; centring and norm do not change."""
        if isinstance(prepared.data, np.ndarray):
            return PreparedShape(prepared.data[perm], prepared.reduced)
        import torch

        index = torch.from_numpy(np.asarray(perm)).to(prepared.data.device)
        return PreparedShape(prepared.data[index], prepared.reduced)

    def estimator(self, a: PreparedShape, b: PreparedShape) -> str:
        return "qr-reduced" if a.reduced or b.reduced else "feature"


class ProcrustesAngular(_ProcrustesDistance):
    """arccos ‖XᵀY‖_* in radians: 0 identical shapes, π/2 orthogonal ones."""

    id = "procrustes/angular"
    name = "Procrustes angular distance"
    range = (0.0, float(np.pi / 2))

    def score(self, a: PreparedShape, b: PreparedShape) -> float:
        return float(np.arccos(nuclear_similarity(a, b)))


class ProcrustesEuclidean(_ProcrustesDistance):
    """√(2 − 2‖XᵀY‖_*): the residual ‖X − YQ‖_F of the best orthogonal alignment."""

    id = "procrustes/euclidean"
    name = "Procrustes Euclidean distance"
    range = (0.0, float(np.sqrt(2.0)))

    def score(self, a: PreparedShape, b: PreparedShape) -> float:
        return float(np.sqrt(2.0 - 2.0 * nuclear_similarity(a, b)))
