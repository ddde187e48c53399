"""Invariance and equivariance probes: how a layer's activations respond when its inputs are
transformed (the definitions of docs/MEASURES.md, "Invariance and equivariance probes").

For one layer, one transformation family g_t and one magnitude t, row i of ``fx`` (n × d) is
f(xᵢ), the layer's activations of sample i, and row i of ``fgx`` is f(g_t xᵢ), those of the same
sample transformed. Inputs may be float32 or float64; all arithmetic is float64.

- **Invariance** (:func:`invariance`)::

      Iᵢ = 1 − ‖f(g xᵢ) − f(xᵢ)‖² / D,   I = mean_i Iᵢ = 1 − E‖f(g x) − f(x)‖² / E‖f(x) − f(x')‖²

  with D = E‖f(x) − f(x')‖², x' a *different* sample, taken exactly over all ordered pairs
  i ≠ j rather than estimated from a seeded pairing: since Σ_{i,j} ‖fᵢ − fⱼ‖² = 2n Σᵢ ‖fᵢ − f̄‖²,

      D = 1/(n(n−1)) Σ_{i≠j} ‖fᵢ − fⱼ‖² = 2/(n−1) · Σᵢ ‖fᵢ − f̄‖² = 2n/(n−1) · tr Σ

  (Σ the biased covariance of f(x)): deterministic, and without the sampling noise of a random
  derangement. I = 1 when the layer is invariant; I ≈ 0 when the transform moves a sample as far
  as swapping it for another (f(g x) = f(x) with the rows shuffled by a permutation without
  fixed points scores 0 in expectation, a uniformly random permutation 1/n); below 0 further.
  I is unchanged by a rotation, translation or isotropic scaling applied to both spaces.
- **Equivariance by a learned map** (:func:`learned_equivariance`; Lenc & Vedaldi 2015,
  "Understanding image representations by measuring their equivariance and equivalence"): on
  a seeded split (the rule of :mod:`analysis.measures.alignment`: ⌈test_fraction · n⌉ samples
  held out, at least 2 held out and 4 to train) a ridge map M with an intercept, α chosen on
  the training rows by exact leave-one-out over the relative grid of
  :mod:`analysis.measures.regression`, is fitted from f(x) to f(g x). Scores, over the held-out
  samples and all d outputs together::

      R² = 1 − Σᵢ ‖ŷᵢ − f(g xᵢ)‖² / Σᵢ ‖f(g xᵢ) − ȳ_train‖²

  against the *training* mean ȳ_train of f(g x), as in :mod:`analysis.measures.alignment`
  (scikit-learn's ``r2_score(..., multioutput="variance_weighted")`` uses the held-out mean
  instead; the two satisfy (1 − R²_train-mean)·SST_train = (1 − R²_sklearn)·SST_test).
  ``r2`` scores ŷ = M f(x); ``r2_identity`` scores ŷ = f(x), the identity map, which measures
  invariance; ``r2_shuffled`` scores a map fitted on training pairs whose f(g x) rows were
  shuffled (seeded): what a learned map reaches without the pairing. Equivariant but not
  invariant: r2 high, r2_identity low.
- **Structured equivariance** (:func:`structured_equivariance`), for feature maps and a
  transform ĝ the caller applies to them (shift by the layer's stride, 90° rotation, flip)::

      E = ‖f(g x) − ĝ(f(x))‖_F / ‖ĝ(f(x))‖_F,   Eᵢ = ‖f(g xᵢ) − ĝ(f(xᵢ))‖ / √(mean_j ‖ĝ(f(xⱼ))‖²)

  over every axis after the first (samples). The per-sample errors share the RMS norm as their
  unit, so a sample whose feature map is near zero cannot blow up, and E = √(mean_i Eᵢ²).
- **Lie derivative** (:func:`lie_derivative`; Gruver et al. 2023, "The Lie Derivative for
  Measuring Learned Equivariance"), for a continuous family with g_0 the identity, by central
  differences::

      Lᵢ = ‖(f(g_h xᵢ) − f(g_{−h} xᵢ)) / (2h)‖ / s,   s = √(mean_i ‖f(xᵢ) − f̄‖²),   L = mean_i Lᵢ

  s, the RMS distance of a sample from the layer's mean activation, makes L unit-free in the
  activations, so layers of different widths and scales compare; L stays in units of 1/t
  (per degree, per pixel …). 0 for a layer invariant to the family near t = 0.
- **Transform prediction** (:func:`transform_prediction`): a ridge probe (as above) recovers t
  from the features [f(xᵢ), f(g_t xᵢ) − f(xᵢ)], one row per sample and magnitude; the split is
  by *sample* (all magnitudes of a sample fall on the same side), so held-out rows are unseen
  samples. Reported: held-out R² of t against the training mean, the mean absolute error in t's
  units (overall and per magnitude), and the MAE of always predicting the training mean of t,
  the chance level (whose R² is 0 by definition). α is chosen by leave-one-out over
  training *rows*, which may favour an α that memorises training samples; that can only lower
  the held-out score, never inflate it. An invariant layer (f(g x) = f(x)) scores R² ≤ 0.
- **Prediction consistency** (:func:`prediction_consistency`): the share of samples whose
  argmax class is the same for x and g x (ties to the lowest index, as ``numpy.argmax``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.errors import InputError
from analysis.explorer.selections import most_changed
from analysis.measures.alignment import MIN_TEST, MIN_TRAIN
from analysis.measures.engine import check_activations
from analysis.measures.regression import DEFAULT_ALPHAS, fit_ridge, training_svd

__all__ = [
    "Consistency",
    "Equivariance",
    "Invariance",
    "LieDerivative",
    "StructuredEquivariance",
    "TransformPrediction",
    "invariance",
    "learned_equivariance",
    "lie_derivative",
    "most_moved",
    "prediction_consistency",
    "structured_equivariance",
    "transform_prediction",
]

MIN_SAMPLES = 4


@dataclass
class Invariance:
    score: float  # I = mean of per_sample
    per_sample: np.ndarray  # float32 (n,): Iᵢ

    def to_json(self) -> dict:
        return {"score": self.score, "per_sample": self.per_sample.tolist()}


@dataclass
class Equivariance:
    r2: float  # held-out R² of the learned map, against the training mean
    r2_identity: float  # the same R² for the identity map ŷ = f(x)
    r2_shuffled: float  # the learned map fitted on shuffled training pairs
    n_train: int
    n_test: int
    alpha: float  # absolute ridge penalty chosen by leave-one-out
    relative_alpha: float  # the same, in units of ‖X_c‖²_F of the training f(x)
    test: np.ndarray  # bool (n,): True for held-out samples

    def to_json(self) -> dict:
        return {
            "r2": self.r2,
            "r2_identity": self.r2_identity,
            "r2_shuffled": self.r2_shuffled,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "alpha": self.alpha,
            "relative_alpha": self.relative_alpha,
            "test": self.test.tolist(),
        }


@dataclass
class StructuredEquivariance:
    score: float  # E = ‖f(g x) − ĝ(f(x))‖_F / ‖ĝ(f(x))‖_F
    per_sample: np.ndarray  # float32 (n,): Eᵢ, in units of the RMS norm of ĝ(f(x))

    def to_json(self) -> dict:
        return {"score": self.score, "per_sample": self.per_sample.tolist()}


@dataclass
class LieDerivative:
    score: float  # L = mean of per_sample
    per_sample: np.ndarray  # float32 (n,): Lᵢ
    scale: float  # s, the layer's RMS distance from its mean activation

    def to_json(self) -> dict:
        return {"score": self.score, "per_sample": self.per_sample.tolist(), "scale": self.scale}


@dataclass
class TransformPrediction:
    r2: float  # held-out R² of t, against the training mean of t
    mae: float  # held-out mean |t̂ − t|, in t's units
    mae_chance: float  # the same for always predicting the training mean of t
    per_magnitude_mae: list[float]  # held-out mean |t̂ − t| at each magnitude, in order
    magnitudes: list[float]
    n_train: int  # samples (each contributes one row per magnitude)
    n_test: int
    alpha: float  # absolute ridge penalty chosen by leave-one-out
    test: np.ndarray  # bool (n,): True for held-out samples

    def to_json(self) -> dict:
        return {
            "r2": self.r2,
            "mae": self.mae,
            "mae_chance": self.mae_chance,
            "per_magnitude_mae": list(self.per_magnitude_mae),
            "magnitudes": list(self.magnitudes),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "alpha": self.alpha,
            "test": self.test.tolist(),
        }


@dataclass
class Consistency:
    share: float  # share of samples whose argmax class is unchanged
    changed: np.ndarray  # bool (n,): True where the class changed

    def to_json(self) -> dict:
        return {"share": self.share, "changed": self.changed.tolist()}


# --- validation and the split ---------------------------------------------------------------


def _matching(reference: np.ndarray, other: np.ndarray, name: str, reference_name: str) -> None:
    if other.shape != reference.shape:
        raise InputError(
            f"{name} has shape {other.shape} but {reference_name} has shape {reference.shape}: "
            "they must match, one row per sample in the same order"
        )


def _pair(
    fx: np.ndarray, fgx: np.ndarray, min_samples: int = MIN_SAMPLES, name: str = "f(g x)"
) -> tuple[np.ndarray, np.ndarray]:
    """``fx`` and ``fgx`` as float64 (n, d) arrays of the same shape, or an :class:`InputError`."""
    fx = check_activations(fx, "f(x)", min_samples)
    fgx = check_activations(fgx, name, min_samples)
    _matching(fx, fgx, name, "f(x)")
    return fx.astype(np.float64), fgx.astype(np.float64)


def _split(n: int, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) sample indices by the rule of
    :func:`analysis.measures.alignment.fit_alignment`: the first ⌈test_fraction · n⌉ samples of
    a random permutation are held out."""
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    n_test = math.ceil(test_fraction * n)
    n_train = n - n_test
    if n_test < MIN_TEST or n_train < MIN_TRAIN:
        raise InputError(
            f"a test fraction of {test_fraction:g} splits {n} samples into {n_train} to train "
            f"and {n_test} to test; the probe needs at least {MIN_TRAIN} and {MIN_TEST}"
        )
    order = rng.permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _r2(predicted: np.ndarray, target: np.ndarray, train_mean: np.ndarray, name: str) -> float:
    """1 − SSE / SST over all outputs together, SST around the training mean."""
    sst = float(np.sum((target - train_mean) ** 2))
    if sst == 0.0:
        raise InputError(f"{name}: the held-out samples do not vary; R² is undefined")
    return 1.0 - float(np.sum((predicted - target) ** 2)) / sst


def _mask(n: int, rows: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return mask


# --- the probes -----------------------------------------------------------------------------


def invariance(fx: np.ndarray, fgx: np.ndarray) -> Invariance:
    """The invariance I of the module docstring of activations ``fgx`` = f(g x) against
    ``fx`` = f(x) (n × d each, n ≥ 4), the denominator exact over all pairs of samples.

    Raises :class:`InputError` when every sample has the same f(x): D = 0, and no transform can
    be compared with the distance between samples.
    """
    fx, fgx = _pair(fx, fgx)
    n = len(fx)
    if not np.ptp(fx, axis=0).any():
        raise InputError("f(x): every sample has the same activations; invariance is undefined")
    spread = float(np.sum((fx - fx.mean(axis=0)) ** 2))
    distance = 2.0 * spread / (n - 1)  # D, the mean of ‖fᵢ − fⱼ‖² over ordered pairs i ≠ j
    per_sample = 1.0 - np.sum((fgx - fx) ** 2, axis=1) / distance
    return Invariance(float(per_sample.mean()), per_sample.astype(np.float32))


def learned_equivariance(
    fx: np.ndarray,
    fgx: np.ndarray,
    test_fraction: float = 0.2,
    seed: int = 0,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> Equivariance:
    """Held-out R² of a ridge map from ``fx`` to ``fgx`` (n × d each), of the identity map, and
    of a map fitted on shuffled pairs; see the module docstring. ``seed`` sets the split (the
    same as :func:`analysis.measures.alignment.fit_alignment` with this seed) and the shuffle."""
    fx, fgx = _pair(fx, fgx, MIN_TRAIN + MIN_TEST)
    rng = np.random.default_rng(seed)
    train, test = _split(len(fx), test_fraction, rng)
    if not np.ptp(fx[train], axis=0).any():
        raise InputError("f(x): every column is constant across the training samples")
    svd = training_svd(fx[train])
    fit = fit_ridge(svd, fgx[train], alphas)
    y_mean = fgx[train].mean(axis=0)
    r2 = _r2(fit.predict(fx[test]), fgx[test], y_mean, "f(g x)")
    r2_identity = _r2(fx[test], fgx[test], y_mean, "f(g x)")
    shuffled = fit_ridge(svd, fgx[train[rng.permutation(len(train))]], alphas)
    r2_shuffled = _r2(shuffled.predict(fx[test]), fgx[test], y_mean, "f(g x)")
    return Equivariance(
        r2=r2,
        r2_identity=r2_identity,
        r2_shuffled=r2_shuffled,
        n_train=len(train),
        n_test=len(test),
        alpha=fit.alpha,
        relative_alpha=fit.relative_alpha,
        test=_mask(len(fx), test),
    )


def structured_equivariance(f_of_gx: np.ndarray, g_of_fx: np.ndarray) -> StructuredEquivariance:
    """The relative error E between ``f_of_gx`` = f(g x) and ``g_of_fx`` = ĝ(f(x)), arrays of
    one shape with samples along the first axis (n × C × H × W, n × d …), and its per-sample
    values Eᵢ; see the module docstring. 0 for an exactly equivariant layer."""
    a, b = np.asarray(f_of_gx), np.asarray(g_of_fx)
    for name, array in (("f(g x)", a), ("ĝ(f(x))", b)):
        if array.ndim < 2 or array.shape[0] < 1 or array.size == 0:
            raise InputError(
                f"{name}: expected samples along the first axis and features after, "
                f"got shape {array.shape}"
            )
        if not np.isfinite(array).all():
            raise InputError(f"{name}: activations contain NaN or Inf")
    _matching(b, a, "f(g x)", "ĝ(f(x))")
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    rms = math.sqrt(float(np.mean(np.sum(b**2, axis=1))))
    if rms == 0.0:
        raise InputError("ĝ(f(x)): every value is zero; the relative error is undefined")
    per_sample = np.linalg.norm(a - b, axis=1) / rms
    return StructuredEquivariance(
        float(np.linalg.norm(a - b) / np.linalg.norm(b)), per_sample.astype(np.float32)
    )


def lie_derivative(
    f_plus: np.ndarray, f_minus: np.ndarray, h: float, fx: np.ndarray
) -> LieDerivative:
    """The Lie derivative L of the module docstring from ``f_plus`` = f(g_h x) and ``f_minus`` =
    f(g_{−h} x) (n × d each) with step ``h`` > 0 in t's units, normalised by the scale of
    ``fx`` = f(x) (n × d, n ≥ 4)."""
    if isinstance(h, bool) or not isinstance(h, int | float | np.integer | np.floating):
        raise InputError(f"h must be a positive number, got {h!r}")
    if not (math.isfinite(h) and h > 0):
        raise InputError(f"h must be a positive finite number, got {h!r}")
    fx = check_activations(fx, "f(x)", MIN_SAMPLES).astype(np.float64)
    plus = check_activations(f_plus, "f(g_h x)", MIN_SAMPLES)
    minus = check_activations(f_minus, "f(g_−h x)", MIN_SAMPLES)
    _matching(fx, plus, "f(g_h x)", "f(x)")
    _matching(fx, minus, "f(g_−h x)", "f(x)")
    if not np.ptp(fx, axis=0).any():
        raise InputError("f(x): every sample has the same activations; the layer has no scale")
    scale = math.sqrt(float(np.mean(np.sum((fx - fx.mean(axis=0)) ** 2, axis=1))))
    derivative = (plus.astype(np.float64) - minus.astype(np.float64)) / (2.0 * float(h))
    per_sample = np.linalg.norm(derivative, axis=1) / scale
    return LieDerivative(float(per_sample.mean()), per_sample.astype(np.float32), scale)


def transform_prediction(
    fx_by_t: np.ndarray | Sequence[np.ndarray],
    fgx_by_t: Sequence[np.ndarray],
    magnitudes: Sequence[float],
    test_fraction: float = 0.2,
    seed: int = 0,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> TransformPrediction:
    """How well a ridge probe recovers t from [f(x), f(g_t x) − f(x)] on held-out samples.

    Parameters
    ----------
    fx_by_t : f(x) at each magnitude, a list of (n, d) arrays; or one (n, d) array for all
    fgx_by_t : f(g_t x) at each magnitude, a list of (n, d) arrays, rows the same samples
    magnitudes : t of each entry of ``fgx_by_t``, at least two distinct values
    test_fraction : share of *samples* held out (with every magnitude of theirs)
    seed : the split (the rule of :func:`analysis.measures.alignment.fit_alignment`)

    Returns
    -------
    TransformPrediction; see the module docstring.
    """
    values = _magnitudes(magnitudes)
    if isinstance(fgx_by_t, np.ndarray) and fgx_by_t.ndim == 2:
        raise InputError("fgx_by_t: expected one (n, d) array per magnitude, got a single array")
    fgx_list = list(fgx_by_t)
    if len(fgx_list) != len(values):
        raise InputError(
            f"{len(values)} magnitudes but {len(fgx_list)} arrays of f(g x): give one per magnitude"
        )
    if isinstance(fx_by_t, np.ndarray) and fx_by_t.ndim == 2:
        fx_list = [fx_by_t] * len(values)
    else:
        fx_list = list(fx_by_t)
        if len(fx_list) != len(values):
            raise InputError(
                f"{len(values)} magnitudes but {len(fx_list)} arrays of f(x): give one per "
                "magnitude, or a single array for all"
            )
    pairs = [
        _pair(fx, fgx, MIN_TRAIN + MIN_TEST, f"f(g x) at t = {t:g}")
        for fx, fgx, t in zip(fx_list, fgx_list, values, strict=True)
    ]
    shape = pairs[0][0].shape
    for (fx, _), t in zip(pairs, values, strict=True):
        if fx.shape != shape:
            raise InputError(
                f"the activations at t = {t:g} have shape {fx.shape}, those at t = "
                f"{values[0]:g} {shape}: every magnitude needs the same samples and layer"
            )
    blocks = [np.hstack([fx, fgx - fx]) for fx, fgx in pairs]
    n = len(blocks[0])
    train, test = _split(n, test_fraction, np.random.default_rng(seed))
    features = np.vstack(blocks)  # row k·n + i: sample i at magnitude k
    target = np.repeat(values, n)
    rows_train = np.concatenate([k * n + train for k in range(len(values))])
    rows_test = np.concatenate([k * n + test for k in range(len(values))])
    if not np.ptp(features[rows_train], axis=0).any():
        raise InputError("the probe's features are constant across the training samples")
    svd = training_svd(features[rows_train])
    fit = fit_ridge(svd, target[rows_train, None], alphas)
    predicted = fit.predict(features[rows_test])[:, 0]
    t_test, t_mean = target[rows_test], target[rows_train].mean()
    r2 = _r2(predicted, t_test, t_mean, "magnitudes")
    errors = np.abs(predicted - t_test).reshape(len(values), len(test))
    return TransformPrediction(
        r2=r2,
        mae=float(errors.mean()),
        mae_chance=float(np.mean(np.abs(t_test - t_mean))),
        per_magnitude_mae=[float(e) for e in errors.mean(axis=1)],
        magnitudes=[float(t) for t in values],
        n_train=len(train),
        n_test=len(test),
        alpha=fit.alpha,
        test=_mask(n, test),
    )


def _magnitudes(magnitudes: Sequence[float]) -> np.ndarray:
    try:
        values = np.asarray(magnitudes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("magnitudes: expected a list of numbers") from None
    if values.ndim != 1:
        raise InputError(f"magnitudes: expected a list of numbers, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise InputError("magnitudes: contain NaN or Inf")
    if len(np.unique(values)) < 2:
        raise InputError("magnitudes: need at least two different values to predict")
    return values


def prediction_consistency(logits_x: np.ndarray, logits_gx: np.ndarray) -> Consistency:
    """The share of samples whose argmax class is unchanged between ``logits_x`` and
    ``logits_gx`` (n × classes each, scores or probabilities; ties to the lowest index)."""
    for name, array in (("logits of x", logits_x), ("logits of g x", logits_gx)):
        array = np.asarray(array)
        if array.ndim != 2 or array.shape[0] < 1:
            raise InputError(f"{name}: expected an n × classes array, got shape {array.shape}")
        if array.shape[1] < 2:
            raise InputError(
                f"{name}: one column, so the argmax class can never change; give one score "
                "per class"
            )
        if not np.isfinite(array).all():
            raise InputError(f"{name}: scores contain NaN or Inf")
    a, b = np.asarray(logits_x), np.asarray(logits_gx)
    _matching(a, b, "logits of g x", "logits of x")
    changed = np.argmax(a, axis=1) != np.argmax(b, axis=1)
    return Consistency(float(1.0 - changed.mean()), changed)


def most_moved(per_sample_invariance: np.ndarray, count: int) -> np.ndarray:
    """int64 indices of the ``count`` samples the transform moves most: the lowest per-sample
    invariance first, equal values by index, NaN last
    (:func:`analysis.explorer.selections.most_changed`)."""
    values = np.asarray(per_sample_invariance)
    if values.ndim != 1:
        raise InputError(
            f"per-sample invariance: expected one value per sample, got shape {values.shape}"
        )
    return most_changed(values, count)
