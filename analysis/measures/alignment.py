"""Alignment between two spaces: does a map from X to Y learned on some samples transfer to
others, and which samples does it not align?

X (n × p) and Y (n × q) hold the same samples in their rows. A seeded random split sets
⌈test_fraction · n⌉ samples aside (the rule of scikit-learn's ``train_test_split``); both spaces
are centred with the means of the training samples (applied to every row), a map from X to Y is
fitted on the training pairs, and the held-out pairs tell how well it transfers:

- ``procrustes``: ŷ = x W + ȳ with W = UVᵀ from the SVD of XᵀY (Schönemann 1966, "A generalized
  solution of the orthogonal Procrustes problem"; for p ≠ q the zero-padded problem of Williams
  et al. 2021, see :func:`analysis.measures.procrustes.orthogonal_procrustes_map`);
- ``procrustes-scaled``: the same W with the least-squares isotropic scale of the map,
  ŷ = s · x W + ȳ, s = ⟨XW, Y⟩ / ‖XW‖² on the training rows (for p ≤ q the classic
  tr Σ / ‖X‖²; for p > q it leaves out the variance of X that W drops, so the scaled map never
  fits the training rows worse than the unscaled one);
- ``ridge``: ridge regression with an intercept, α chosen on the training split by exact
  leave-one-out error over the relative grid of :mod:`analysis.measures.regression`;
- ``anchors``: relative representations (Moschella et al. 2023, "Relative representations enable
  zero-shot latent space communication"). m anchors are drawn from the training samples (by
  default min(300, n_train // 2)); each space is replaced by the cosine similarities of its
  samples to its own anchors (the same samples in both spaces), and the map between the two
  relative spaces is the identity. Here the target is Y's relative vector, the prediction X's,
  and every score below is computed in that m-dimensional relative space. Unlike
  :mod:`analysis.measures.relative`, the spaces are centred (with the training means) before the
  cosines, so the score does not depend on a translation of either space.

Scores, over the held-out samples and all output dimensions together::

    R² = 1 − Σᵢ ‖ŷᵢ − yᵢ‖² / Σᵢ ‖yᵢ − ȳ_train‖²

(scikit-learn's ``r2_score(..., multioutput="variance_weighted")``, except that the mean is the
training mean: the map is judged against predicting what was known at fitting time; below 0 it
does worse than that). ``r2_shuffled`` is the R² of the same family fitted on training pairs
whose Y rows were shuffled (seeded): what a map learned from an unrelated pairing scores.
Cross-space retrieval: each held-out sample's mapped ŷᵢ ranks all held-out targets yⱼ by cosine
similarity (in the centred space, or the relative space for anchors); top-k is the share of
samples whose own target is among the first k, ties counted against it; chance is k / n_test.
The residual of sample i is ‖ŷᵢ − yᵢ‖² / mean over held-out j of ‖yⱼ − ȳ_train‖²: about 1 means
as bad as predicting the mean. Residuals of training samples are in-sample, of held-out ones not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from analysis.errors import InputError
from analysis.measures.engine import BASELINE_WARNING, check_activations
from analysis.measures.procrustes import orthogonal_procrustes_map
from analysis.measures.regression import fit_ridge, training_svd
from analysis.measures.relative import MAX_ANCHORS, choose_anchors, relative_representation

__all__ = ["METHODS", "AlignmentResult", "fit_alignment"]

METHODS = {
    "procrustes": "Orthogonal Procrustes",
    "procrustes-scaled": "Orthogonal Procrustes with isotropic scale",
    "ridge": "Ridge linear map",
    "anchors": "Relative representations over anchors",
}
MIN_TRAIN = 4
MIN_TEST = 2
FEW_TEST = 20  # fewer held-out samples than this get a warning
BLOCK_ENTRIES = 1 << 21  # similarities held at once in retrieval: 16 MiB of float64

# A fitted map for one pairing of the training rows: (predictions, targets, note), n rows each.
Fit = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, str]]


@dataclass
class AlignmentResult:
    """A map from A to B fitted on a training split and scored on the held-out samples."""

    method: str
    estimator: str  # how the map was fitted, in one line
    n_train: int
    n_test: int
    d_a: int
    d_b: int
    r2: float  # held-out R², against the training mean
    r2_shuffled: float  # the same family fitted on shuffled training pairs
    retrieval_top1: float
    retrieval_top5: float  # top-min(5, n_test)
    retrieval_chance_top1: float  # 1 / n_test
    residuals: np.ndarray  # float32 (n,): ‖ŷᵢ − yᵢ‖² / mean_test ‖yⱼ − ȳ_train‖²
    test: np.ndarray  # bool (n,): True for held-out samples
    warnings: list[str] = field(default_factory=list)


def fit_alignment(
    x: np.ndarray,
    y: np.ndarray,
    method: str = "procrustes",
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    n_anchors: int | None = None,
    progress: Callable[[float], None] | None = None,
    name_a: str = "A",
    name_b: str = "B",
) -> AlignmentResult:
    """Fit a map from ``x`` to ``y`` on a seeded training split and score it on the rest.

    Parameters
    ----------
    x : (n, p) array, space A
    y : (n, q) array, space B, rows the same samples as ``x``
    method : a key of :data:`METHODS`
    test_fraction : share of samples held out, in (0, 1); at least 2 held out, 4 to train
    seed : the split, the shuffled pairing and the anchors
    n_anchors : anchors for ``method="anchors"`` (default min(300, n_train // 2))
    progress : called with the fraction done, a few times
    name_a, name_b : names of the two spaces in messages

    Returns
    -------
    AlignmentResult; see the module docstring for the definitions.
    """
    if method not in METHODS:
        raise InputError(f"unknown alignment method {method!r}: use one of {', '.join(METHODS)}")
    if n_anchors is not None and method != "anchors":
        raise InputError(f"n_anchors applies to the 'anchors' method only, not {method!r}")
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    x = check_activations(x, name_a, MIN_TRAIN + MIN_TEST)
    y = check_activations(y, name_b, MIN_TRAIN + MIN_TEST)
    n = len(x)
    if len(y) != n:
        raise InputError(f"the two spaces have different numbers of samples: {n} vs {len(y)}")
    n_test = math.ceil(test_fraction * n)
    n_train = n - n_test
    if n_test < MIN_TEST or n_train < MIN_TRAIN:
        raise InputError(
            f"a test fraction of {test_fraction:g} splits {n} samples into {n_train} to train "
            f"and {n_test} to test; alignment needs at least {MIN_TRAIN} and {MIN_TEST}"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    train, test_rows = np.sort(order[n_test:]), np.sort(order[:n_test])
    if not np.ptp(x[train], axis=0).any():
        raise InputError(
            f"{name_a}: every column is constant across the training samples; nothing to map"
        )
    if not np.ptp(y, axis=0).any():
        raise InputError(f"{name_b}: every column is constant across samples; R² is undefined")
    xc = x.astype(np.float64) - x[train].mean(axis=0, dtype=np.float64)
    yc = y.astype(np.float64) - y[train].mean(axis=0, dtype=np.float64)

    fit = _fitter(method, xc, yc, train, seed, n_anchors)
    predicted, target, note = fit(train)
    r2, residuals = _r2_and_residuals(predicted, target, train, test_rows, name_b)
    if progress:
        progress(0.4)
    shuffled = fit(train[rng.permutation(n_train)])
    r2_shuffled = _r2_and_residuals(*shuffled[:2], train, test_rows, name_b)[0]
    if progress:
        progress(0.7)
    ranks = _retrieval_ranks(predicted[test_rows], target[test_rows])
    if progress:
        progress(1.0)

    warnings = []
    p = x.shape[1]
    if method != "anchors" and n_train <= p:
        warnings.append(
            f"{n_train} training samples for {p} dimensions of {name_a}: the map is "
            "underdetermined, and directions the training samples do not span are guesses"
        )
    if n_test < FEW_TEST:
        warnings.append(f"only {n_test} held-out samples: R² and retrieval are noisy")
    if r2_shuffled >= BASELINE_WARNING:
        warnings.append(
            f"a map fitted on shuffled pairs already reaches R² = {r2_shuffled:.2f}: "
            "use more samples or fewer dimensions"
        )
    test = np.zeros(n, dtype=bool)
    test[test_rows] = True
    return AlignmentResult(
        method=method,
        estimator=f"{note}; fit on {n_train} samples, tested on {n_test}",
        n_train=n_train,
        n_test=n_test,
        d_a=p,
        d_b=y.shape[1],
        r2=r2,
        r2_shuffled=r2_shuffled,
        retrieval_top1=float(np.mean(ranks <= 1)),
        retrieval_top5=float(np.mean(ranks <= min(5, n_test))),
        retrieval_chance_top1=1.0 / n_test,
        residuals=residuals.astype(np.float32),
        test=test,
        warnings=warnings,
    )


def _fitter(
    method: str,
    xc: np.ndarray,
    yc: np.ndarray,
    train: np.ndarray,
    seed: int,
    n_anchors: int | None,
) -> Fit:
    """The map family of ``method`` as a function of ``pairing``: training row ``train[i]`` of
    X is paired with row ``pairing[i]`` of Y. Work shared by every pairing is done once here."""
    if method in ("procrustes", "procrustes-scaled"):
        scale = method == "procrustes-scaled"

        def procrustes(pairing: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
            w, _ = orthogonal_procrustes_map(xc[train], yc[pairing])
            mapped = xc @ w
            if not scale:
                return mapped, yc, "W = UVᵀ"
            # The least-squares scale of the map itself: s = ⟨XW, Y⟩ / ‖XW‖² on the training
            # rows (for p ≤ q, ‖XW‖ = ‖X‖ and this is the classic tr Σ / ‖X‖²).
            fitted = mapped[train]
            s = float(np.vdot(fitted, yc[pairing]) / max(np.vdot(fitted, fitted), 1e-300))
            return s * mapped, yc, f"W = UVᵀ, s = {s:.3g}"

        return procrustes
    if method == "ridge":
        svd = training_svd(xc[train])

        def ridge(pairing: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
            fitted = fit_ridge(svd, yc[pairing])
            note = f"ridge α = {fitted.relative_alpha:.0e}·‖X‖² by leave-one-out"
            return fitted.predict(xc), yc, note

        return ridge
    if n_anchors is None:
        n_anchors = min(MAX_ANCHORS, len(train) // 2)
    elif (
        isinstance(n_anchors, bool)
        or not isinstance(n_anchors, int | np.integer)
        or not 1 <= n_anchors < len(train)
    ):
        raise InputError(
            f"n_anchors must be a whole number from 1 to {len(train) - 1} (the anchors are "
            f"training samples), got {n_anchors!r}"
        )
    chosen = choose_anchors(len(train), int(n_anchors), seed)
    relative_x = relative_representation(xc, train[chosen])

    def anchors(pairing: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        relative_y = relative_representation(yc, pairing[chosen])
        return relative_x, relative_y, f"{len(chosen)} anchors, cosine"

    return anchors


def _r2_and_residuals(
    predicted: np.ndarray, target: np.ndarray, train: np.ndarray, test: np.ndarray, name: str
) -> tuple[float, np.ndarray]:
    """Held-out R² against the training mean of ``target``, and every row's residual."""
    errors = np.sum((predicted - target) ** 2, axis=1)
    spread = np.sum((target[test] - target[train].mean(axis=0)) ** 2, axis=1)
    if spread.sum() == 0.0:
        raise InputError(f"{name}: the held-out samples do not vary; R² is undefined")
    return float(1.0 - errors[test].sum() / spread.sum()), errors / spread.mean()


def _retrieval_ranks(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(m,) rank of row i of ``target`` among all its rows by cosine similarity to row i of
    ``predicted``: 1 is first; a tie counts against the own target, a zero row ties with all."""
    norms = np.linalg.norm(target, axis=1)
    unit = target / np.where(norms == 0.0, 1.0, norms)[:, None]
    m = len(predicted)
    ranks = np.empty(m, dtype=np.int64)
    step = max(1, BLOCK_ENTRIES // m)
    for start in range(0, m, step):
        rows = np.arange(start, min(m, start + step))
        # ‖ŷᵢ‖ is the same along row i, so ŷᵢ · uⱼ ranks the targets as the cosine does
        scores = predicted[rows] @ unit.T
        own = scores[rows - start, rows]
        ranks[rows] = np.sum(scores >= own[:, None], axis=1)
    return ranks
