"""Singular-value spectra of each layer's weights in two networks, and how well their singular
vectors align.

A layer's weight matrix W is its weight as ``out × in`` (a conv kernel ``out × in × kh × kw``
as ``out × (in·kh·kw)``), in float64, with thin SVD W = Σ_i s_i u_i v_iᵀ, s_1 ≥ s_2 ≥ … ≥ s_r,
r = min(out, in). Ito, Yamada and Kumagai (2024, "Analysis of linear mode connectivity via
permutation-based weight matching") argue that permuting units leaves each layer's singular
values unchanged and that weight matching works by aligning the singular vectors of the large
singular values of A and B. To show whether it does, for the i-th directions of A and B:

    c_i = ⟨u_i^A, u_i^B⟩ · ⟨v_i^A, v_i^B⟩ = ⟨u_i^A v_i^Aᵀ, u_i^B v_i^Bᵀ⟩_F  ∈ [−1, 1],

the cosine between the two unit rank-one components. It does not depend on the sign an SVD
routine picks for a pair (u_i, v_i), which flips both factors together. The layer's
**alignment** is

    alignment = Σ_i s_i^A s_i^B · max(c_i, 0)  /  Σ_i s_i^A s_i^B  ∈ [0, 1].

Why this form: Σ_i s_i^A s_i^B c_i is the part of ⟨W_A, W_B⟩_F carried by paired directions,
and Σ_i s_i^A s_i^B bounds ⟨W_A, W_B⟩_F (von Neumann's trace inequality), with equality exactly
when the two matrices share their singular vectors; so alignment is 1 when every direction of
non-zero weight coincides, and the weights s_i^A s_i^B let the large singular values dominate,
as the claim is about them. Only the positive part counts: a pair whose components point in
opposite directions (c_i < 0) cancels when the weights are averaged, as on the linear path, so
it counts as unaligned, not as aligned "up to sign". The weights are the same before and after
permuting B, so a change of alignment through matching comes from the singular vectors alone.

Limitation: c_i pairs directions by rank. Where a matrix has (nearly) repeated singular values,
the singular vectors within the repeated group are not unique, and c_i may understate how well
the subspaces agree; trained and random weights have distinct singular values with probability
one, but nearby ones in the bulk of the spectrum pair less stably than the large ones.

Unrelated weights do not score 0: two independent ``out × in`` matrices of uniformly random
orientation have the expected alignment m(out) m(in) / 2, m(p) = Γ(p/2) / (√π Γ((p+1)/2))
(:func:`analysis.weights.chance.alignment_chance`, derived there), about 1 / (π √(out·in)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from analysis.errors import InputError
from analysis.models.architectures import StateDict
from analysis.weights.chance import alignment_chance


def weight_matrix(weight: torch.Tensor) -> np.ndarray:
    """A weight of two or more axes as the float64 matrix ``out × (everything else)``."""
    if weight.ndim < 2:
        raise InputError(f"a weight of shape {tuple(weight.shape)} is not a matrix or a kernel")
    return weight.detach().to(torch.float64).reshape(weight.shape[0], -1).cpu().numpy()


@dataclass
class LayerSpectra:
    """One layer of two networks: the shape ``(out, in)`` of its weight matrix, singular values
    of each (descending, r = min(out, in) each), the cosines c_i between their i-th rank-one
    components, the layer's alignment and what unrelated weights of its shape score."""

    name: str
    shape: tuple[int, int]
    singular_a: np.ndarray
    singular_b: np.ndarray
    cosines: np.ndarray

    @property
    def alignment(self) -> float:
        weights = self.singular_a * self.singular_b
        return float(np.sum(weights * np.maximum(self.cosines, 0.0)) / np.sum(weights))

    @property
    def chance(self) -> float:
        """The expected alignment of two independent random matrices of this shape with
        uniformly random orientation (:func:`~analysis.weights.chance.alignment_chance`)."""
        return alignment_chance(*self.shape)


def compare_spectra(name: str, weight_a: torch.Tensor, weight_b: torch.Tensor) -> LayerSpectra:
    """The spectra of layer ``name``'s weights in A and B and the alignment of their singular
    vectors (see the module)."""
    wa, wb = weight_matrix(weight_a), weight_matrix(weight_b)
    if wa.shape != wb.shape:
        raise InputError(f"layer {name!r} has weights {wa.shape} in A and {wb.shape} in B")
    if not (np.all(np.isfinite(wa)) and np.all(np.isfinite(wb))):
        raise InputError(f"layer {name!r} has weights that are NaN or infinite")
    ua, sa, vta = np.linalg.svd(wa, full_matrices=False)
    ub, sb, vtb = np.linalg.svd(wb, full_matrices=False)
    if not np.any(sa * sb > 0):
        raise InputError(f"layer {name!r}: the weights of A or B are all zero; nothing to align")
    cosines = np.clip(np.sum(ua * ub, axis=0) * np.sum(vta * vtb, axis=1), -1.0, 1.0)
    return LayerSpectra(name, (wa.shape[0], wa.shape[1]), sa, sb, cosines)


def layer_spectra(state_a: StateDict, state_b: StateDict) -> list[LayerSpectra]:
    """:func:`compare_spectra` for every weight of two or more axes in ``state_a`` (linear and
    conv layers), in the state dict's order, each named by its layer (``block1.0``, ``head``)."""
    layers = []
    for name, weight in state_a.items():
        if weight.ndim >= 2 and name.endswith(".weight"):
            if name not in state_b:
                raise InputError(f"model B has no parameter {name!r}")
            layers.append(compare_spectra(name.removesuffix(".weight"), weight, state_b[name]))
    return layers
