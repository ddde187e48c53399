"""Cross-validated linear predictivity: how well a ridge map from X predicts Y on held-out samples.

The score of X (n × p) for Y (n × q) is the held-out R² of ridge regression with an intercept.
It is the linear-regression index R²_LR of Kornblith et al. 2019 ("Similarity of Neural Network
Representations Revisited": the fraction of Y's variance a linear map from X explains), made
honest for p close to or above n by ridge shrinkage and cross-validation, as in the held-out
protocol of neural predictivity (Yamins et al. 2014; Schrimpf et al. 2018, "Brain-Score", who
regress with PLS where we use ridge):

- the samples are split into K folds (seeded, the same for every layer of a matrix);
- on each training fold, X and Y are centred with the *training* means only, and the ridge
  penalty α is chosen from a log grid by exact leave-one-out error on that training fold,
  computed for every α from one SVD of the centred training X (Rifkin & Lippert 2007, "Notes on
  Regularized Least Squares"; the rule of scikit-learn's ``RidgeCV``, its "GCV" mode);
- the held-out fold is predicted, and the out-of-fold predictions of all n samples are pooled
  into R² = 1 − SSE / SST over all outputs together (scikit-learn's
  ``r2_score(..., multioutput="variance_weighted")``).

On a GPU (``Measure.device``, :mod:`analysis.measures.placement`) the same code runs on torch
tensors, float64, there: each layer is validated on the host and sent once
(:func:`analysis.measures.transfer.to_device`, chunked, the copies overlapped with the
conversion); the SVDs, the leave-one-out errors and the predictions stay on the device, and
only the per-α errors and the sums of squares come back. The functions below are written once
for numpy arrays and torch tensors alike (the few calls that differ go through ``_svd`` and
``_take``).

Not symmetric: ``score(a, b)`` predicts b from a; show both directions. The α grid is relative
to the total sum of squares of each centred training X, so the score does not depend on the
units of X. R² is reported as it is: below 0 it means the map does worse on held-out samples
than predicting the training mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.errors import InputError
from analysis.measures.engine import Measure, check_activations
from analysis.measures.placement import torch_device
from analysis.parameters import Parameter

Array = Any
"""A float64 numpy array, or a float64 torch tensor on the device the measure computes on."""

MIN_SAMPLES = 4
DEFAULT_ALPHAS = tuple(float(10.0**k) for k in range(-9, 2))
"""Ridge penalties, in units of ‖X_c‖²_F, the total sum of squares of the centred training X
(the sum of its squared singular values): from least squares to predicting the mean."""


def kfold(n: int, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded ``(train, test)`` index pairs: a random permutation cut into ``n_splits`` folds
    whose sizes differ by at most one (the sizes of scikit-learn's ``KFold``)."""
    if n_splits < 2:
        raise InputError(f"cross-validation needs at least 2 folds, got {n_splits}")
    if n < n_splits:
        raise InputError(f"{n_splits}-fold cross-validation needs at least {n_splits} samples")
    order = np.random.default_rng(seed).permutation(n)
    folds = []
    for test in np.array_split(order, n_splits):
        train = np.setdiff1d(order, test)
        folds.append((train, np.sort(test)))
    return folds


def _svd(x: Array) -> tuple[Array, Array, Array]:
    """Thin SVD ``(u, s, vt)`` of a numpy array or a torch tensor."""
    if isinstance(x, np.ndarray):
        return np.linalg.svd(x, full_matrices=False)
    import torch

    return torch.linalg.svd(x, full_matrices=False)


def _take_index(rows: Array, index: np.ndarray) -> Array:
    """``index`` where ``rows`` is: a torch index on its device for a tensor."""
    if isinstance(rows, np.ndarray):
        return index
    import torch

    return torch.from_numpy(index).to(rows.device)


def _take(rows: Array, index: np.ndarray) -> Array:
    """``rows[index]`` for host indices, on whichever side ``rows`` is."""
    return rows[_take_index(rows, index)]


def _host(values: Array) -> np.ndarray:
    return values if isinstance(values, np.ndarray) else values.cpu().numpy()


@dataclass
class FoldSVD:
    """Thin SVD of one training fold of X, centred with that fold's means."""

    mean: Array  # (p,) training-fold column means
    u: Array  # (n_train, r)
    s: Array  # (r,) singular values above round-off
    vt: Array  # (r, p)
    scale: float  # ‖X_c‖²_F: the unit of the α grid


def training_svd(x: Array) -> FoldSVD:
    """The thin SVD of the float64 rows ``x`` (n_train × p), centred with their own means."""
    mean = x.mean(axis=0)
    u, s, vt = _svd(x - mean)
    keep = s > float(s[0]) * max(x.shape) * np.finfo(np.float64).eps
    scale = float((s**2).sum())
    return FoldSVD(mean, u[:, keep], s[keep], vt[keep], scale)


@dataclass
class PreparedLayer:
    """Column-centred float64 activations (a tensor on the torch path); per-fold SVDs are added
    when the layer is a predictor."""

    centred: Array
    _svds: dict[tuple[int, int, int], FoldSVD] = field(default_factory=dict, repr=False)

    @property
    def data(self) -> np.ndarray:
        """The rows on the host (bootstrap resamples are prepared again)."""
        return _host(self.centred)

    def fold_svd(self, key: tuple[int, int, int], train: np.ndarray) -> FoldSVD:
        """The SVD of the rows ``train`` (cached under ``key``: n_splits, seed, fold)."""
        if key not in self._svds:
            self._svds[key] = training_svd(_take(self.centred, train))
        return self._svds[key]


@dataclass
class RidgeResult:
    """Held-out R², the out-of-fold predictions of Y and the α chosen on each fold."""

    r2: float
    predictions: np.ndarray  # (n, q), in the column-centred coordinates of Y (on the host)
    alphas: list[float]  # absolute penalty chosen on each fold
    relative_alphas: list[float]  # the same, in units of the fold's ‖X_c‖²_F


def _loo_errors(f: FoldSVD, yc: Array, uty: Array, alpha: float) -> float:
    """Mean squared exact leave-one-out error of ridge with intercept on one training fold.

    With H = 11ᵀ/n + U diag(s²/(s²+α)) Uᵀ the hat matrix of ridge with an unpenalised intercept,
    the leave-one-out residual of sample i is rᵢ / (1 − Hᵢᵢ) (Rifkin & Lippert 2007).
    """
    shrink = f.s**2 / (f.s**2 + alpha)
    residual = yc - f.u @ (shrink[:, None] * uty)
    leverage = 1.0 / len(yc) + (f.u**2) @ shrink
    with np.errstate(divide="ignore", invalid="ignore"):
        loo = residual / (1.0 - leverage)[:, None]
        error = float((loo**2).mean())
    return error if np.isfinite(error) else np.inf


@dataclass
class RidgeFit:
    """Ridge with an unpenalised intercept fitted on one training set: ŷ = (x − x̄)·V·coef + ȳ."""

    svd: FoldSVD  # of the training X
    y_mean: Array  # (q,) training means of Y
    coef: Array  # (r, q), in the basis of the SVD's V
    alpha: float  # absolute penalty
    relative_alpha: float  # the same, in units of ‖X_c‖²_F

    def predict(self, x: Array) -> Array:
        """(m, q) predictions for the rows of ``x`` (m × p)."""
        return ((x - self.svd.mean) @ self.svd.vt.T) @ self.coef + self.y_mean


def fit_ridge(f: FoldSVD, y: Array, alphas: Sequence[float] = DEFAULT_ALPHAS) -> RidgeFit:
    """Ridge from the training X of ``f`` to ``y`` (n_train × q), α chosen among ``alphas``
    (in units of ‖X_c‖²_F) by exact leave-one-out error; the first of equal errors wins, as in
    scikit-learn's ``RidgeCV``."""
    y_mean = y.mean(axis=0)
    yc = y - y_mean
    uty = f.u.T @ yc
    grid = [r * f.scale for r in alphas]
    errors = [_loo_errors(f, yc, uty, alpha) for alpha in grid]
    best = int(np.argmin(errors))
    coef = (f.s / (f.s**2 + grid[best]))[:, None] * uty
    return RidgeFit(f, y_mean, coef, grid[best], float(alphas[best]))


class RidgePredictivity(Measure):
    """Held-out R² of Y (``b``) predicted from X (``a``) by K-fold cross-validated ridge."""

    id = "regression/ridge-r2"
    name = "Linear predictivity (ridge R²)"
    reference = "Kornblith et al. 2019 (R²_LR); Rifkin & Lippert 2007 (leave-one-out)"
    # The colour scale spans [0, 1]; values below 0 (worse than predicting the mean) are
    # reported unclipped.
    range = (0.0, 1.0)
    bounds = (-float("inf"), 1.0)
    symmetric = False
    invariant_to = ("orthogonal", "isotropic scaling", "translation")
    min_samples = MIN_SAMPLES

    parameters = (
        Parameter("n_splits", "int", 5, "cross-validation folds", minimum=2, maximum=20),
        Parameter(
            "alphas",
            "floats",
            DEFAULT_ALPHAS,
            "the ridge penalties α to choose from, per fold (by leave-one-out)",
            minimum=0,
            exclusive_minimum=True,
        ),
    )

    def __init__(
        self, n_splits: int = 5, alphas: Sequence[float] = DEFAULT_ALPHAS, seed: int = 0
    ) -> None:
        if not alphas or min(alphas) <= 0:
            raise InputError("the ridge penalties must be positive")
        self.n_splits = n_splits
        self.alphas = tuple(float(a) for a in alphas)
        self.seed = seed

    def prepare(self, x: np.ndarray, name: str = "activations") -> PreparedLayer:
        x = check_activations(x, name, max(self.min_samples, self.n_splits))
        if not np.ptp(x, axis=0).any():
            raise InputError(f"{name}: every column is constant across samples; R² is undefined")
        device = torch_device(self.device)
        if device is not None:
            import torch

            from analysis.measures.transfer import to_device

            rows = to_device(x, device, torch.float64)
            return PreparedLayer(rows.sub_(rows.mean(dim=0)))
        return PreparedLayer(x.astype(np.float64) - x.mean(axis=0, dtype=np.float64))

    def permute(self, prepared: PreparedLayer, perm: np.ndarray) -> PreparedLayer:
        """Rows permuted; still centred. Fold SVDs are not carried over: the folds change."""
        return PreparedLayer(_take(prepared.centred, np.asarray(perm)))

    def fit(self, a: PreparedLayer, b: PreparedLayer) -> RidgeResult:
        """Cross-validated ridge from ``a`` to ``b``: R², out-of-fold predictions, chosen α."""
        x, y = a.centred, b.centred
        if len(x) != len(y):
            raise InputError(
                f"the two spaces have different numbers of samples: {len(x)} vs {len(y)}"
            )
        predictions = y * 0.0  # of y's kind and device; every row is filled below
        alphas, relative = [], []
        for k, (train, test) in enumerate(kfold(len(x), self.n_splits, self.seed)):
            svd = a.fold_svd((self.n_splits, self.seed, k), train)
            fit = fit_ridge(svd, _take(y, train), self.alphas)
            predictions[_take_index(predictions, test)] = fit.predict(_take(x, test))
            alphas.append(fit.alpha)
            relative.append(fit.relative_alpha)
        sst = float(((y - y.mean(axis=0)) ** 2).sum())
        sse = float(((y - predictions) ** 2).sum())
        return RidgeResult(1.0 - sse / sst, _host(predictions), alphas, relative)

    def score(self, a: PreparedLayer, b: PreparedLayer) -> float:
        return self.fit(a, b).r2

    def estimator(self, a: PreparedLayer, b: PreparedLayer) -> str:
        return f"{self.n_splits}-fold ridge, α by leave-one-out on each training fold"


def ridge_predictivity(
    x: np.ndarray,
    y: np.ndarray,
    n_splits: int = 5,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    seed: int = 0,
) -> float:
    """Held-out R² of ``y`` (n × q) predicted from ``x`` (n × p); see the module docstring."""
    measure = RidgePredictivity(n_splits, alphas, seed)
    return measure.score(measure.prepare(x, "X"), measure.prepare(y, "Y"))
