"""Representational similarity analysis (Kriegeskorte et al. 2008, "Representational Similarity
Analysis – Connecting the Branches of Systems Neuroscience", Front. Syst. Neurosci.).

Each space gets a representational dissimilarity matrix (RDM) over its samples; two spaces are
compared by the Spearman correlation of their RDMs' upper triangles (k = 1, the diagonal is
excluded), or by their Pearson correlation (the Pearson forms, below). Spearman is Pearson's
correlation of the ranks, ties given their average rank (as
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

Pearson forms (``rsa/correlation-pearson``, ``rsa/euclidean-pearson``): Pearson's correlation
of the two upper triangles, with *Euclidean distances* (not squared: Pearson, unlike Spearman,
sees the square root) or correlation distances, as ``scipy.stats.pearsonr`` on
``scipy.spatial.distance.pdist`` vectors. Up to ``max_samples`` samples (20,000) each layer's
condensed RDM is prepared centred and scaled to unit norm, so a pair is one dot product. Above
it the value is still exact, with no RDM held: :func:`streamed_moments` walks row blocks of b
samples (b = BLOCK_ENTRIES // n, 41 at n = 50,000), computes both layers' dissimilarities of
those rows with every later sample by matrix products (memory O(b·n)), and merges each block's
means and centred sums of squares and products into running totals (Chan, Golub & LeVeque's
pairwise update), which avoids the cancellation of Σa² − (Σa)²/N. A pair then costs
O(n²·(p + q)). The tests hold it to 1e-10 of ``pearsonr`` on ``pdist`` and to 1e-12 across
block sizes, on an RDM whose mean is 1e4 times its spread as well. The permutation baseline of
the Pearson forms is exact (Mantel's moments over all n! row permutations, from each RDM's row
sums, which the same pass accumulates): no permuted layer is scored.

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

__all__ = [
    "RSA",
    "EuclideanPearsonRSA",
    "EuclideanRSA",
    "PearsonRSA",
    "condensed_rdm",
    "rsa",
    "streamed_moments",
]

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
        block = _dissimilarities(products, squares, z.shape[1], slice(start, stop), slice(None))
        values = block[mask]
        out[filled : filled + values.size] = values
        filled += values.size
    return out


def _dissimilarities(
    products: Callable[[Any, Any], np.ndarray],
    squares: np.ndarray | None,
    features: int,
    rows: slice,
    columns: slice,
) -> np.ndarray:
    """The dissimilarities (as :func:`condensed_rdm` defines them) between the samples
    ``rows`` and ``columns``, a matrix, computed in place of their inner products.

    A squared distance sᵢ + sⱼ − 2 zᵢ·zⱼ within its round-off bound, (d + 2) ε (sᵢ + sⱼ) for
    d features, is 0: duplicated samples (a bootstrap resample's) are at distance 0, not at
    the square root of round-off (1e-8 of the scale), which Pearson of distances would see."""
    block = products(rows, columns)
    if squares is None:
        return np.subtract(1.0, block, out=block)
    block *= 2.0
    sums = squares[rows, None] + squares[None, columns]
    np.subtract(sums, block, out=block)
    sums *= (features + 2) * np.finfo(np.float64).eps
    block[block <= sums] = 0.0
    return block


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


Rows = tuple[np.ndarray, np.ndarray | None]  # _rows_for's rows and squared norms


@dataclass
class Moments:
    """Count, means, centred sums of squares and of products of paired values (a, b), merged
    block by block with the pairwise update of Chan, Golub & LeVeque (1979, "Updating formulae
    and a pairwise algorithm for computing sample variances")."""

    count: int = 0
    mean_a: float = 0.0
    mean_b: float = 0.0
    squares_a: float = 0.0
    squares_b: float = 0.0
    products: float = 0.0

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        """Merge the paired values ``a``, ``b`` (contiguous, one length; centred in place)."""
        m = a.size
        if m == 0:
            return
        mean_a, mean_b = float(a.mean()), float(b.mean())
        a -= mean_a
        b -= mean_b
        total = self.count + m
        delta_a, delta_b = mean_a - self.mean_a, mean_b - self.mean_b
        weight = self.count * m / total
        self.squares_a += float(np.dot(a, a)) + delta_a * delta_a * weight
        self.squares_b += float(np.dot(b, b)) + delta_b * delta_b * weight
        self.products += float(np.dot(a, b)) + delta_a * delta_b * weight
        self.mean_a += delta_a * m / total
        self.mean_b += delta_b * m / total
        self.count = total


def streamed_moments(
    a: Rows, b: Rows, block_rows: int, distances: bool, device: str | None = None
) -> tuple[Moments, list[np.ndarray]]:
    """The moments of the paired upper triangles (k = 1) of two layers' RDMs, and each RDM's
    row sums (diagonal excluded), from their rows (:func:`_rows_for`), ``block_rows`` samples
    at a time: each block's dissimilarities with itself (strict upper triangle) and with every
    later sample, never the whole RDM. With ``distances``, Euclidean distances (the square
    root of the squared ones)."""
    n = len(a[0])
    layers = [(_products(z, device), squares, z.shape[1]) for z, squares in (a, b)]
    moments = Moments()
    row_sums = [np.zeros(n), np.zeros(n)]
    for start in range(0, n - 1, block_rows):
        stop = min(n, start + block_rows)
        rows, upper = slice(start, stop), np.triu_indices(stop - start, 1)
        within, later = [], []
        for (products, squares, features), sums in zip(layers, row_sums, strict=True):
            square = _dissimilarities(products, squares, features, rows, rows)
            rectangle = _dissimilarities(products, squares, features, rows, slice(stop, n))
            if distances:
                np.sqrt(square, out=square)
                np.sqrt(rectangle, out=rectangle)
            square = np.triu(square, 1)
            sums[rows] += square.sum(axis=1) + square.sum(axis=0) + rectangle.sum(axis=1)
            sums[stop:] += rectangle.sum(axis=0)
            within.append(square[upper])
            later.append(rectangle.ravel())
        moments.add(*within)
        moments.add(*later)
    return moments, row_sums


def _row_sums(values: np.ndarray, n: int) -> np.ndarray:
    """The row sums of the symmetric n × n matrix whose condensed upper triangle is
    ``values`` (diagonal 0), one row block at a time."""
    sums = np.zeros(n)
    filled = 0
    for start, stop, mask in _row_blocks(n):
        block = np.zeros(mask.shape)
        count = int(np.count_nonzero(mask))
        block[mask] = values[filled : filled + count]
        filled += count
        sums[start:stop] += block.sum(axis=1)
        sums += block.sum(axis=0)
    return sums


@dataclass
class PearsonRDM:
    """A layer for Pearson RSA: up to the dense limit its condensed RDM centred and scaled to
    unit norm, above it the rows (:func:`_rows_for`) its RDM is streamed from when scored."""

    data: np.ndarray
    name: str
    rows: Rows | None
    standardised: np.ndarray | None
    # Σᵢ Rᵢ² / Σ_{i<j} (aᵢⱼ − ā)², Rᵢ the row sums of the centred RDM: all the permutation
    # moments need of a layer. Streamed layers get it when first scored.
    row_sums_ratio: float | None = None

    @property
    def n(self) -> int:
        return self.data.shape[0]


def _refuse_flat(name: str, metric: str, spread: float, mean: float) -> None:
    """A layer whose dissimilarities are all equal (their sd within TIE_RESOLUTION of the RDM's
    scale: round-off) has no Pearson correlation with anything. The scale is 2 for correlation
    distances, whose round-off is relative to 1 (all 0 when every sample is an affine copy of
    one pattern), and the mean for Euclidean distances."""
    if spread <= TIE_RESOLUTION * (2.0 if metric == "correlation" else mean):
        raise InputError(
            f"{name}: all dissimilarities between samples are equal; the RDM has no correlation"
        )


class PearsonRSA(Measure):
    """Pearson correlation between the correlation-distance RDMs of two spaces."""

    id = "rsa/correlation-pearson"
    name = "RSA (correlation distance, Pearson)"
    reference = "Kriegeskorte et al. 2008"
    range = (-1.0, 1.0)
    invariant_to: tuple[str, ...] = ("permutation of units", "isotropic scaling")
    min_samples = MIN_SAMPLES
    exact_baseline = True
    rdm_metric: ClassVar[str] = "correlation"

    def __init__(self, max_samples: int = MAX_SAMPLES):
        self.max_samples = max_samples  # the largest n whose RDM is prepared whole

    def block_rows(self, n: int) -> int:
        """Samples per row block of the streamed form."""
        return max(1, BLOCK_ENTRIES // n)

    def prepare(self, x: np.ndarray, name: str = "activations") -> PearsonRDM:
        data = check_activations(x, name, self.min_samples).astype(np.float64)
        if len(data) > self.max_samples:
            return PearsonRDM(data, name, _rows_for(data, self.rdm_metric, name), None)
        rdm = condensed_rdm(data, self.rdm_metric, name, torch_device(self.device))
        if self.rdm_metric == "euclidean":
            np.sqrt(rdm, out=rdm)
        mean = float(rdm.mean())
        rdm -= mean
        norm = float(np.linalg.norm(rdm))
        _refuse_flat(name, self.rdm_metric, norm / np.sqrt(rdm.size), mean)
        rdm /= norm
        row_sums = _row_sums(rdm, len(data))
        return PearsonRDM(data, name, None, rdm, float(row_sums @ row_sums))

    def score(self, a: PearsonRDM, b: PearsonRDM) -> float:
        if a.n != b.n:
            raise InputError(f"the two spaces have different numbers of samples: {a.n} vs {b.n}")
        if a.standardised is not None and b.standardised is not None:
            value = float(np.dot(a.standardised, b.standardised))
        else:
            assert a.rows is not None and b.rows is not None  # same n: both streamed
            moments, row_sums = streamed_moments(
                a.rows,
                b.rows,
                self.block_rows(a.n),
                self.rdm_metric == "euclidean",
                torch_device(self.device),
            )
            for layer, squares, mean, sums in [
                (a, moments.squares_a, moments.mean_a, row_sums[0]),
                (b, moments.squares_b, moments.mean_b, row_sums[1]),
            ]:
                _refuse_flat(layer.name, self.rdm_metric, np.sqrt(squares / moments.count), mean)
                centred = sums - (layer.n - 1) * mean
                layer.row_sums_ratio = float(centred @ centred) / squares
            value = moments.products / np.sqrt(moments.squares_a * moments.squares_b)
        return min(1.0, max(-1.0, value))

    def permutation_moments(self, a: PearsonRDM, b: PearsonRDM) -> tuple[float, float]:
        """Exact mean and sd of the score over all n! row permutations of ``b`` (Mantel 1967,
        "The detection of disease clustering and a generalized regression approach", Cancer
        Research 27: the moments of Γ = Σ_{i≠j} aᵢⱼ bᵢⱼ). Permuting samples permutes the
        entries, so the means and sums of squares stay: the mean is 0 (centred entries) and,
        with q = Σᵢ Rᵢ² / Σ_{i<j} (aᵢⱼ − ā)² of each layer (``row_sums_ratio``),

            Var r = [8 / (n(n − 1)) + 4 (q_a − 2)(q_b − 2) / (n(n − 1)(n − 2))
                     + 16 (1 − q_a)(1 − q_b) / (n(n − 1)(n − 2)(n − 3))] / 4
        """
        if a.row_sums_ratio is None or b.row_sums_ratio is None:
            self.score(a, b)  # a streamed pair: its pass gives both layers' row sums
        q_a, q_b = a.row_sums_ratio, b.row_sums_ratio
        assert q_a is not None and q_b is not None
        n = a.n
        pairs = n * (n - 1)
        variance = (
            8 / pairs
            + 4 * (q_a - 2) * (q_b - 2) / (pairs * (n - 2))
            + 16 * (1 - q_a) * (1 - q_b) / (pairs * (n - 2) * (n - 3))
        ) / 4
        return 0.0, float(np.sqrt(max(variance, 0.0)))

    def estimator(self, a: PearsonRDM, b: PearsonRDM) -> str:
        dissimilarity = "Euclidean" if self.rdm_metric == "euclidean" else "correlation"
        pairs = a.n * (a.n - 1) // 2
        if a.standardised is not None and b.standardised is not None:
            return f"{dissimilarity} RDM, Pearson over all {pairs:,} pairs"
        return (
            f"{dissimilarity} RDM, Pearson over all {pairs:,} pairs: exact, streamed in blocks "
            f"of {self.block_rows(a.n)} rows (above n = {self.max_samples:,} no RDM is held)"
        )


class EuclideanPearsonRSA(PearsonRSA):
    """Pearson correlation between the Euclidean-distance RDMs of two spaces."""

    id = "rsa/euclidean-pearson"
    name = "RSA (Euclidean distance, Pearson)"
    invariant_to = ("orthogonal", "permutation of units", "isotropic scaling", "translation")
    rdm_metric = "euclidean"


def rsa(
    x: np.ndarray, y: np.ndarray, metric: str = "correlation", comparison: str = "spearman"
) -> float:
    """RSA of ``x`` (n × p) and ``y`` (n × q): the ``comparison`` ("spearman" or "pearson")
    correlation of their RDMs of ``metric`` ("correlation" or "euclidean")."""
    if metric not in ("correlation", "euclidean"):
        raise InputError(f"unknown RDM metric {metric!r}: use 'correlation' or 'euclidean'")
    measures: dict[str, dict[str, type[Measure]]] = {
        "spearman": {"correlation": RSA, "euclidean": EuclideanRSA},
        "pearson": {"correlation": PearsonRSA, "euclidean": EuclideanPearsonRSA},
    }
    if comparison not in measures:
        raise InputError(f"unknown RDM comparison {comparison!r}: use 'spearman' or 'pearson'")
    measure = measures[comparison][metric]()
    return measure.score(measure.prepare(x, "X"), measure.prepare(y, "Y"))
