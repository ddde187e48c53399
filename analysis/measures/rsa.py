"""Representational similarity analysis (Kriegeskorte et al. 2008, "Representational Similarity
Analysis – Connecting the Branches of Systems Neuroscience", Front. Syst. Neurosci.).

Each space gets a representational dissimilarity matrix (RDM) over its samples; two spaces are
compared by the Spearman correlation of their RDMs' upper triangles (k = 1, the diagonal is
excluded). Spearman is Pearson's correlation of the ranks, ties given their average rank (as
``scipy.stats.rankdata(method="average")``).

- ``rsa/correlation-spearman``: dissimilarity 1 − Pearson correlation between two samples (each
  sample centred and normalised across its features). Not invariant to rotations of the feature
  space: the per-sample mean across features depends on the basis.
- ``rsa/euclidean-spearman``: Euclidean distance between samples; ranks are taken of squared
  distances, which have the same order and no ties added by the square root.

Ties: before ranking, dissimilarities are snapped to a grid of 1e-11 × the RDM's scale (2 for
correlation distance, the largest squared distance for Euclidean), so that mathematically equal
dissimilarities (discrete or quantised activations, duplicated samples) tie instead of being
ordered by round-off. rsatoolbox ranks the raw floats and can differ from this on such data.

Per layer, :meth:`RSA.prepare` builds the condensed RDM (block-wise, never the n × n matrix),
ranks it and standardises the ranks, so a pair costs one dot product of n(n − 1)/2 numbers, and a
row permutation only re-indexes the ranks (permuting samples permutes the RDM entries, whose
ranks move with them). Memory is 8 bytes × n(n − 1)/2 per prepared layer (1.6 GB at n = 20,000)
and a few times that while ranking.

Above ``max_samples`` samples (20,000) the exact Spearman correlation is out of reach in memory
(the ranks of n(n − 1)/2 ≈ 1.25e9 dissimilarities at n = 50,000 alone take 10 GB per layer), so
the value is Spearman's correlation over a seeded uniform sample of ``sampled_pairs`` pairs of
samples (10 million; the same pairs for every layer of that n): each layer's dissimilarities
are computed for those pairs only, from the rows of the pair, and ranked among themselves. It
estimates the all-pairs value with a sampling standard deviation that the estimator text states,
measured from ten disjoint subsamples of the pairs (about 3e-4 × (1 − ρ²) at 10 million pairs).
A row permutation changes which dissimilarities the sampled pairs hold, so the baseline's
permuted layers are computed afresh on the same pairs.

On a GPU (``Measure.device``, :mod:`analysis.measures.placement`) the inner products between
samples, the O(n²·d) part, run in torch float64 on the device, one row block at a time; the
ranking stays on the host. ``condensed_rdm``/``sampled_rdm`` with any torch ``device`` (the
CPU too) take that path, which is how the tests check it against numpy.

Bootstrap resamples duplicate samples; the dissimilarity between two copies of one sample is 0
in both spaces and inflates the value slightly (a fraction of about 1/n of the entries).
rsatoolbox's pattern bootstrap (``RDMs.subsample_pattern``) marks those entries NaN and drops
them; here the engine's bias correction absorbs the shift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from analysis.errors import InputError
from analysis.measures.engine import Measure, check_activations
from analysis.measures.placement import torch_device

__all__ = ["RSA", "EuclideanRSA", "condensed_rdm", "rsa"]

MIN_SAMPLES = 4
MAX_SAMPLES = 20_000
SAMPLED_PAIRS = 10_000_000  # pairs of samples Spearman is computed over above MAX_SAMPLES
PAIR_SEED = 0
PAIR_GROUPS = 10  # disjoint subsamples of the pairs that measure the sampling spread
PAIR_CHUNK = 1 << 14  # pairs whose dissimilarity is computed at once (2 × d floats each)
BLOCK_ENTRIES = 1 << 21  # entries of one row block of the RDM (16 MiB of float64)
TIE_RESOLUTION = 1e-11  # dissimilarities closer than this, relative to the RDM scale, tie


def _row_blocks(n: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, mask) over row blocks; ``mask[r, j]`` selects j > start + r, so the
    masked block, read row by row, is the next stretch of the condensed upper triangle."""
    rows = max(1, BLOCK_ENTRIES // n)
    columns = np.arange(n)
    for start in range(0, n - 1, rows):
        stop = min(n - 1, start + rows)
        yield start, stop, columns[None, :] > np.arange(start, stop)[:, None]


def _products(z: np.ndarray, device: str | None) -> Callable[[Any, Any], np.ndarray]:
    """``products(rows, columns)``: the inner products of z[rows] with z[columns] (a matrix
    for two slices, a vector for two index arrays of the same length), in numpy or, with a
    ``device``, in torch there (z sent once)."""
    if device is None:

        def on_host(rows: Any, columns: Any) -> np.ndarray:
            if isinstance(rows, slice):
                return z[rows] @ z[columns].T
            return np.einsum("ij,ij->i", z[rows], z[columns])

        return on_host
    import torch

    from analysis.measures.transfer import to_device

    there = to_device(z, device, torch.float64)

    def on_device(rows: Any, columns: Any) -> np.ndarray:
        if isinstance(rows, slice):
            return (there[rows] @ there[columns].T).cpu().numpy()
        index = [
            torch.from_numpy(np.asarray(i, dtype=np.int64)).to(there.device)
            for i in (rows, columns)
        ]
        return (there[index[0]] * there[index[1]]).sum(dim=1).cpu().numpy()

    return on_device


def condensed_rdm(
    x: np.ndarray,
    metric: str = "correlation",
    name: str = "activations",
    device: str | None = None,
) -> np.ndarray:
    """The upper triangle (k = 1, row by row, as ``scipy.spatial.distance.pdist``) of the RDM.

    ``metric="correlation"``: 1 − Pearson correlation between samples (rows); a sample that is
    constant across its features has no correlation and is refused. ``metric="euclidean"``:
    *squared* Euclidean distances (rank-equivalent to distances). Float64 throughout.
    """
    x = check_activations(x, name, 2).astype(np.float64)
    n = x.shape[0]
    z, squares = _rows_for(x, metric, name)
    products = _products(z, device)
    out = np.empty(n * (n - 1) // 2)
    filled = 0
    for start, stop, mask in _row_blocks(n):
        block = products(slice(start, stop), slice(None))
        if squares is None:
            block = 1.0 - block
        else:
            block = np.maximum(squares[start:stop, None] + squares[None, :] - 2.0 * block, 0.0)
        values = block[mask]
        out[filled : filled + values.size] = values
        filled += values.size
    return out


def _rows_for(x: np.ndarray, metric: str, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows whose inner products give the dissimilarities: for correlation distance each
    sample centred and normalised across its features (constant samples refused), for
    squared Euclidean distance the column-centred rows and their squared norms."""
    if metric == "correlation":
        constant = np.flatnonzero(np.ptp(x, axis=1) == 0)
        if constant.size:
            raise InputError(
                f"{name}: {constant.size} sample(s) are constant across features (first: row "
                f"{constant[0]}); their correlation with other samples is undefined"
            )
        z = x - x.mean(axis=1, keepdims=True)
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        return z, None
    if metric == "euclidean":
        z = x - x.mean(axis=0)  # translation changes no distance; centring limits cancellation
        return z, np.einsum("ij,ij->i", z, z)
    raise InputError(f"unknown RDM metric {metric!r}: use 'correlation' or 'euclidean'")


@lru_cache(maxsize=1)
def sampled_pairs(n: int, count: int, seed: int = PAIR_SEED) -> tuple[np.ndarray, np.ndarray]:
    """``(i, j)``, i < j, of about ``count`` distinct pairs of n samples drawn uniformly (a
    seeded draw with replacement of condensed indices, duplicates dropped), in condensed
    order; the same for every layer with n samples."""
    total = n * (n - 1) // 2
    k = np.sort(np.random.default_rng(seed).integers(0, total, size=min(count, total)))
    k = k[np.concatenate(([True], k[1:] != k[:-1]))]  # np.unique, without its slow hashing
    starts = np.arange(n, dtype=np.int64)
    starts = starts * n - starts * (starts + 1) // 2  # condensed index of (i, i + 1)
    i = np.searchsorted(starts, k, side="right") - 1
    return i, k - starts[i] + i + 1


def sampled_rdm(
    x: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray],
    metric: str = "correlation",
    name: str = "activations",
    device: str | None = None,
) -> np.ndarray:
    """The dissimilarities (as :func:`condensed_rdm` defines them) of the given pairs of
    samples only: memory and time grow with the number of pairs, not with n²."""
    x = check_activations(x, name, 2).astype(np.float64)
    z, squares = _rows_for(x, metric, name)
    products = _products(z, device)
    i, j = pairs
    out = np.empty(i.size)
    for start in range(0, i.size, PAIR_CHUNK):
        a, b = i[start : start + PAIR_CHUNK], j[start : start + PAIR_CHUNK]
        dots = products(a, b)
        if squares is None:
            out[start : start + a.size] = 1.0 - dots
        else:
            out[start : start + a.size] = np.maximum(squares[a] + squares[b] - 2.0 * dots, 0.0)
    return out


@dataclass
class PreparedRDM:
    """A layer's RDM as standardised ranks (mean 0, norm 1) and the rows it was made from.
    Above the exact limit, the ranks are those of the sampled pairs' dissimilarities, and
    ``group_ranks`` standardises them within each of PAIR_GROUPS disjoint subsamples."""

    data: np.ndarray
    ranks: np.ndarray  # condensed upper triangle (or the sampled pairs), standardised ranks
    group_ranks: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.data.shape[0]

    @property
    def sampled(self) -> bool:
        return self.group_ranks is not None


def average_ranks(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1-based ranks, ties given the mean of their ranks: ``scipy.stats.rankdata(values,
    method="average")``, but faster (scipy sorts stably, which averaging does not need) and in
    less memory: about two arrays besides ``values`` and ``out``, which may be ``values``."""
    order = np.argsort(values)
    work = values[order]
    new_run = np.empty(work.size, dtype=bool)  # first of a run of equal values
    new_run[:1] = True
    np.not_equal(work[1:], work[:-1], out=new_run[1:])
    for start in range(0, work.size, BLOCK_ENTRIES):  # rank = position + 1, no temporary
        stop = min(work.size, start + BLOCK_ENTRIES)
        work[start:stop] = np.arange(start + 1, stop + 1)
    in_tie = ~new_run
    in_tie[:-1] |= in_tie[1:]  # also the first of each run of two or more
    tied = np.flatnonzero(in_tie)
    if tied.size:
        starts = new_run[tied]
        run = np.cumsum(starts) - 1
        first = tied[starts]
        work[tied] = (first + (np.bincount(run) + 1) / 2.0)[run]
    if out is None:
        out = np.empty(values.size)
    out[order] = work
    return out


def _standardised_ranks(rdm: np.ndarray, scale: float, name: str) -> np.ndarray:
    """Average ranks of the RDM, centred and scaled to unit norm, after snapping it to a grid
    of TIE_RESOLUTION × ``scale``: round-off (about 1e-15 relative) would otherwise rank
    mathematically equal dissimilarities in arbitrary order. Overwrites ``rdm``."""
    if scale > 0:
        rdm /= TIE_RESOLUTION * scale
        np.rint(rdm, out=rdm)
    if np.ptp(rdm) == 0:
        raise InputError(
            f"{name}: all dissimilarities between samples are equal; the RDM has no ranking"
        )
    ranks = average_ranks(rdm, out=rdm)
    ranks -= (ranks.size + 1) / 2.0  # the mean of average ranks, ties or not
    ranks /= np.linalg.norm(ranks)
    return ranks


def _condensed_index(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Position of entry (i, j), i ≠ j, in the condensed upper triangle of an n × n matrix."""
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    return n * lo - lo * (lo + 1) // 2 + hi - lo - 1


class RSA(Measure):
    """Spearman correlation between the correlation-distance RDMs of two spaces."""

    id = "rsa/correlation-spearman"
    name = "RSA (correlation distance, Spearman)"
    reference = "Kriegeskorte et al. 2008"
    range = (-1.0, 1.0)
    invariant_to: tuple[str, ...] = ("permutation of units", "isotropic scaling")
    min_samples = MIN_SAMPLES
    rdm_metric: ClassVar[str] = "correlation"

    def __init__(self, max_samples: int = MAX_SAMPLES, sampled_pairs: int = SAMPLED_PAIRS):
        self.max_samples = max_samples
        self.sampled_pairs = sampled_pairs

    def prepare(self, x: np.ndarray, name: str = "activations") -> PreparedRDM:
        x = check_activations(x, name, self.min_samples)
        data = x.astype(np.float64)
        if x.shape[0] > self.max_samples:
            return self._prepare_sampled(data, name)
        rdm = condensed_rdm(data, self.rdm_metric, name, torch_device(self.device))
        return PreparedRDM(data, _standardised_ranks(rdm, self._scale(rdm), name))

    def _scale(self, rdm: np.ndarray) -> float:
        """Correlation distances lie in [0, 2]; squared distances are compared with the
        largest."""
        return 2.0 if self.rdm_metric == "correlation" else float(rdm.max())

    def _prepare_sampled(self, data: np.ndarray, name: str) -> PreparedRDM:
        pairs = sampled_pairs(len(data), self.sampled_pairs)
        rdm = sampled_rdm(data, pairs, self.rdm_metric, name, torch_device(self.device))
        scale = self._scale(rdm)
        groups = np.empty_like(rdm)
        for g in range(PAIR_GROUPS):
            groups[g::PAIR_GROUPS] = _standardised_ranks(rdm[g::PAIR_GROUPS].copy(), scale, name)
        return PreparedRDM(data, _standardised_ranks(rdm, scale, name), groups)

    def score(self, a: PreparedRDM, b: PreparedRDM) -> float:
        if a.n != b.n:
            raise InputError(f"the two spaces have different numbers of samples: {a.n} vs {b.n}")
        return min(1.0, max(-1.0, float(np.dot(a.ranks, b.ranks))))

    def sampling_sd(self, a: PreparedRDM, b: PreparedRDM) -> float:
        """The standard deviation of a sampled-pairs value around the all-pairs one: the
        spread of the values over PAIR_GROUPS disjoint subsamples, divided by √PAIR_GROUPS."""
        if a.group_ranks is None or b.group_ranks is None:
            return 0.0
        values = [
            np.dot(a.group_ranks[g::PAIR_GROUPS], b.group_ranks[g::PAIR_GROUPS])
            for g in range(PAIR_GROUPS)
        ]
        return float(np.std(values, ddof=1) / np.sqrt(PAIR_GROUPS))

    def permute(self, prepared: PreparedRDM, perm: np.ndarray) -> PreparedRDM:
        """Sample a of the result is sample perm[a]: entry (a, b) of the permuted RDM is entry
        (perm[a], perm[b]) of this one, and so are the ranks (same multiset of values). On
        sampled pairs the permuted layer holds other dissimilarities: computed afresh."""
        if prepared.sampled:
            return self.prepare(prepared.data[perm])
        n = prepared.n
        perm = np.asarray(perm)
        ranks = np.empty_like(prepared.ranks)
        filled = 0
        for start, stop, mask in _row_blocks(n):
            rows = np.broadcast_to(perm[start:stop, None], mask.shape)[mask]
            columns = np.broadcast_to(perm[None, :], mask.shape)[mask]
            ranks[filled : filled + rows.size] = prepared.ranks[_condensed_index(n, rows, columns)]
            filled += rows.size
        return PreparedRDM(prepared.data[perm], ranks)

    def estimator(self, a: PreparedRDM, b: PreparedRDM) -> str:
        if not a.sampled:
            return f"{self.rdm_metric} RDM, Spearman over all {a.ranks.size:,} pairs"
        total = a.n * (a.n - 1) // 2
        return (
            f"{self.rdm_metric} RDM, Spearman over a uniform sample of {a.ranks.size:,} of the "
            f"{total:,} pairs of samples (seed {PAIR_SEED}; exact above n = "
            f"{self.max_samples:,} is out of memory); sampling sd "
            f"{self.sampling_sd(a, b):.1e} around the all-pairs value"
        )

    def baseline_note(self, n_permutations: int) -> str:
        return f"{n_permutations} row shuffles (sampled pairs above n = {self.max_samples:,})"


class EuclideanRSA(RSA):
    """Spearman correlation between the Euclidean-distance RDMs of two spaces."""

    id = "rsa/euclidean-spearman"
    name = "RSA (Euclidean distance, Spearman)"
    invariant_to = ("orthogonal", "permutation of units", "isotropic scaling", "translation")
    rdm_metric = "euclidean"


def rsa(x: np.ndarray, y: np.ndarray, metric: str = "correlation") -> float:
    """Spearman correlation of the RDMs of ``x`` (n × p) and ``y`` (n × q)."""
    measures = {"correlation": RSA, "euclidean": EuclideanRSA}
    if metric not in measures:
        raise InputError(f"unknown RDM metric {metric!r}: use 'correlation' or 'euclidean'")
    measure = measures[metric]()
    return measure.score(measure.prepare(x, "X"), measure.prepare(y, "Y"))
