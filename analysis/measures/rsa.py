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
and a few times that while ranking: layers with more than ``max_samples`` samples are refused.

Bootstrap resamples duplicate samples; the dissimilarity between two copies of one sample is 0
in both spaces and inflates the value slightly (a fraction of about 1/n of the entries).
rsatoolbox's pattern bootstrap (``RDMs.subsample_pattern``) marks those entries NaN and drops
them; here the engine's bias correction absorbs the shift.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from analysis.errors import InputError
from analysis.measures.engine import Measure, check_activations

__all__ = ["RSA", "EuclideanRSA", "condensed_rdm", "rsa"]

MIN_SAMPLES = 4
MAX_SAMPLES = 20_000
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


def condensed_rdm(
    x: np.ndarray, metric: str = "correlation", name: str = "activations"
) -> np.ndarray:
    """The upper triangle (k = 1, row by row, as ``scipy.spatial.distance.pdist``) of the RDM.

    ``metric="correlation"``: 1 − Pearson correlation between samples (rows); a sample that is
    constant across its features has no correlation and is refused. ``metric="euclidean"``:
    *squared* Euclidean distances (rank-equivalent to distances). Float64 throughout.
    """
    x = check_activations(x, name, 2).astype(np.float64)
    n = x.shape[0]
    if metric == "correlation":
        constant = np.flatnonzero(np.ptp(x, axis=1) == 0)
        if constant.size:
            raise InputError(
                f"{name}: {constant.size} sample(s) are constant across features (first: row "
                f"{constant[0]}); their correlation with other samples is undefined"
            )
        z = x - x.mean(axis=1, keepdims=True)
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        squares = None
    elif metric == "euclidean":
        z = x - x.mean(axis=0)  # translation changes no distance; centring limits cancellation
        squares = np.einsum("ij,ij->i", z, z)
    else:
        raise InputError(f"unknown RDM metric {metric!r}: use 'correlation' or 'euclidean'")
    out = np.empty(n * (n - 1) // 2)
    filled = 0
    for start, stop, mask in _row_blocks(n):
        block = z[start:stop] @ z.T
        if squares is None:
            block = 1.0 - block
        else:
            block = np.maximum(squares[start:stop, None] + squares[None, :] - 2.0 * block, 0.0)
        values = block[mask]
        out[filled : filled + values.size] = values
        filled += values.size
    return out


@dataclass
class PreparedRDM:
    """A layer's RDM as standardised ranks (mean 0, norm 1) and the rows it was made from."""

    data: np.ndarray
    ranks: np.ndarray  # condensed upper triangle, standardised average ranks

    @property
    def n(self) -> int:
        return self.data.shape[0]


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

    def __init__(self, max_samples: int = MAX_SAMPLES):
        self.max_samples = max_samples

    def prepare(self, x: np.ndarray, name: str = "activations") -> PreparedRDM:
        x = check_activations(x, name, self.min_samples)
        n = x.shape[0]
        if n > self.max_samples:
            entries = n * (n - 1) // 2
            raise InputError(
                f"{name}: RSA keeps n(n − 1)/2 = {entries:,} dissimilarities per layer "
                f"({entries * 8 / 1e9:.1f} GB at n = {n:,}); use at most {self.max_samples:,} "
                "samples (max_samples)"
            )
        data = x.astype(np.float64)
        rdm = condensed_rdm(data, self.rdm_metric, name)
        # correlation distances lie in [0, 2]; squared distances are compared with the largest
        scale = 2.0 if self.rdm_metric == "correlation" else float(rdm.max())
        return PreparedRDM(data, _standardised_ranks(rdm, scale, name))

    def score(self, a: PreparedRDM, b: PreparedRDM) -> float:
        if a.n != b.n:
            raise InputError(f"the two spaces have different numbers of samples: {a.n} vs {b.n}")
        return min(1.0, max(-1.0, float(np.dot(a.ranks, b.ranks))))

    def permute(self, prepared: PreparedRDM, perm: np.ndarray) -> PreparedRDM:
        """Sample a of the result is sample perm[a]: entry (a, b) of the permuted RDM is entry
        (perm[a], perm[b]) of this one, and so are the ranks (same multiset of values)."""
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
        return f"{self.rdm_metric} RDM, Spearman"


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
