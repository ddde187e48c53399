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

Beyond one-to-one (:func:`unit_matching_report`, after Li et al. 2016):

- **semi-matching**: each unit's best partner on the other side (:func:`semi_match`), for X → Y
  and Y → X; several units may share a partner;
- **share above t**: for a matching, the share of its pairs whose correlation is strictly above
  t, a non-increasing curve over t ∈ [0, 1], 1 below the smallest matched correlation
  (:func:`share_above`);
- **sparse prediction**: each unit y_j of Y (centred, unit norm) predicted from X's units
  (centred, unit norm) by the lasso, min_w (1/(2n))‖y_j − Xw‖² + α‖w‖₁ (no intercept: both are
  centred), along a path of α shared by all units (:func:`lasso_path`, coordinate descent). The
  error is the in-sample share of y_j's variance left unexplained, ‖y_j − Xw‖² / ‖y_j‖², against
  the number of non-zero weights (the "sparse, few-to-one" mappings of Li et al. 2016).
  The in-sample error only falls as the penalty falls, overfitting included, so beside it the
  **held-out error** (:func:`heldout_prediction`): the path fitted on a random training split
  (standardised with that split's means and norms) and scored on the other samples, as the
  share of each held-out unit's variance around its training mean left unexplained — 1 when
  predicting the training mean, above 1 when the weights fit noise;
- **best- and worst-matched pairs** of the one-to-one matching, with the samples that activate
  their unit of X most.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from analysis.errors import InputError
from analysis.measures.engine import Measure, check_activations

MIN_SAMPLES = 4
THRESHOLDS = tuple(float(t) for t in np.linspace(0.0, 1.0, 101))
"""Correlation thresholds of the share-above-t curves."""
N_ALPHAS = 30
TEST_FRACTION = 0.25
"""Share of the samples held out to score the sparse prediction (:func:`heldout_prediction`)."""
ALPHA_RATIO = 1e-3
"""The lasso path runs over N_ALPHAS penalties, geometric from α_max (the smallest penalty
with all weights zero for every unit) down to ALPHA_RATIO · α_max (scikit-learn's ``eps``)."""
LASSO_TOL = 1e-10
"""Coordinate descent stops at a penalty when a sweep moves no weight by more than
LASSO_TOL · max |w| (:func:`lasso_path`); the report's summary curves use REPORT_TOL."""
REPORT_TOL = 1e-7
MAX_SWEEPS = 10_000


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


def semi_match(corr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's best partner on the other side (one-to-many), ties to the lowest index:
    ``(partner in Y of each of the p units of X, partner in X of each of the q units of Y)``;
    their correlations are :func:`best_match`."""
    return corr.argmax(axis=1), corr.argmax(axis=0)


def share_above(correlations: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> np.ndarray:
    """For each threshold t, the share of ``correlations`` (one per matched pair or unit)
    strictly above t: 1 for t below their minimum, non-increasing in t."""
    values = np.sort(np.asarray(correlations, dtype=np.float64))
    if values.size == 0:
        raise InputError("no correlations to count")
    below = np.searchsorted(values, np.asarray(thresholds, dtype=np.float64), side="right")
    return 1.0 - below / values.size


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


def _paired_correlations(a: PreparedLayer, b: PreparedLayer) -> np.ndarray:
    if len(a.standardised) != len(b.standardised):
        raise InputError(
            "the two spaces have different numbers of samples: "
            f"{len(a.standardised)} vs {len(b.standardised)}"
        )
    return _correlate(a.standardised, b.standardised)


def _matching(corr: np.ndarray, a: PreparedLayer, b: PreparedLayer) -> UnitMatchingResult:
    rows, cols, matched = hungarian_match(corr)
    best_a, best_b = best_match(corr)
    return UnitMatchingResult(rows, cols, matched, best_a, best_b, a.constant, b.constant)


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
        return _matching(_paired_correlations(a, b), a, b)

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


def lasso_path(
    x: np.ndarray,
    y: np.ndarray,
    alphas: Sequence[float],
    *,
    tol: float = LASSO_TOL,
    max_sweeps: int = MAX_SWEEPS,
) -> np.ndarray:
    """Lasso weights of each column of ``y`` on the columns of ``x`` along the penalties
    ``alphas``: per target column y_j, the minimiser over w of

        (1/(2n)) ‖y_j − Xw‖²₂ + α ‖w‖₁,

    the objective of :func:`sklearn.linear_model.lasso_path` (no intercept: centre ``x`` and
    ``y`` first). Cyclic coordinate descent on the Gram matrix XᵀX/n with warm starts along
    the path (Friedman, Hastie & Tibshirani 2010, "Regularization Paths for Generalized Linear
    Models via Coordinate Descent"), all targets at once; see :func:`_lasso_steps`.

    Parameters
    ----------
    x : (n, p) array
    y : (n, q) array (or (n,), one target)
    alphas : penalties, in the order the path visits them (largest first is fastest)
    tol : a penalty is done when a sweep changes no weight by more than tol · max |w|
    max_sweeps : sweeps allowed per penalty

    Returns
    -------
    (n_alphas, p, q) weights (q dropped for a 1-D ``y``).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    one_target = y.ndim == 1
    y2 = y[:, None] if one_target else y
    if x.ndim != 2 or y2.ndim != 2 or len(x) != len(y2):
        raise InputError(f"x and y must be n × p and n × q arrays, got {x.shape} and {y.shape}")
    n = len(x)
    path = np.stack(
        [w.copy() for w, _, _ in _lasso_steps(x.T @ x / n, x.T @ y2 / n, alphas, tol, max_sweeps)]
    )
    return path[..., 0] if one_target else path


def _lasso_steps(
    gram: np.ndarray,
    cross: np.ndarray,
    alphas: Sequence[float],
    tol: float,
    max_sweeps: int,
) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
    """For each α, ``(W, GW, converged)``: the (p, q) weights minimising
    ½ wⱼᵀGwⱼ − cⱼᵀwⱼ + α‖wⱼ‖₁ per column (G = ``gram`` = XᵀX/n, C = ``cross`` = XᵀY/n), G @ W,
    and whether the sweeps converged. W is updated in place from one α to the next.

    Coordinate k of every target at once: ρ = C_k − G_k W + G_kk W_k, W_k ← S(ρ, α)/G_kk with S
    the soft threshold (an O(p·q) product per coordinate, never a drifting running residual).
    After a full sweep, sweeps run over the coordinates that are non-zero for some target until
    they settle, then a full sweep checks that no other coordinate moves (Friedman et al. 2010,
    section 2.6). Coordinates with G_kk = 0 (constant columns) stay 0.
    """
    p, q = cross.shape
    diag = np.diag(gram).copy()
    usable = np.flatnonzero(diag > 0)
    w = np.zeros((p, q))
    for alpha in alphas:
        if alpha < 0:
            raise InputError(f"lasso penalties must be non-negative, got {alpha}")
        sweeps, converged, coords = 0, False, usable
        while sweeps < max_sweeps:
            change = 0.0
            for k in coords:
                rho = cross[k] - gram[k] @ w + diag[k] * w[k]
                new = np.sign(rho) * np.maximum(np.abs(rho) - alpha, 0.0) / diag[k]
                step = float(np.abs(new - w[k]).max())
                if step > 0.0:
                    w[k] = new
                    change = max(change, step)
            sweeps += 1
            settled = change <= tol * float(np.abs(w).max(initial=0.0))
            if settled and coords is usable:
                converged = True
                break
            if settled:
                coords = usable  # the active set settled: check every coordinate
            else:
                coords = usable[np.abs(w[usable]).max(axis=1, initial=0.0) > 0]
                if coords.size == 0:
                    coords = usable
        yield w, gram @ w, converged


@dataclass
class SparsePrediction:
    """Lasso prediction of each unit of Y from X's units along a shared path of α (see the
    module docstring). Errors are in-sample shares of a unit's variance left unexplained (1 at
    no weights); constant units of Y are left out (their error is undefined)."""

    alphas: list[float]
    mean_error: list[float]  # per α, over the predicted units of Y
    mean_nonzeros: list[float]  # per α, the mean number of non-zero weights
    # k = 0, 1, …: mean over units of the smallest error reached with at most k non-zero
    # weights, up to the largest number of non-zeros on the path
    error_at_nonzeros: list[float]
    errors: np.ndarray = field(repr=False)  # (n_alphas, units predicted)
    nonzeros: np.ndarray = field(repr=False)  # (n_alphas, units predicted) int
    units: np.ndarray = field(repr=False)  # which units of Y were predicted
    converged: bool  # every α's coordinate descent met its tolerance


@dataclass
class HeldOutPrediction:
    """The lasso path of each unit of Y from X's units fitted on a training split and scored on
    the held-out samples (:func:`heldout_prediction`). An error is ‖y_te − X_te w‖² / ‖y_te‖²
    with both sides centred by the training split's means (X also scaled by its training
    norms): 1 for w = 0 (predicting the training mean), unbounded above."""

    train: np.ndarray = field(repr=False)  # indices of the training samples, ascending
    test: np.ndarray = field(repr=False)  # indices of the held-out samples, ascending
    alphas: list[float]  # the penalties, from the training split's α_max down
    mean_error: list[float]  # per α, the mean held-out error over the predicted units
    mean_train_error: list[float]  # per α, the same fits' mean error on the training split
    mean_nonzeros: list[float]  # per α, the mean number of non-zero weights
    # k = 0, 1, …: mean over units of the held-out error of the least-penalised fit with at
    # most k non-zero weights (chosen by its sparsity alone, never by its held-out error)
    error_at_nonzeros: list[float]
    errors: np.ndarray = field(repr=False)  # (n_alphas, units predicted) held-out errors
    nonzeros: np.ndarray = field(repr=False)  # (n_alphas, units predicted) int
    units: np.ndarray = field(repr=False)  # which units of Y were predicted
    converged: bool


@dataclass
class UnitPair:
    """A unit of X, its one-to-one partner in Y, their correlation, and the indices of the
    samples on which the unit of X is most active (largest first, ties by index)."""

    a: int
    b: int
    correlation: float
    top_samples: list[int]


@dataclass
class UnitMatchingReport:
    """Unit matching beyond one-to-one (:func:`unit_matching_report`) for one layer pair."""

    n: int
    p: int  # units of X
    q: int  # units of Y
    hungarian: UnitMatchingResult
    partner_a: np.ndarray  # (p,) best partner in Y of each unit of X (semi-matching X → Y)
    partner_b: np.ndarray  # (q,) best partner in X of each unit of Y (semi-matching Y → X)
    thresholds: list[float]
    share_hungarian: list[float]  # share of the min(p, q) one-to-one pairs above each t
    share_semi_a: list[float]  # share of X's units whose best partner is above each t
    share_semi_b: list[float]  # share of Y's units whose best partner is above each t
    sparse: SparsePrediction
    heldout: HeldOutPrediction | None  # None when too few samples to hold any out
    best_pairs: list[UnitPair]  # highest one-to-one correlations first
    worst_pairs: list[UnitPair]  # lowest first
    warnings: list[str]

    def to_json(self) -> dict:
        """A JSON-serialisable dict for a page: per-unit arrays as lists, the sparse
        prediction's summary curves (not its per-unit arrays)."""
        h, sparse = self.hungarian, self.sparse
        return {
            "n": self.n,
            "p": self.p,
            "q": self.q,
            "hungarian": {
                "rows": h.rows.tolist(),
                "cols": h.cols.tolist(),
                "matched": h.matched.tolist(),
                "mean": h.value,
            },
            "semi_a": {"partner": self.partner_a.tolist(), "correlation": h.best_a.tolist()},
            "semi_b": {"partner": self.partner_b.tolist(), "correlation": h.best_b.tolist()},
            "constant_a": h.constant_a.tolist(),
            "constant_b": h.constant_b.tolist(),
            "thresholds": list(self.thresholds),
            "share_hungarian": list(self.share_hungarian),
            "share_semi_a": list(self.share_semi_a),
            "share_semi_b": list(self.share_semi_b),
            "sparse": {
                "alphas": sparse.alphas,
                "mean_error": sparse.mean_error,
                "mean_nonzeros": sparse.mean_nonzeros,
                "error_at_nonzeros": sparse.error_at_nonzeros,
                "converged": sparse.converged,
            },
            "heldout": None
            if self.heldout is None
            else {
                "n_train": int(len(self.heldout.train)),
                "n_test": int(len(self.heldout.test)),
                "n_units": int(len(self.heldout.units)),
                "alphas": self.heldout.alphas,
                "mean_error": self.heldout.mean_error,
                "mean_train_error": self.heldout.mean_train_error,
                "mean_nonzeros": self.heldout.mean_nonzeros,
                "error_at_nonzeros": self.heldout.error_at_nonzeros,
                "converged": self.heldout.converged,
            },
            "best_pairs": [asdict(pair) for pair in self.best_pairs],
            "worst_pairs": [asdict(pair) for pair in self.worst_pairs],
            "warnings": list(self.warnings),
        }


def unit_matching_report(
    x: np.ndarray,
    y: np.ndarray,
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    n_alphas: int = N_ALPHAS,
    alpha_ratio: float = ALPHA_RATIO,
    n_pairs: int = 5,
    top_m: int = 9,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
) -> UnitMatchingReport:
    """Unit matching of layers ``x`` (n × p) and ``y`` (n × q) beyond one-to-one: the Hungarian
    matching and the semi-matchings both ways, their share-above-t curves, the lasso path of
    each unit of Y from X's units, and the ``n_pairs`` best- and worst-matched one-to-one pairs
    with the ``top_m`` samples that activate their unit of X most, and the held-out error of
    the lasso path on a ``test_fraction`` split drawn with ``seed``. See the module docstring.
    """
    measure = UnitMatching()
    a, b = measure.prepare(x, "X"), measure.prepare(y, "Y")
    corr = _paired_correlations(a, b)
    result = _matching(corr, a, b)
    partner_a, partner_b = semi_match(corr)
    n, p = a.standardised.shape
    q = b.standardised.shape[1]
    warnings = [
        f"{len(c)} constant unit{'s' if len(c) != 1 else ''} in {side}: correlation 0, "
        + ("not predicted" if side == "Y" else "no weight in the sparse prediction")
        for side, c in (("X", a.constant), ("Y", b.constant))
        if len(c)
    ]
    sparse = _sparse_prediction(a, b, n_alphas, alpha_ratio)
    heldout = heldout_prediction(
        x, y, test_fraction=test_fraction, seed=seed, n_alphas=n_alphas, alpha_ratio=alpha_ratio
    )
    if heldout is None:
        warnings.append("too few samples to hold any out: no held-out error")
    if not sparse.converged or (heldout is not None and not heldout.converged):
        warnings.append(
            f"the lasso's coordinate descent stopped after {MAX_SWEEPS} sweeps at some penalty "
            "before meeting its tolerance"
        )
    order = np.argsort(-result.matched, kind="stable")
    rows = np.asarray(x)

    def pair(k: int) -> UnitPair:
        unit = int(result.rows[k])
        top = np.argsort(-rows[:, unit].astype(np.float64), kind="stable")[:top_m]
        return UnitPair(unit, int(result.cols[k]), float(result.matched[k]), top.tolist())

    count = min(n_pairs, len(order))
    return UnitMatchingReport(
        n=n,
        p=p,
        q=q,
        hungarian=result,
        partner_a=partner_a,
        partner_b=partner_b,
        thresholds=[float(t) for t in thresholds],
        share_hungarian=share_above(result.matched, thresholds).tolist(),
        share_semi_a=share_above(result.best_a, thresholds).tolist(),
        share_semi_b=share_above(result.best_b, thresholds).tolist(),
        sparse=sparse,
        heldout=heldout,
        best_pairs=[pair(k) for k in order[:count]],
        worst_pairs=[pair(k) for k in order[::-1][:count]],
        warnings=warnings,
    )


def _sparse_prediction(
    a: PreparedLayer, b: PreparedLayer, n_alphas: int, alpha_ratio: float
) -> SparsePrediction:
    """The lasso path of every non-constant unit of Y (unit norm) from X's standardised units
    on a shared geometric grid of α, summarised by error and number of non-zeros."""
    if n_alphas < 1 or not 0 < alpha_ratio < 1:
        raise InputError("the lasso path needs n_alphas ≥ 1 and 0 < alpha_ratio < 1")
    units = np.setdiff1d(np.arange(b.standardised.shape[1]), b.constant)
    path = _path(a.standardised, b.standardised[:, units], n_alphas, alpha_ratio)
    errors, nonzeros = path.errors, path.nonzeros
    most = int(nonzeros.max())
    at_most = [
        float(np.mean(np.where(nonzeros <= k, errors, np.inf).min(axis=0))) for k in range(most + 1)
    ]
    return SparsePrediction(
        alphas=path.alphas.tolist(),
        mean_error=errors.mean(axis=1).tolist(),
        mean_nonzeros=nonzeros.mean(axis=1).tolist(),
        error_at_nonzeros=at_most,
        errors=errors,
        nonzeros=nonzeros,
        units=units,
        converged=path.converged,
    )


class _Path(NamedTuple):
    """A lasso path summarised per α (:func:`_path`)."""

    alphas: np.ndarray
    errors: np.ndarray  # (n_alphas, q): ‖y_j − Xw‖² / ‖y_j‖² on the samples fitted
    nonzeros: np.ndarray  # (n_alphas, q) int: non-zero weights
    converged: bool  # every α's coordinate descent met REPORT_TOL
    scores: list[np.ndarray]  # per α, score(W) (none without a score)


def _path(
    x: np.ndarray,
    y: np.ndarray,
    n_alphas: int,
    alpha_ratio: float,
    score: Callable[[np.ndarray], np.ndarray] | None = None,
) -> _Path:
    """The lasso path of the columns of ``y`` (centred, unit norm) from those of ``x`` (centred)
    over ``n_alphas`` penalties, geometric from α_max = max |XᵀY|/n down to ``alpha_ratio`` ·
    α_max, summarised per α; ``score``, when given, is applied to each α's (p, q) weights."""
    n = len(x)
    gram, cross = x.T @ x / n, x.T @ y / n
    alpha_max = float(np.abs(cross).max())
    if alpha_max == 0.0:  # X carries nothing linear about Y: every path is all zeros
        alphas = np.array([0.0])
    else:
        alphas = alpha_max * np.geomspace(1.0, alpha_ratio, n_alphas)
    errors = np.empty((len(alphas), y.shape[1]))
    nonzeros = np.empty((len(alphas), y.shape[1]), dtype=np.int64)
    converged = True
    scores: list[np.ndarray] = []
    for i, (w, gw, done) in enumerate(
        _lasso_steps(gram, cross, alphas.tolist(), REPORT_TOL, MAX_SWEEPS)
    ):
        # ‖y − Xw‖² / ‖y‖² with ‖y‖ = 1: 1 − 2n wᵀc + n wᵀGw
        errors[i] = np.clip(1.0 - n * np.sum(w * (2 * cross - gw), axis=0), 0.0, None)
        nonzeros[i] = np.count_nonzero(w, axis=0)
        converged &= done
        if score is not None:
            scores.append(score(w))
    return _Path(alphas, errors, nonzeros, converged, scores)


def split_samples(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random split of ``n`` samples: ``(train, test)`` indices, each ascending, with
    round(test_fraction · n) held out, at least 1 on each side when n ≥ 2."""
    if not 0 < test_fraction < 1:
        raise InputError(f"the held-out share must be between 0 and 1, got {test_fraction}")
    n_test = min(max(round(test_fraction * n), 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _centred_scaled(
    x: np.ndarray, train: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training and held-out rows centred by the training means and scaled by the training
    norms of the centred columns; also whether each column varies on the training split
    (columns that do not are zero on both sides)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x[train].mean(axis=0)
    norms = np.linalg.norm(x[train] - mean, axis=0)
    varies = np.ptp(x[train], axis=0) > 0
    scale = np.where(varies, norms, np.inf)
    return (x[train] - mean) / scale, (x[test] - mean) / scale, varies


def heldout_prediction(
    x: np.ndarray,
    y: np.ndarray,
    *,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
    n_alphas: int = N_ALPHAS,
    alpha_ratio: float = ALPHA_RATIO,
) -> HeldOutPrediction | None:
    """The lasso path of each unit of ``y`` from the units of ``x`` fitted on a random training
    split (:func:`split_samples`) and scored on the held-out samples.

    Both layers are centred by the training means and scaled by the training norms (a column
    constant on the training split is zero), the path's penalties run geometrically from the
    training split's α_max down to ``alpha_ratio`` · α_max, and the held-out error of unit j at
    weights w is ‖y_te − X_te w‖² / ‖y_te‖² (1 at w = 0; see :class:`HeldOutPrediction`).
    Units of Y constant on the training split, or equal to their training mean on every
    held-out sample, are not predicted. None when fewer than 2 samples or no unit is left.
    """
    x = check_activations(x, "X", 2)
    y = check_activations(y, "Y", 2)
    if len(x) != len(y):
        raise InputError(f"the two spaces have different numbers of samples: {len(x)} vs {len(y)}")
    if n_alphas < 1 or not 0 < alpha_ratio < 1:
        raise InputError("the lasso path needs n_alphas ≥ 1 and 0 < alpha_ratio < 1")
    train, test = split_samples(len(x), test_fraction, seed)
    x_tr, x_te, _ = _centred_scaled(x, train, test)
    y_tr, y_te, varies = _centred_scaled(y, train, test)
    test_norms = (y_te**2).sum(axis=0)
    units = np.flatnonzero(varies & (test_norms > 0))
    if units.size == 0:
        return None
    y_tr, y_te, test_norms = y_tr[:, units], y_te[:, units], test_norms[units]

    def held_out_error(w: np.ndarray) -> np.ndarray:
        return ((y_te - x_te @ w) ** 2).sum(axis=0) / test_norms

    path = _path(x_tr, y_tr, n_alphas, alpha_ratio, held_out_error)
    errors, nonzeros = np.array(path.scores), path.nonzeros
    # the least-penalised fit (last on the path) with at most k non-zeros, per unit
    at_most = []
    for k in range(int(nonzeros.max()) + 1):
        last = len(path.alphas) - 1 - np.argmax((nonzeros <= k)[::-1], axis=0)
        at_most.append(float(errors[last, np.arange(len(units))].mean()))
    return HeldOutPrediction(
        train=train,
        test=test,
        alphas=path.alphas.tolist(),
        mean_error=errors.mean(axis=1).tolist(),
        mean_train_error=path.errors.mean(axis=1).tolist(),
        mean_nonzeros=nonzeros.mean(axis=1).tolist(),
        error_at_nonzeros=at_most,
        errors=errors,
        nonzeros=nonzeros,
        units=units,
        converged=path.converged,
    )
