"""What weight matching does to unrelated weights: the chance level of
:mod:`~analysis.weights.spectra`'s alignment after matching, by Monte Carlo.

Before matching, unrelated weights score m(out) m(in) / 2 in expectation
(:func:`analysis.weights.chance.alignment_chance`). Matching permutes B's units to bring its
weights closest to A's, and that raises even unrelated weights' alignment; how much depends on
the architecture, the widths and the spectra, and has no closed form. So draw it:
:func:`matched_chance` draws K pairs of unrelated networks with A's and B's parameter shapes,
runs the same weight matching on each pair, and measures each layer's alignment before and
after it.

**Unrelated**, here: every floating-point parameter of A, and of B, replaced by one of the same
shape, the same singular values and a uniformly random orientation, independently for each
parameter, each side and each draw. A parameter of two or more axes, read as spectra's
``out × rest`` matrix W = U S Vᵀ (r = min(out, rest) singular values), becomes U' S V'ᵀ, with
U' and V' independent Haar-distributed ``out × r`` and ``rest × r`` orthonormal frames (the Q
of the QR of a Gaussian matrix, the signs of R's diagonal moved into Q, Mezzadri 2007); a
vector (a bias, a norm's scale) becomes one of the same norm in a uniformly random direction
(the same rule for an ``out × 1`` matrix). Why this reference and not Gaussian weights:

- it is exactly the reference of :mod:`~analysis.weights.chance` (independent matrices of
  uniformly random orientation, any spectrum independent of it), so before matching its mean
  alignment is m(out) m(in) / 2 exactly, and the two levels, before and after matching, are of
  the same unrelated weights;
- it keeps what matching cannot change and the alignment depends on: each layer's singular
  values, which are the alignment's weights s_i^A s_i^B and set how far a few directions
  dominate a layer (the fewer, the more a permutation can line them up). Only the orientation,
  which the alignment measures, is random. Gaussian weights of the same Frobenius norm are also
  Haar-oriented (the same level before matching) but have Marchenko–Pastur singular values, not
  the layer's own, so after matching they would answer for other weights. It matters: for the
  two digit MLPs that ``python -m tests.benchmarks.bench_weights`` trains, block2's level
  after matching is 0.071 with their own spectra, against 0.0055 for pairs of untrained
  (nearly Gaussian) MLPs of the same widths.

Limitation: each parameter's orientation is drawn on its own, so unrelated networks also lack
what ties a trained network's consecutive layers together (one layer's output directions
meeting the next one's input directions), which matching may use; the level is that of weights
unrelated to the other network and among themselves.

Per layer, the K draws give the mean alignment after matching, the chance level, with a 95 %
interval of that mean (Student's t with K − 1 degrees of freedom) and the draws' standard
deviation, how far one pair of unrelated networks scatters around it. Cost, per draw: one
weight matching of networks of A's size, the layers' spectra before and after it (the SVDs the
report makes once for A and B) and two QR factorisations per parameter and side; so about K
times the matching and the spectra together (K = :func:`draws_for` the network): for the demo's
``mlp-digits-seed0`` and ``-seed1`` (64 → 128 → 64 → 32 → 10) 0.26 s on one thread (BLAS's
too), beside 0.011 s for their matching and 0.007 s for their spectra; their whole report
takes 0.37 s instead of 0.10 s. For a BERT-base-sized encoder, whose matching alone takes
about two minutes on 2 shared cores (``bench_weights``), the K draws add K such matchings and
4K SVDs of every weight matrix (a 30,522 × 768 word embedding among them): so networks that
large get K = 2 (:func:`draws_for`), several minutes more, not tens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from analysis.models.architectures import StateDict
from analysis.weights.spectra import layer_spectra

DRAWS = 8
"""Pairs of unrelated networks drawn for a network of up to :data:`FULL_DRAWS_UP_TO` parameters:
each costs one weight matching."""
FULL_DRAWS_UP_TO = 5_000_000
"""Above this many parameters (of A) fewer pairs are drawn (:func:`draws_for`)."""


def draws_for(state: StateDict) -> int:
    """How many pairs to draw for networks the size of ``state``: :data:`DRAWS` up to
    :data:`FULL_DRAWS_UP_TO` parameters, then fewer, so that draws × parameters stays about
    40 million, and never fewer than two (an interval needs two): an all-MiniLM-L6-v2 (22.7
    million) or a BERT-base (110 million) gets two, whose matchings take minutes each. Fewer
    draws give a wider interval, which the report shows with their number."""
    parameters = sum(w.numel() for w in state.values() if w.is_floating_point())
    return max(2, min(DRAWS, DRAWS * FULL_DRAWS_UP_TO // max(1, parameters)))


Align = Callable[[StateDict, StateDict], StateDict]
"""Weight matching as the caller runs it: (A, B) → π(B), B with its units matched to A's."""


def haar_frame(rng: np.random.Generator, rows: int, columns: int) -> np.ndarray:
    """A ``rows × columns`` matrix (columns ≤ rows) of orthonormal columns drawn uniformly
    (Haar): the first ``columns`` columns of a uniformly random orthogonal matrix, as the Q of a
    Gaussian matrix's QR with the signs of R's diagonal moved into it (Mezzadri 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((rows, columns)))
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return q * signs


def singular_values(state: StateDict) -> dict[str, np.ndarray]:
    """The singular values of every floating-point parameter of one or more axes, read as an
    ``out × rest`` matrix (a vector as ``out × 1``: its norm)."""
    return {
        name: np.linalg.svd(
            w.detach().to(torch.float64).reshape(w.shape[0], -1).cpu().numpy(), compute_uv=False
        )
        for name, w in state.items()
        if w.is_floating_point() and w.ndim >= 1 and w.numel() > 0
    }


def unrelated_state(
    rng: np.random.Generator, state: StateDict, spectra: dict[str, np.ndarray]
) -> dict[str, torch.Tensor]:
    """``state`` with every parameter in ``spectra`` (:func:`singular_values` of ``state``)
    replaced by one of its shape and singular values, uniformly randomly oriented, in float64
    (see the module); the others kept as they are."""
    drawn = {}
    for name, w in state.items():
        if name not in spectra:
            drawn[name] = w
            continue
        rows, rest = w.shape[0], w.numel() // w.shape[0]
        s = spectra[name]
        u, v = haar_frame(rng, rows, len(s)), haar_frame(rng, rest, len(s))
        drawn[name] = torch.from_numpy((u * s) @ v.T).reshape(w.shape)
    return drawn


def summary(values: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """The mean of K ≥ 2 alignments with its ``level`` interval (Student's t, K − 1 degrees of
    freedom, clipped to the alignment's range [0, 1]) and their standard deviation:
    ``{mean, low, high, sd}``."""
    values = np.asarray(values, dtype=np.float64)
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, len(values) - 1)) * sd / np.sqrt(len(values))
    return {"mean": mean, "low": max(mean - half, 0.0), "high": min(mean + half, 1.0), "sd": sd}


@dataclass
class MatchedChance:
    """Each layer's alignment (:attr:`~analysis.weights.spectra.LayerSpectra.alignment`) in K
    pairs of unrelated networks: ``before`` and ``after`` matching, ``K × layers`` arrays, the
    layers named as :func:`~analysis.weights.spectra.layer_spectra` names them; ``seed`` drew
    them."""

    layers: list[str]
    before: np.ndarray
    after: np.ndarray
    seed: int

    @property
    def draws(self) -> int:
        return len(self.after)

    def after_matching(self) -> dict[str, dict[str, float]]:
        """Per layer, the chance level after matching: :func:`summary` of its K alignments."""
        return {name: summary(self.after[:, i]) for i, name in enumerate(self.layers)}

    def before_matching(self) -> dict[str, dict[str, float]]:
        """Per layer, :func:`summary` of its K alignments before matching (whose expectation is
        :func:`~analysis.weights.chance.alignment_chance`)."""
        return {name: summary(self.before[:, i]) for i, name in enumerate(self.layers)}


def matched_chance(
    state_a: StateDict,
    state_b: StateDict,
    align: Align,
    draws: int = DRAWS,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> MatchedChance:
    """The alignment of ``draws`` pairs of networks unrelated to each other, with the shapes and
    singular values of ``state_a`` and ``state_b`` (see the module), before and after ``align``
    matches the second to the first. Reproducible: ``seed`` draws everything (``align`` should
    be seeded itself); ``progress`` gets the fraction of the draws done after each step of
    each (the spectra, the matching, the spectra after it)."""
    if draws < 2:
        raise ValueError(f"an interval needs at least two draws, not {draws}")
    report = progress or (lambda f: None)
    rng = np.random.default_rng(seed)
    spectra_a, spectra_b = singular_values(state_a), singular_values(state_b)
    before, after, names = [], [], []
    for k in range(draws):
        a, b = unrelated_state(rng, state_a, spectra_a), unrelated_state(rng, state_b, spectra_b)
        unmatched = layer_spectra(a, b)
        report((k + 1 / 3) / draws)  # each step of a large network's draw takes minutes
        permuted = align(a, b)
        report((k + 2 / 3) / draws)
        matched = layer_spectra(a, permuted)
        names = [layer.name for layer in unmatched]
        before.append([layer.alignment for layer in unmatched])
        after.append([layer.alignment for layer in matched])
        report((k + 1) / draws)
    return MatchedChance(names, np.array(before), np.array(after), seed)
