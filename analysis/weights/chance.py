"""What unrelated weights score on :mod:`~analysis.weights.spectra`'s alignment, without torch
(the web process says it for reports stored before it was kept).

The reference: A and B independent random ``p × q`` matrices whose orientation is uniformly
random, W = U S Vᵀ with U Haar on O(p), V Haar on O(q) and S any spectrum independent of
them (Gaussian matrices are such, whatever their variance). Then the i-th left singular
vectors u_i^A and u_i^B are independent uniform unit vectors of R^p, so ⟨u_i^A, u_i^B⟩ is
distributed as X, one coordinate of a uniform unit vector of R^p; likewise ⟨v_i^A, v_i^B⟩ as Y
in R^q, independent of X and of both spectra. With m(p) = E|X|,

    m(p) = Γ(p/2) / (√π Γ((p+1)/2))      (m(1) = 1, m(2) = 2/π, m(3) = 1/2, ≈ √(2/(πp))),

c_i = XY is symmetric about 0, so E max(c_i, 0) = E|XY| / 2 = m(p) m(q) / 2 for every i. The
alignment Σ_i w_i max(c_i, 0) / Σ_i w_i, with weights w_i = s_i^A s_i^B independent of the
c_i and summing to one after normalising, therefore has the expectation

    chance(p, q) = m(p) m(q) / 2,

whatever the spectra: about 1 / (π √(pq)) for large layers, so a 128 × 64 layer's unrelated
weights score 0.0035. It is a mean over independent draws, not a bound; a single pair of
unrelated layers scatters around it (less the more directions carry weight). It is the level of
weights as they are, before matching: weight matching permutes B's units to bring its weights
closest to A's, which raises even unrelated weights' alignment above it (two randomly
initialised digit MLPs 64 → 128 → 64 → 32 → 10 go from about chance to about twice it after
matching, ``python -m tests.benchmarks.bench_weights``). The level after matching has no closed
form; :mod:`analysis.weights.unrelated` draws it for unrelated weights of this same reference.
"""

from __future__ import annotations

import math


def mean_abs_cosine(p: int) -> float:
    """m(p) = E|⟨x, y⟩| for independent uniform unit vectors x, y of R^p (see the module),
    through log-gamma so that it stays finite for any width."""
    if p < 1:
        raise ValueError(f"a unit vector needs at least one dimension, not {p}")
    return math.exp(math.lgamma(p / 2) - math.lgamma((p + 1) / 2)) / math.sqrt(math.pi)


def alignment_chance(rows: int, columns: int) -> float:
    """The expected alignment of two independent ``rows × columns`` weight matrices with
    uniformly random orientation: m(rows) m(columns) / 2 (see the module)."""
    return mean_abs_cosine(rows) * mean_abs_cosine(columns) / 2
