"""The numerical core of the CKA family, on torch: a layer's float64 column means and linear
Gram statistics (streamed over blocks of rows, on CUDA when there is a GPU), the cross-product
norm of two layers, linear CKA and its exact permutation moments. :mod:`analysis.measures.cka`
declares the measures and imports this module only when activations are compared, so that
listing and validating measures (the web process) needs no torch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from analysis.errors import InputError
from analysis.measures.engine import check_activations, not_finite

MIN_SAMPLES = 4
BLOCK_BYTES = 1 << 27
"""float64 bytes of one block of rows (of both layers of a pair) while streaming: 128 MiB."""
RESIDENT_BYTES = 1 << 28
"""A layer whose centred float64 copy is at most this big (256 MiB) is kept in memory, and on
a GPU any layer that takes at most a quarter of its free memory; larger ones are streamed."""


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` as given, or CUDA when there is a GPU, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class PreparedLayer:
    """A layer ready for CKA, without a centred copy of it: its rows as given (a memory map is
    read block by block), float64 column means, and the Gram statistics CKA and its exact
    permutation moments need."""

    rows: np.ndarray
    mean: np.ndarray  # float64 column means
    total: float  # ‖X_c‖²_F = tr K
    self_norm: float  # ‖X_cᵀX_c‖_F = ‖K‖_F
    sq_row_norms: np.ndarray  # ‖x_cᵢ‖², the diagonal of K
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _gram: np.ndarray | None = field(default=None, repr=False)
    # The centred layer itself (float64) where it fits (RESIDENT_BYTES), so that pairs need
    # no conversions or transfers: a layer × layer matrix moves each layer to a GPU once.
    _resident: torch.Tensor | None = field(default=None, repr=False)

    @property
    def data(self) -> np.ndarray:
        return self.rows

    @property
    def n(self) -> int:
        return self.rows.shape[0]

    @property
    def d(self) -> int:
        return self.rows.shape[1]

    def centred(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` centred, as a new float64 array."""
        block = np.array(self.rows[start:stop], dtype=np.float64)
        block -= self.mean
        return block

    def centred_on_device(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Rows ``start:stop`` centred, float64 on the layer's device (converted there)."""
        if self._resident is not None:
            return self._resident[start:stop]
        block = _on_device(self.rows[start:stop], self.device)
        return block.sub_(torch.from_numpy(self.mean).to(self.device))

    def normalised_gram(self) -> np.ndarray:
        """X_cX_cᵀ / ‖X_cX_cᵀ‖_F (computed on first use; only for n small against d)."""
        if self._gram is None:
            self._gram = _gram(self) / self.self_norm
        return self._gram


def _on_device(rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """A float64 copy of ``rows`` on ``device``, free to modify: converted here for the CPU;
    for a GPU sent as they are (half the bytes of float64) and converted there."""
    if device.type == "cpu":
        return torch.from_numpy(np.array(rows, dtype=np.float64))
    if not (rows.flags.writeable and rows.flags.c_contiguous):  # e.g. a read-only memory map
        rows = np.array(rows)
    return torch.from_numpy(rows).to(device).to(torch.float64)


def _column_means(rows: np.ndarray, device: torch.device, name: str) -> np.ndarray:
    """float64 column means, streamed over blocks of rows, refusing NaN or Inf and layers
    whose columns are all constant (the mean of n equal values need not be exact, so this is
    judged on the values, not on the centred ones)."""
    n, d = rows.shape
    total = torch.zeros(d, dtype=torch.float64, device=device)
    low = torch.full((d,), torch.inf, dtype=torch.float64, device=device)
    high = -low
    for start, stop in _row_blocks(n, d):
        block = _on_device(rows[start:stop], device)
        block_low, block_high = torch.aminmax(block, dim=0)
        torch.minimum(low, block_low, out=low)
        torch.maximum(high, block_high, out=high)
        total += block.sum(dim=0)
    _check_range(low, high, name)
    return (total / n).cpu().numpy()


def _check_range(low: torch.Tensor, high: torch.Tensor, name: str) -> None:
    """Refuse NaN or Inf (NaN propagates to the column minima and maxima) and layers whose
    every column is constant, from the column minima and maxima."""
    if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
        raise not_finite(name)
    if torch.equal(low, high):
        raise _constant(name)


def _constant(name: str) -> InputError:
    return InputError(f"{name}: every column is constant across samples; CKA is undefined")


def _row_blocks(n: int, width: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of blocks of rows of ``width`` float64 columns, BLOCK_BYTES each."""
    step = max(1, BLOCK_BYTES // (8 * width))
    for start in range(0, n, step):
        yield start, min(n, start + step)


def _gram(layer: PreparedLayer) -> np.ndarray:
    """X_cX_cᵀ, n × n, accumulated over blocks of columns."""
    gram = np.zeros((layer.n, layer.n))
    step = max(1, BLOCK_BYTES // (8 * layer.n))
    for start in range(0, layer.d, step):
        block = np.array(layer.rows[:, start : start + step], dtype=np.float64)
        block -= layer.mean[start : start + step]
        gram += block @ block.T
    return gram


def prepare(
    x: np.ndarray, name: str = "activations", device: torch.device | str | None = None
) -> PreparedLayer:
    """Column means and Gram statistics of ``x`` (n × d) in float64, streamed over blocks of
    rows; refuse input CKA is undefined for."""
    x = check_activations(x, name, MIN_SAMPLES, finite=False)
    n, d = x.shape
    device = resolve_device(device)
    layer = PreparedLayer(x, np.zeros(d), 0.0, 0.0, np.empty(n), device)
    if device.type == "cuda":
        room = torch.cuda.mem_get_info(device)[0] // 4
    else:
        room = RESIDENT_BYTES
    if 8 * n * d <= room:
        resident = _on_device(x, device)  # one transfer; everything else happens there
        _check_range(*torch.aminmax(resident, dim=0), name)
        mean = resident.mean(dim=0)
        layer.mean, layer._resident = mean.cpu().numpy(), resident.sub_(mean)
    else:
        layer.mean = _column_means(x, device, name)
    # ‖XᵀX‖_F = ‖XXᵀ‖_F: use the smaller of the two products.
    covariance = torch.zeros((d, d), dtype=torch.float64, device=layer.device) if d <= n else None
    for start, stop in _row_blocks(n, d):
        block = layer.centred_on_device(start, stop)
        layer.sq_row_norms[start:stop] = torch.linalg.vector_norm(block, dim=1).square_().cpu()
        if covariance is not None:
            covariance.addmm_(block.T, block)
    layer.total = float(layer.sq_row_norms.sum())
    if covariance is not None:
        layer.self_norm = float(torch.linalg.matrix_norm(covariance))
    else:
        gram = _gram(layer)
        layer.self_norm = float(np.linalg.norm(gram))
        layer._gram = gram / layer.self_norm if layer.self_norm else None
    if layer.self_norm == 0.0:
        raise _constant(name)
    return layer


def use_gram_form(a: PreparedLayer, b: PreparedLayer) -> bool:
    """The Gram form costs O(n²) per pair once Grams exist; the feature form O(n·p·q)."""
    return a.n * a.n < a.d * b.d


def cross_sq_norm(a: PreparedLayer, b: PreparedLayer) -> float:
    """‖Y_cᵀX_c‖²_F = tr(KL), from the Gram matrices or streamed over blocks of rows."""
    if use_gram_form(a, b):
        return float(np.vdot(a.normalised_gram(), b.normalised_gram())) * a.self_norm * b.self_norm
    if a._resident is not None and b._resident is not None:
        return float(torch.linalg.matrix_norm(a._resident.T @ b._resident) ** 2)
    cross = torch.zeros((a.d, b.d), dtype=torch.float64, device=a.device)
    for start, stop in _row_blocks(a.n, a.d + b.d):
        cross.addmm_(a.centred_on_device(start, stop).T, b.centred_on_device(start, stop))
    return float(torch.linalg.matrix_norm(cross) ** 2)


def cka_prepared(a: PreparedLayer, b: PreparedLayer) -> float:
    """CKA of two prepared layers, clipped to [0, 1] against round-off (1 + 2e-16 for X vs X)."""
    value = cross_sq_norm(a, b) / (a.self_norm * b.self_norm)
    return min(1.0, max(0.0, value))


def permutation_moments(a: PreparedLayer, b: PreparedLayer) -> tuple[float, float]:
    """Exact mean and standard deviation of CKA(X, PY) over all n! row permutations P.

    The moments of the RV coefficient under permutation (Kazi-Aoual et al. 1995, as given by
    Josse, Pagès & Husson 2008): with β = (tr K)² / ‖K‖²_F and
    τ' = (n − 1)/(n − 3) · (n(n + 1) Σᵢ Kᵢᵢ² / ‖K‖²_F − (n − 1)(β + 2)),

        E = √(β_K β_L) / (n − 1)
        Var = 2 [(n − 1 − β_K)(n − 1 − β_L) + (n − 3)/(2n(n − 1)) τ'_K τ'_L]
              / ((n + 1)(n − 1)²(n − 2))

    (τ' is the paper's τ times (n − 1 − β), which keeps isotropic data, β = n − 1, finite).
    """
    n = a.n

    def stats(layer: PreparedLayer) -> tuple[float, float]:
        sq_norm = layer.self_norm**2
        beta = layer.total**2 / sq_norm
        skew = n * (n + 1) * float(layer.sq_row_norms @ layer.sq_row_norms) / sq_norm
        return beta, (n - 1) / (n - 3) * (skew - (n - 1) * (beta + 2))

    (beta_a, tau_a), (beta_b, tau_b) = stats(a), stats(b)
    mean = np.sqrt(beta_a * beta_b) / (n - 1)
    variance = (
        2
        * ((n - 1 - beta_a) * (n - 1 - beta_b) + (n - 3) / (2 * n * (n - 1)) * tau_a * tau_b)
        / ((n + 1) * (n - 1) ** 2 * (n - 2))
    )
    return float(mean), float(np.sqrt(max(variance, 0.0)))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between two ``n × p`` and ``n × q`` arrays whose rows are the same samples."""
    a, b = prepare(x, "X"), prepare(y, "Y")
    _check_same_samples(a, b)
    return cka_prepared(a, b)


def _check_same_samples(a: PreparedLayer, b: PreparedLayer) -> None:
    if a.n != b.n:
        raise InputError(f"the two spaces have different numbers of samples: {a.n} vs {b.n}")


def permuted(layer: PreparedLayer, perm: np.ndarray) -> PreparedLayer:
    """Rows permuted without re-centring or recomputing norms (both are unchanged)."""
    gram = None if layer._gram is None else layer._gram[np.ix_(perm, perm)]
    resident = None
    if layer._resident is not None:
        resident = layer._resident[torch.from_numpy(perm).to(layer.device)]
    return PreparedLayer(
        layer.rows[perm],
        layer.mean,
        layer.total,
        layer.self_norm,
        layer.sq_row_norms[perm],
        layer.device,
        gram,
        resident,
    )


def form(a: PreparedLayer, b: PreparedLayer) -> str:
    form = "gram" if use_gram_form(a, b) else "feature"
    return form if form == "gram" or a.device.type == "cpu" else f"{form}, {a.device.type}"
