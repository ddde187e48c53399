"""Unit matching (Li et al. 2016, "Convergent Learning: Do different neural networks learn the
same representations?").

Two layers X (n × p) and Y (n × q) are compared unit by unit through the p × q matrix of Pearson
correlations between their units over the same samples. Li et al. look at it two ways:

- **best match** (one-to-many): each unit's highest correlation with any unit of the other layer;
- **one-to-one matching**: the assignment of units that maximises the total correlation
  (Hungarian method), which pairs min(p, q) units.

The measure ``units/hungarian`` is the mean correlation of the one-to-one matching. It is
invariant to permuting the units and to per-unit positive scaling and shifts, but not to
rotations of the space: a rotated copy of a layer spreads every unit over several units.
Correlations are signed, as in the paper: units are paired by correlation, not by its absolute
value, so a unit and its negation are not counted as a match (for Y = −X the matching pairs
each unit with a weakly positively correlated one instead; with a single unit each, it scores −1).

A constant unit has no correlation with anything; it is given correlation 0 with every unit
(never NaN) and reported by :func:`constant_units` and in :class:`UnitMatchingResult`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from analysis.errors import InputError
from analysis.measures.engine import Measure, check_activations

MIN_SAMPLES = 4


def constant_units(x: np.ndarray) -> np.ndarray:
    """Indices of the columns of ``x`` that do not vary across samples."""
    return np.flatnonzero(np.ptp(np.asarray(x), axis=0) == 0)


def _standardised(x: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit norm in float64; constant columns set to zero."""
    centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    norms = np.linalg.norm(centred, axis=0)
    norms[constant_units(x)] = np.inf  # round-off left by centring a constant column → 0
    return centred / norms


def unit_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The p × q Pearson correlations between the units (columns) of ``x`` and ``y``.

    Constant units correlate 0 with everything; list them with :func:`constant_units`.
    """
    x = check_activations(x, "X", 2)
    y = check_activations(y, "Y", 2)
    if len(x) != len(y):
        raise InputError(f"the two spaces have different numbers of samples: {len(x)} vs {len(y)}")
    return _correlate(_standardised(x), _standardised(y))


def _correlate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.clip(x.T @ y, -1.0, 1.0)


def best_match(corr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's highest correlation with any unit of the other side (one-to-many):
    ``(best for each of the p units of X, best for each of the q units of Y)``."""
    return corr.max(axis=1), corr.max(axis=0)


def hungarian_match(corr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one-to-one matching of units that maximises the total correlation.

    Returns ``(rows, cols, matched)``: unit ``rows[k]`` of X is paired with unit ``cols[k]`` of
    Y at correlation ``matched[k]``; min(p, q) pairs, ``rows`` ascending.
    """
    rows, cols = linear_sum_assignment(corr, maximize=True)
    return rows, cols, corr[rows, cols]


@dataclass
class PreparedLayer:
    """Columns centred and scaled to unit norm (constant ones zero), and which were constant."""

    standardised: np.ndarray
    constant: np.ndarray

    @property
    def data(self) -> np.ndarray:
        return self.standardised


@dataclass
class UnitMatchingResult:
    """What the UI shows: the matched-correlation distribution and the best matches."""

    rows: np.ndarray  # unit of X in each one-to-one pair
    cols: np.ndarray  # its partner in Y
    matched: np.ndarray  # correlation of each pair
    best_a: np.ndarray  # (p,) best correlation of each unit of X with any unit of Y
    best_b: np.ndarray  # (q,) best correlation of each unit of Y with any unit of X
    constant_a: np.ndarray  # indices of constant units of X (correlation 0 throughout)
    constant_b: np.ndarray

    @property
    def value(self) -> float:
        return float(np.mean(self.matched))


class UnitMatching(Measure):
    """Mean correlation of the one-to-one unit matching (Li et al. 2016)."""

    id = "units/hungarian"
    name = "Unit matching (Hungarian)"
    reference = "Li et al. 2016"
    # A mean of correlations: −1 (every unit anti-correlated with its partner) to 1.
    range = (-1.0, 1.0)
    invariant_to = ("permutation of units", "isotropic scaling", "translation")
    min_samples = MIN_SAMPLES

    def prepare(self, x: np.ndarray, name: str = "activations") -> PreparedLayer:
        x = check_activations(x, name, self.min_samples)
        constant = constant_units(x)
        if len(constant) == x.shape[1]:
            raise InputError(
                f"{name}: every unit is constant across samples; unit matching is undefined"
            )
        return PreparedLayer(_standardised(x), constant)

    def permute(self, prepared: PreparedLayer, perm: np.ndarray) -> PreparedLayer:
        """Rows permuted: columns stay centred and unit-norm."""
        return PreparedLayer(prepared.standardised[perm], prepared.constant)

    def matching(self, a: PreparedLayer, b: PreparedLayer) -> UnitMatchingResult:
        """The one-to-one matching, best matches and constant units of a pair of layers."""
        if len(a.standardised) != len(b.standardised):
            raise InputError(
                "the two spaces have different numbers of samples: "
                f"{len(a.standardised)} vs {len(b.standardised)}"
            )
        corr = _correlate(a.standardised, b.standardised)
        rows, cols, matched = hungarian_match(corr)
        best_a, best_b = best_match(corr)
        return UnitMatchingResult(rows, cols, matched, best_a, best_b, a.constant, b.constant)

    def score(self, a: PreparedLayer, b: PreparedLayer) -> float:
        return self.matching(a, b).value

    def estimator(self, a: PreparedLayer, b: PreparedLayer) -> str:
        notes = [
            f"{len(p.constant)} constant unit{'s' if len(p.constant) != 1 else ''} in {side} "
            "(correlation 0)"
            for side, p in (("X", a), ("Y", b))
            if len(p.constant)
        ]
        return "; ".join(["Hungarian matching of Pearson correlations", *notes])
