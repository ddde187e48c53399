"""Agreement of k-nearest-neighbour graphs (Huh et al. 2024, "The Platonic Representation
Hypothesis", ICML: the mutual nearest-neighbour metric).

For each sample i, N_X(i) is the set of its k nearest other samples in X (self excluded) and
N_Y(i) the same in Y. Per sample::

    mutual kNN   |N_X(i) ∩ N_Y(i)| / k
    Jaccard      |N_X(i) ∩ N_Y(i)| / |N_X(i) ∪ N_Y(i)|

and the global scores are their means over samples. Independent spaces score k/(n − 1) on
average (the chance that a given one of the n − 1 other samples is among k), which the
permutation baseline shows. Neighbours are found by cosine (default, as Huh et al.) or
Euclidean distance, exactly, in row blocks so memory stays O(n · block). Candidates are
screened by one float32 matrix product on centred rows, with a margin wider than its round-off,
and ranked by float64 differences (float32 alone would reorder near-equal neighbours), so a
large common offset (up to ~1e7 times the spread) costs no digits and equal distances
(duplicated samples, discrete activations) compare equal; their ties go to the lower sample
index.

On a GPU (``Measure.device``, :mod:`analysis.measures.placement`) the screening, the O(n²·d)
part, runs in torch there: the float32 rows are sent once (:func:`analysis.measures.transfer.
to_device`), each block's product, k-th smallest and band are computed there, and only the
candidates (about k per row) come back to be settled on the host as above; the neighbour lists
are therefore the same as on the CPU. ``knn_indices(..., device=...)`` with any torch device
(the CPU too) takes that path.

Bootstrap: a resample with replacement holds copies of a sample, which are each other's nearest
neighbours at distance 0 in *both* spaces and fill neighbour slots that agree by construction.
Resampling rows is therefore not a meaningful way to get an interval for these measures, and
they declare ``supports_bootstrap = False`` so the engine can skip it; :meth:`per_sample` gives
the per-sample agreements behind the global score instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from math import comb
from typing import ClassVar

import numpy as np

from analysis.errors import InputError
from analysis.measures.engine import Measure, check_activations
from analysis.measures.placement import torch_device
from analysis.parameters import Parameter

__all__ = [
    "KNNJaccard",
    "MutualKNN",
    "knn_indices",
    "knn_jaccard_chance",
    "knn_jaccard_per_sample",
    "mutual_knn_per_sample",
]

METRICS = ("cosine", "euclidean")
BLOCK_ENTRIES = 1 << 22  # distances screened at once: 16 MiB of float32
GPU_BLOCK_ENTRIES = 1 << 26  # on a GPU: 256 MiB of float32, fewer and larger launches
SCREEN_EPS = 2.0**-24  # unit round-off of the float32 screening product


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")


def _check_enough_samples(k: int, n: int, name: str) -> None:
    if k >= n:
        raise InputError(
            f"{name}: k = {k} nearest neighbours need at least {k + 1} samples, got {n}"
        )


def _embed(x: np.ndarray, metric: str, name: str) -> np.ndarray:
    """Float64 rows the neighbours are found among: unit rows for cosine (‖u_i − u_j‖² =
    2 − 2 cos ranks like cosine distance), the rows themselves for Euclidean."""
    if metric not in METRICS:
        raise InputError(f"unknown kNN metric {metric!r}: use 'cosine' or 'euclidean'")
    x = x.astype(np.float64)
    if metric == "euclidean":
        return x
    norms = np.linalg.norm(x, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise InputError(
            f"{name}: {zero.size} sample(s) are all zeros (first: row {zero[0]}); cosine "
            "similarity to them is undefined"
        )
    return x / norms[:, None]


def _squared_distances(data: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """‖data[i] − data[j]‖² pair by pair, from differences: a function of the two rows alone,
    so equal rows give bit-equal distances wherever they sit."""
    out = np.empty(i.size)
    step = max(1, BLOCK_ENTRIES // data.shape[1])
    for start in range(0, i.size, step):
        diff = data[i[start : start + step]] - data[j[start : start + step]]
        out[start : start + step] = np.einsum("ij,ij->i", diff, diff)
    return out


Candidates = Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]
"""Per block of rows ``start:stop``: the screened candidates' local rows, columns and float32
squared distances (as float64), in row-major order."""


def _screen_numpy(
    screen: np.ndarray, squares: np.ndarray, band: np.ndarray, k: int, rows: int
) -> Candidates:
    """The screening pass of :func:`_neighbours` in numpy."""
    n = screen.shape[0]
    screen32 = screen.astype(np.float32)
    squares32 = squares.astype(np.float32)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        local = np.arange(stop - start)
        approx = screen32[start:stop] @ screen32.T
        approx *= -2.0
        approx += squares32[None, :]
        approx += squares32[start:stop, None]
        approx[local, start + local] = np.inf  # self excluded
        kth = np.partition(approx, k - 1, axis=1)[:, k - 1].astype(np.float64)
        r, c = np.nonzero(approx <= (kth + band[start:stop])[:, None])
        yield start, stop, r, c, approx[r, c].astype(np.float64)


def _screen_torch(
    screen: np.ndarray, squares: np.ndarray, band: np.ndarray, k: int, rows: int, device: str
) -> Candidates:
    """The screening pass of :func:`_neighbours` in torch on ``device``: the same float32
    operations in the same order; only the candidates come back."""
    import torch

    from analysis.measures.transfer import to_device

    if torch.device(device).type == "cuda" and torch.get_float32_matmul_precision() != "highest":
        # TF32 products would break the round-off bound the band is built on.
        raise RuntimeError("kNN screening needs float32 matmul precision 'highest'")
    n = screen.shape[0]
    screen32 = to_device(screen.astype(np.float32), device, torch.float32)
    squares32 = torch.from_numpy(squares.astype(np.float32)).to(device)
    band64 = torch.from_numpy(band).to(device)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        local = torch.arange(stop - start, device=screen32.device)
        approx = screen32[start:stop] @ screen32.T
        approx *= -2.0
        approx += squares32[None, :]
        approx += squares32[start:stop, None]
        approx[local, start + local] = torch.inf  # self excluded
        kth = torch.kthvalue(approx, k, dim=1).values.double()
        r, c = torch.nonzero(approx <= (kth + band64[start:stop])[:, None], as_tuple=True)
        v = approx[r, c].double()
        yield start, stop, r.cpu().numpy(), c.cpu().numpy(), v.cpu().numpy()


def _neighbours(
    data: np.ndarray, k: int, metric: str, block_size: int | None, device: str | None = None
) -> np.ndarray:
    """(n, k) indices of each row's k nearest other rows, nearest first, ties by lower index.

    Two passes per block of rows. Screening: one float32 matrix product gives all squared
    distances up to round-off (‖z_j‖² − 2 z_i·z_j + ‖z_i‖² on centred rows z; centring limits
    cancellation) and keeps every row within a band of the k-th smallest that is wider than
    that round-off can be: a float32 dot product of length d is off by at most about
    (d + 2)·2⁻²⁴·‖z_i‖‖z_j‖ (Higham 2002, §3.1), so no true neighbour falls outside. Ranking:
    the kept pairs' squared distances are recomputed from float64 differences, so equal
    distances (duplicated samples, discrete activations) are equal in floating point too, and
    sorting by (distance, index) breaks their ties the same way every time. With a ``device``,
    the screening runs in torch there (:func:`_screen_torch`).
    """
    n, d = data.shape
    screen = data - data.mean(axis=0) if metric == "euclidean" else data
    squares = np.einsum("ij,ij->i", screen, screen)
    band = 2 * (d + 8) * SCREEN_EPS * (squares + squares.max())
    if device is None:
        rows = block_size or max(1, BLOCK_ENTRIES // n)
        candidates = _screen_numpy(screen, squares, band, k, rows)
    else:
        entries = GPU_BLOCK_ENTRIES if device.startswith("cuda") else BLOCK_ENTRIES
        rows = block_size or max(1, entries // n)
        candidates = _screen_torch(screen, squares, band, k, rows, device)
    out = np.empty((n, k), dtype=np.intp)
    for start, stop, r, c, v in candidates:
        row_band = band[start:stop]
        order = np.lexsort((c, v, r))
        r, c, v = r[order], c[order], v[order]
        # A row with exactly k candidates, each further than the band from the next, is
        # settled by screening: no round-off can change its set or its order. The others
        # (near-ties, equal distances) are ranked by exact distances.
        unsettled = np.bincount(r, minlength=stop - start) > k
        close = (r[1:] == r[:-1]) & (np.diff(v) <= row_band[r[1:]])
        unsettled[r[1:][close]] = True
        exact = unsettled[r]
        re, ce = r[exact], c[exact]
        # Sorted by row first, so each unsettled row's entries stay in its own slots.
        c[exact] = ce[np.lexsort((ce, _squared_distances(data, start + re, ce), re))]
        rank_in_row = np.arange(r.size) - np.searchsorted(r, r)
        out[start:stop] = c[rank_in_row < k].reshape(-1, k)
    return out


def knn_indices(
    x: np.ndarray,
    k: int,
    metric: str = "cosine",
    *,
    name: str = "activations",
    block_size: int | None = None,
    device: str | None = None,
) -> np.ndarray:
    """Exact k nearest neighbours of every row of ``x``, self excluded.

    Parameters
    ----------
    x : (n, d) array
    k : int, 1 ≤ k < n
    metric : "cosine" or "euclidean"
    name : layer name used in error messages
    block_size : rows of distances computed at once (default: about 4M distances)
    device : a torch device to screen the candidates on (default: numpy, on the CPU)

    Returns
    -------
    (n, k) int array: row i lists i's neighbours, nearest first; equal distances are ordered by
    index.
    """
    _check_k(k)
    x = check_activations(x, name, 2)
    _check_enough_samples(k, x.shape[0], name)
    return _neighbours(_embed(x, metric, name), k, metric, block_size, device)


def _shared(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """|N_X(i) ∩ N_Y(i)| per row of two neighbour-index arrays (rows hold distinct indices)."""
    ix, iy = np.asarray(ix), np.asarray(iy)
    if ix.ndim != 2 or iy.ndim != 2 or ix.shape[0] != iy.shape[0]:
        raise InputError(
            f"neighbour lists must be (n, k) arrays of the same n, got {ix.shape} and {iy.shape}"
        )
    # Each list holds distinct indices, so a value twice in the sorted union of a row's two
    # lists is one they share: sorting 2k values per row beats a global isin() by ~100×.
    both = np.concatenate([ix, iy.astype(ix.dtype, copy=False)], axis=1)
    both.sort(axis=1)
    return (both[:, 1:] == both[:, :-1]).sum(axis=1)


def knn_jaccard_per_sample(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """(n,) Jaccard index |N_X(i) ∩ N_Y(i)| / |N_X(i) ∪ N_Y(i)| of two (n, k) neighbour lists."""
    shared = _shared(ix, iy)
    return shared / (ix.shape[1] + iy.shape[1] - shared)


def knn_jaccard_chance(k: int, n: int) -> float:
    """The mean per-sample Jaccard index of two independent neighbourhoods: each sample's k
    neighbours in one space a uniformly random k of the n − 1 others, whatever they are in the
    other. The number shared, j, is then hypergeometric (k draws from n − 1 holding k), and the
    chance level is E[j / (2k − j)], summed exactly in integers."""
    _check_k(k)
    _check_enough_samples(k, n, "samples")
    others = n - 1
    mean = sum(Fraction(comb(k, j) * comb(others - k, k - j) * j, 2 * k - j) for j in range(k + 1))
    return float(mean / comb(others, k))


def mutual_knn_per_sample(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """(n,) share |N_X(i) ∩ N_Y(i)| / k of neighbours in common (Huh et al. 2024)."""
    if np.shape(ix) != np.shape(iy):
        raise InputError(f"neighbour lists differ in shape: {np.shape(ix)} vs {np.shape(iy)}")
    return _shared(ix, iy) / np.shape(ix)[1]


@dataclass
class PreparedKNN:
    """A layer's kNN graph and the float64 rows it was computed from."""

    data: np.ndarray  # unit rows (cosine) or the rows as given (Euclidean)
    neighbours: np.ndarray  # (n, k) indices, nearest first


class _KNNAgreement(Measure):
    reference = "Huh et al. 2024"
    supports_bootstrap: ClassVar[bool] = False  # see the module docstring

    parameters = (
        Parameter("k", "int", 10, "neighbours of each sample", minimum=1, maximum=1000),
        Parameter("metric", "choice", "cosine", "distance between samples", choices=METRICS),
    )

    def __init__(self, k: int = 10, metric: str = "cosine") -> None:
        if metric not in METRICS:
            raise InputError(f"unknown kNN metric {metric!r}: use 'cosine' or 'euclidean'")
        _check_k(k)
        self.k = k
        self.metric = metric
        # cosine also ignores a positive scale per sample; Euclidean ignores translation
        self.invariant_to = ("orthogonal", "permutation of units", "isotropic scaling") + (
            ("translation",) if metric == "euclidean" else ()
        )

    def prepare(self, x: np.ndarray, name: str = "activations") -> PreparedKNN:
        x = check_activations(x, name, self.min_samples)
        _check_enough_samples(self.k, x.shape[0], name)
        data = _embed(x, self.metric, name)
        device = torch_device(self.device)
        return PreparedKNN(data, _neighbours(data, self.k, self.metric, None, device))

    def kept(self, prepared: PreparedKNN) -> np.ndarray:
        """The neighbour lists (n × k indices): the search for them is the whole cost of
        preparing a layer; the rows are embedded again from the activations."""
        return prepared.neighbours

    def restored(self, x: np.ndarray, kept: np.ndarray) -> PreparedKNN:
        x = check_activations(x, "activations", self.min_samples)
        if kept.shape != (x.shape[0], self.k):
            raise InputError(f"stored neighbour lists of shape {kept.shape} do not fit k={self.k}")
        return PreparedKNN(_embed(x, self.metric, "activations"), kept)

    def permute(self, prepared: PreparedKNN, perm: np.ndarray) -> PreparedKNN:
        """The graph of the rows ``data[perm]``, relabelled without a new neighbour search:
        new row a is old row perm[a], and old index j is new index perm⁻¹[j]."""
        perm = np.asarray(perm)
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(perm.size)
        return PreparedKNN(prepared.data[perm], inverse[prepared.neighbours[perm]])

    @staticmethod
    def agreement(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
        """(n,) agreement of two neighbour lists, sample by sample."""
        raise NotImplementedError

    def per_sample(self, a: PreparedKNN, b: PreparedKNN) -> np.ndarray:
        """(n,) agreement of each sample's neighbourhoods; the score is its mean."""
        return self.agreement(a.neighbours, b.neighbours)

    def score(self, a: PreparedKNN, b: PreparedKNN) -> float:
        return float(np.mean(self.per_sample(a, b)))

    def estimator(self, a: PreparedKNN, b: PreparedKNN) -> str:
        return f"exact k={self.k}, {self.metric}"


class MutualKNN(_KNNAgreement):
    """mean_i |N_X(i) ∩ N_Y(i)| / k."""

    id = "knn/mutual"
    name = "Mutual kNN"
    agreement = staticmethod(mutual_knn_per_sample)


class KNNJaccard(_KNNAgreement):
    """mean_i |N_X(i) ∩ N_Y(i)| / |N_X(i) ∪ N_Y(i)|."""

    id = "knn/jaccard"
    name = "kNN Jaccard"
    agreement = staticmethod(knn_jaccard_per_sample)
