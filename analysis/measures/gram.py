"""The numerical core of the CKA family, on torch: a layer's float64 column means and linear
Gram statistics (streamed over blocks of rows, on CUDA when there is a GPU), the cross-product
norm of two layers, linear CKA and its exact permutation moments. :mod:`analysis.measures.cka`
declares the measures and imports this module only when activations are compared, so that
listing and validating measures (the web process) needs no torch.

One code path serves the CPU and CUDA: the centred rows are numpy arrays on the CPU and torch
tensors on a GPU (reached through :func:`analysis.measures.transfer.to_device`, chunked and
overlapped), and the few steps whose calls differ are small functions here. numpy on the CPU
because its matmul computes XᵀX as a symmetric rank-k update (SYRK), half the flops of the
general product torch's CPU matmul computes, and because each torch call on the CPU costs
microseconds of dispatch; so a layer costs what a plain float64 numpy implementation costs,
and tests/benchmarks/bench_measures.py prints both beside the machine's matrix-multiply bound.

Validation costs no pass of its own: a NaN or Inf makes its column's float64 sum non-finite
(float32 values cannot overflow a float64 sum), and a layer whose every column is constant has
a centred total ‖X_c‖²_F within the round-off of its means, so only a layer that small is
compared value by value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from analysis.errors import InputError
from analysis.measures.engine import check_activations, not_finite
from analysis.measures.transfer import resolve_device, to_device

MIN_SAMPLES = 4
BLOCK_BYTES = 1 << 27
"""float64 bytes of one block of rows (of both layers of a pair) while streaming: 128 MiB."""
RESIDENT_BYTES = 1 << 28
"""A layer whose centred float64 copy is at most this big (256 MiB) is kept in memory, and on
a GPU any layer that takes at most a quarter of its free memory; larger ones are streamed."""
EPS = float(np.finfo(np.float64).eps)

Block = np.ndarray | torch.Tensor
"""float64 rows: a numpy array on the CPU, a tensor on a GPU (see the module docstring)."""


@dataclass
class PreparedLayer:
    """A layer ready for CKA, without a centred copy of it: its rows as given (a memory map is
    read block by block), float64 column means, and the Gram statistics CKA and its exact
    permutation moments need."""

    rows: np.ndarray
    mean: np.ndarray  # float64 column means
    total: float  # ‖X_c‖²_F = tr K
    self_norm: float  # ‖X_cᵀX_c‖_F = ‖K‖_F
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _gram: np.ndarray | None = field(default=None, repr=False)
    # The centred layer itself (float64) where it fits (RESIDENT_BYTES), so that pairs need
    # no conversions or transfers: a layer × layer matrix moves each layer to a GPU once.
    _resident: Block | None = field(default=None, repr=False)
    # ‖x_cᵢ‖², the diagonal of K: the value does not need it (the baseline and debiased CKA
    # do), so a resident layer computes it on first use; a streamed one while it streams.
    _sq_row_norms: np.ndarray | None = field(default=None, repr=False)

    @property
    def data(self) -> np.ndarray:
        return self.rows

    @property
    def sq_row_norms(self) -> np.ndarray:
        """‖x_cᵢ‖² for every row: the diagonal of K."""
        if self._sq_row_norms is None:
            self._sq_row_norms = np.concatenate(
                [_sq_row_norms(block) for block in _centred_blocks(self, self.d)]
            )
        return self._sq_row_norms

    @property
    def n(self) -> int:
        return self.rows.shape[0]

    @property
    def d(self) -> int:
        return self.rows.shape[1]

    def centred(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` centred, as a new float64 array."""
        return np.subtract(self.rows[start:stop], self.mean, dtype=np.float64)

    def normalised_gram(self) -> np.ndarray:
        """X_cX_cᵀ / ‖X_cX_cᵀ‖_F (computed on first use; only for n small against d)."""
        if self._gram is None:
            self._gram = _gram(self) / self.self_norm
        return self._gram


def _centred(rows: np.ndarray, mean: np.ndarray, device: torch.device) -> Block:
    """``rows − mean`` in float64 on ``device``, a new array."""
    return _subtract(_float64(rows, device), mean)


def _float64(rows: np.ndarray, device: torch.device) -> Block:
    """A float64 copy of ``rows`` on ``device``: a numpy array on the CPU; for a GPU the rows
    travel as stored (half the bytes of float64 for float32) and are converted there."""
    if device.type == "cpu":
        return np.array(rows, dtype=np.float64)
    return to_device(rows, device, torch.float64)


def _subtract(block: Block, mean: np.ndarray) -> Block:
    """``block −= mean`` in place."""
    if isinstance(block, np.ndarray):
        block -= mean
        return block
    return block.sub_(torch.from_numpy(mean).to(block.device))


def _column_sums(block: Block) -> np.ndarray:
    """float64 column sums of a float64 block, on the host."""
    if isinstance(block, np.ndarray):
        with np.errstate(over="ignore"):  # told apart from NaN or Inf by _check_finite
            return block.sum(axis=0)
    return block.sum(dim=0).cpu().numpy()


def _t_product(a: Block, b: Block) -> Block:
    """aᵀb; numpy computes aᵀa (a and b the same memory) by SYRK."""
    return a.T @ b


def _sq_row_norms(block: Block) -> np.ndarray:
    """‖rowᵢ‖² of a float64 block, on the host."""
    if isinstance(block, np.ndarray):
        return np.einsum("ij,ij->i", block, block)
    return torch.linalg.vector_norm(block, dim=1).square_().cpu().numpy()


def _frobenius(matrix: Block) -> float:
    """‖matrix‖_F."""
    if isinstance(matrix, np.ndarray):
        return float(np.linalg.norm(matrix))
    return float(torch.linalg.matrix_norm(matrix))


def _zeros(rows: int, columns: int, device: torch.device) -> Block:
    if device.type == "cpu":
        return np.zeros((rows, columns))
    return torch.zeros((rows, columns), dtype=torch.float64, device=device)


def _host(matrix: Block) -> np.ndarray:
    return matrix if isinstance(matrix, np.ndarray) else matrix.cpu().numpy()


def _column_means(rows: np.ndarray, device: torch.device, name: str) -> np.ndarray:
    """float64 column means, streamed over blocks of rows; NaN or Inf refused (from the sums:
    see the module docstring)."""
    n, d = rows.shape
    total = np.zeros(d)
    for start, stop in _row_blocks(n, d):
        if device.type == "cpu":  # summed in float64 as read, without a float64 copy
            with np.errstate(over="ignore"):  # told apart from NaN or Inf by _check_finite
                total += rows[start:stop].sum(axis=0, dtype=np.float64)
        else:
            total += _column_sums(_float64(rows[start:stop], device))
    _check_finite(total, rows, name)
    return total / n


def _check_finite(sums: np.ndarray, rows: np.ndarray, name: str) -> None:
    """Refuse NaN or Inf, of which the float64 column ``sums`` are free only if the rows are
    (a float64 sum can also overflow on finite values beyond 1e300: told apart here)."""
    if np.isfinite(sums).all():
        return
    n, d = rows.shape
    for start, stop in _row_blocks(n, d):
        if not np.isfinite(rows[start:stop]).all():
            raise not_finite(name)
    raise InputError(f"{name}: values too large to sum in float64 (beyond about 1e300)")


def _all_constant(rows: np.ndarray) -> bool:
    """Whether every column holds one value, compared exactly, block by block."""
    n, d = rows.shape
    first = np.array(rows[:1])
    return all(
        np.array_equal(rows[start:stop], np.broadcast_to(first, (stop - start, d)))
        for start, stop in _row_blocks(n, d)
    )


def _constant(name: str) -> InputError:
    return InputError(f"{name}: every column is constant across samples; CKA is undefined")


def _row_blocks(n: int, width: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of blocks of rows of ``width`` float64 columns, BLOCK_BYTES each."""
    step = max(1, BLOCK_BYTES // (8 * width))
    for start in range(0, n, step):
        yield start, min(n, start + step)


def _centred_blocks(layer: PreparedLayer, width: int) -> Iterator[Block]:
    """The layer's centred float64 rows, block after block (:func:`_row_blocks` of ``width``
    columns: a pair streams both layers' blocks side by side): views of the resident layer, or
    converted on the layer's device. On the CPU every block is written into one buffer, which
    the caller must be done with before taking the next: a fresh 128 MiB array per block
    cost its page faults again each time (blocked XᵀX over 50,000 × 2,048 rows took 1.5× as
    long with a new array per block)."""
    if layer._resident is not None:
        for start, stop in _row_blocks(layer.n, width):
            yield layer._resident[start:stop]
        return
    if layer.device.type != "cpu":
        for start, stop in _row_blocks(layer.n, width):
            yield _centred(layer.rows[start:stop], layer.mean, layer.device)
        return
    buffer = np.empty((max(1, BLOCK_BYTES // (8 * width)), layer.d))
    for start, stop in _row_blocks(layer.n, width):
        block = buffer[: stop - start]
        np.subtract(layer.rows[start:stop], layer.mean, out=block)
        yield block


def _gram(layer: PreparedLayer) -> np.ndarray:
    """X_cX_cᵀ, n × n: from the resident centred layer, else accumulated over blocks of
    columns."""
    if layer._resident is not None:
        resident = layer._resident.T
        return _host(_t_product(resident, resident))
    gram = np.zeros((layer.n, layer.n))
    step = max(1, BLOCK_BYTES // (8 * layer.n))
    for start in range(0, layer.d, step):
        block = np.subtract(
            layer.rows[:, start : start + step], layer.mean[start : start + step], dtype=np.float64
        )
        gram += block @ block.T
    return gram


def _room(device: torch.device) -> int:
    """float64 bytes a layer may take to be kept resident on ``device``."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] // 4
    return RESIDENT_BYTES


def prepare(
    x: np.ndarray, name: str = "activations", device: torch.device | str | None = None
) -> PreparedLayer:
    """Column means and Gram statistics of ``x`` (n × d) in float64, streamed over blocks of
    rows; refuse input CKA is undefined for."""
    x = check_activations(x, name, MIN_SAMPLES, finite=False)
    n, d = x.shape
    device = resolve_device(device)
    layer = PreparedLayer(x, np.zeros(d), 0.0, 0.0, device)
    if 8 * n * d <= _room(device):
        # One float64 copy, centred in place (on a GPU after one transfer); everything else
        # happens there.
        resident = _float64(x, device)
        sums = _column_sums(resident)
        _check_finite(sums, x, name)
        layer.mean = sums / n
        layer._resident = _subtract(resident, layer.mean)
    else:
        layer.mean = _column_means(x, device, name)
    # ‖XᵀX‖_F = ‖XXᵀ‖_F: use the smaller of the two products; tr K is the trace of either.
    if d <= n:
        if layer._resident is not None:
            covariance = _t_product(layer._resident, layer._resident)
        else:
            covariance = _zeros(d, d, device)
            norms = []
            for block in _centred_blocks(layer, d):
                norms.append(_sq_row_norms(block))
                covariance += _t_product(block, block)
            layer._sq_row_norms = np.concatenate(norms)
        layer.total = float(covariance.trace())
        layer.self_norm = _frobenius(covariance)
    else:
        gram = _gram(layer)
        layer.total = float(np.trace(gram))
        layer.self_norm = float(np.linalg.norm(gram))
        layer._sq_row_norms = np.diag(gram).copy()
        layer._gram = gram / layer.self_norm if layer.self_norm else None
    # A constant column's centred values are at most (n + 2)·eps·|its value| (the round-off
    # of its float64 mean), so a layer of constant columns has a total at most this.
    limit = n * d * ((n + 2) * EPS * float(np.abs(layer.mean).max())) ** 2
    if layer.self_norm == 0.0 or (layer.total <= limit and _all_constant(x)):
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
        return _frobenius(_t_product(a._resident, b._resident)) ** 2
    cross = _zeros(a.d, b.d, a.device)
    width = a.d + b.d  # a block of each side at once
    for block_a, block_b in zip(_centred_blocks(a, width), _centred_blocks(b, width), strict=True):
        cross += _t_product(block_a, block_b)
    return _frobenius(cross) ** 2


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
    resident = layer._resident
    if isinstance(resident, np.ndarray):
        resident = resident[perm]
    elif resident is not None:
        resident = resident[torch.from_numpy(perm).to(layer.device)]
    norms = None if layer._sq_row_norms is None else layer._sq_row_norms[perm]
    return PreparedLayer(
        layer.rows[perm],
        layer.mean,
        layer.total,
        layer.self_norm,
        layer.device,
        gram,
        resident,
        norms,
    )


def form(a: PreparedLayer, b: PreparedLayer) -> str:
    form = "gram" if use_gram_form(a, b) else "feature"
    return form if form == "gram" or a.device.type == "cpu" else f"{form}, {a.device.type}"
