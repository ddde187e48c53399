"""Relative representations (Moschella et al. 2023, "Relative representations enable zero-shot
latent space communication").

Each sample is represented by its cosine similarity to a set of anchor samples:
rᵢ = (cos(xᵢ, x_a₁), …, cos(xᵢ, x_aₘ)). The anchors are the same samples in both spaces (chosen
by index), so the relative vectors of X and of Y live in one m-dimensional space whatever p and
q are. Spaces are compared by the mean cosine similarity between a sample's relative vector in X and
in Y, over the samples that are not anchors: an anchor's relative vector holds its cosine 1 with
itself in both spaces, which would lift the score of unrelated spaces (the authors' demo
averages over all samples). As in the paper, the vectors are not centred: the measure is
invariant to orthogonal transforms and to rescaling of either space (even per sample), not to
translation — so non-negative (post-ReLU) activations, whose cosines are all positive, score
high even when unrelated; the permutation baseline shows it. The paper uses 300 random anchors;
we take min(300, n // 2), which leaves at least half the samples to score.

A sample with zero norm, or whose relative vector is zero, has no direction: its cosines are 0
(never NaN), and it is counted in the estimator note.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.errors import InputError
from analysis.measures.engine import Measure, check_activations
from analysis.parameters import Parameter

MIN_SAMPLES = 4
MAX_ANCHORS = 300


def choose_anchors(n: int, m: int, seed: int) -> np.ndarray:
    """``m`` distinct sample indices out of ``n``, seeded, ascending."""
    if not 1 <= m < n:
        raise InputError(f"choose between 1 and {n - 1} anchors out of {n} samples, not {m}")
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


def _unit_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit norm in float64, zero rows left zero; and which rows were zero."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    zero = norms == 0
    return x / np.where(zero, 1.0, norms)[:, None], zero


def relative_representation(x: np.ndarray, anchors_idx: np.ndarray) -> np.ndarray:
    """The n × m cosine similarities of every sample (row of ``x``) to the anchor samples
    ``x[anchors_idx]``; 0 where a sample or an anchor is the zero vector."""
    return _cosines(_unit_rows(x)[0], anchors_idx)


def _cosines(unit: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    return np.clip(unit @ unit[anchors].T, -1.0, 1.0)


@dataclass
class PreparedLayer:
    """Unit-norm rows, the anchors, and the unit-norm relative vectors of the samples."""

    unit: np.ndarray  # (n, d)
    anchors: np.ndarray  # (m,) sample indices
    relative: np.ndarray  # (n, m), rows scaled to unit norm (zero rows left zero)
    zero_samples: int  # samples without direction: zero activations or zero relative vector

    @property
    def data(self) -> np.ndarray:
        return self.unit


class RelativeSimilarity(Measure):
    """Mean cosine similarity between the relative representations of the same samples."""

    id = "relative/cosine"
    name = "Relative representations (cosine)"
    reference = "Moschella et al. 2023"
    range = (-1.0, 1.0)
    invariant_to = ("orthogonal", "isotropic scaling")
    min_samples = MIN_SAMPLES

    parameters = (
        Parameter(
            "n_anchors",
            "int",
            None,
            f"anchor samples (default: min({MAX_ANCHORS}, n / 2))",
            minimum=1,
            nullable=True,
        ),
    )

    def __init__(self, n_anchors: int | None = None, seed: int = 0) -> None:
        self.n_anchors = n_anchors
        self.seed = seed

    def anchors(self, n: int) -> np.ndarray:
        """The anchor indices for ``n`` samples: the same for every layer of a comparison."""
        m = min(MAX_ANCHORS, n // 2) if self.n_anchors is None else self.n_anchors
        return choose_anchors(n, m, self.seed)

    def prepare(self, x: np.ndarray, name: str = "activations") -> PreparedLayer:
        x = check_activations(x, name, self.min_samples)
        unit, zero = _unit_rows(x)
        if zero.all():
            raise InputError(f"{name}: every sample is the zero vector; cosines are undefined")
        return self._relative(unit, self.anchors(len(unit)))

    @staticmethod
    def _relative(unit: np.ndarray, anchors: np.ndarray) -> PreparedLayer:
        relative, zero = _unit_rows(_cosines(unit, anchors))
        return PreparedLayer(unit, anchors, relative, int(zero.sum()))

    def permute(self, prepared: PreparedLayer, perm: np.ndarray) -> PreparedLayer:
        """The layer as if its rows had been permuted before preparing: the anchors stay at the
        same row indices, so they become other samples of this space while the other side keeps
        its own. That is the null model of the baseline: a space whose samples, anchors included,
        have nothing to do with the other space's (and the same as ``prepare(rows[perm])``)."""
        return self._relative(prepared.unit[perm], prepared.anchors)

    def per_sample(self, a: PreparedLayer, b: PreparedLayer) -> tuple[np.ndarray, np.ndarray]:
        """``(samples, values)``: the indices of the scored samples (all but the anchors) and the
        cosine similarity of each one's relative vectors in the two spaces."""
        if len(a.anchors) != len(b.anchors) or (a.anchors != b.anchors).any():
            raise InputError("the two spaces were prepared with different anchors")
        samples = np.setdiff1d(np.arange(len(a.relative)), a.anchors)
        values = np.sum(a.relative[samples] * b.relative[samples], axis=1)
        return samples, np.clip(values, -1.0, 1.0)

    def score(self, a: PreparedLayer, b: PreparedLayer) -> float:
        return float(np.mean(self.per_sample(a, b)[1]))

    def estimator(self, a: PreparedLayer, b: PreparedLayer) -> str:
        notes = [f"{len(a.anchors)} anchors (seed {self.seed})"]
        for side, p in (("X", a), ("Y", b)):
            if p.zero_samples:
                notes.append(f"{p.zero_samples} samples without direction in {side} (cosine 0)")
        return "; ".join(notes)


def relative_similarity(
    x: np.ndarray, y: np.ndarray, n_anchors: int | None = None, seed: int = 0
) -> float:
    """Mean cosine similarity of the relative representations of ``x`` and ``y`` (same rows)."""
    if len(x) != len(y):
        raise InputError(f"the two spaces have different numbers of samples: {len(x)} vs {len(y)}")
    measure = RelativeSimilarity(n_anchors, seed)
    return measure.score(measure.prepare(x, "X"), measure.prepare(y, "Y"))
