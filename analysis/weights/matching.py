"""Weight matching (Ainsworth, Hayase and Srinivasa 2023, "Git Re-Basin", algorithm 2).

Weight matching looks for the permutations π of B's hidden units that bring B's parameters
closest to A's:

    min_π ‖θ_A − π(θ_B)‖²   ⇔   max_π Σ_params ⟨θ_A, π(θ_B)⟩

(permuting leaves ‖θ_B‖ unchanged). Each parameter may be permuted along two axes by two
different permutations, so the problem couples them; algorithm 2 solves it by coordinate
descent: take the permutations one at a time in a random order and, holding the others fixed,
set permutation P to the solution of the linear assignment problem

    max_P Σ_i C[i, P(i)],   C[i, j] = Σ_{(w, axis) ∈ P's axes} ⟨A_w[i], π_{−axis}(B_w)[j]⟩

where ``A_w[i]`` is the slice of parameter w at index i along ``axis`` and ``π_{−axis}(B_w)`` is
B's parameter with every other permutation applied (scipy's ``linear_sum_assignment``, exact).
Passes repeat until none improves the objective. Each step is exact, so the objective never
decreases and the result is optimal in each permutation given the others; with a single
permutation (one hidden layer) it is the global optimum, with more it is a local one, which
can miss even an exactly permuted copy of A when layers are very narrow (a few units).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from analysis.errors import InputError
from analysis.models.architectures import StateDict
from analysis.weights.specs import Permutations, PermutationSpec, permuted_parameter

MAX_ITER = 100
RTOL = 1e-12
"""A step counts as an improvement when it raises the assignment's total by more than RTOL
times the sum of |C| (round-off of the float64 sums stays far below it)."""


def _cost(
    spec: PermutationSpec,
    perms: Permutations,
    a: dict[str, torch.Tensor],
    b: dict[str, torch.Tensor],
    perm: str,
) -> np.ndarray:
    """The n × n matrix C of the assignment problem for permutation ``perm``, others fixed."""
    n = spec.size(perm)
    cost = torch.zeros((n, n), dtype=torch.float64, device=next(iter(a.values())).device)
    for name, axis in spec.perm_to_axes[perm]:
        wa = a[name].movedim(axis, 0).reshape(n, -1)
        wb = permuted_parameter(spec, perms, name, b[name], except_axis=axis)
        cost += wa @ wb.movedim(axis, 0).reshape(n, -1).T
    return cost.cpu().numpy()


def weight_matching(
    spec: PermutationSpec,
    state_a: StateDict,
    state_b: StateDict,
    seed: int = 0,
    max_iter: int = MAX_ITER,
) -> Permutations:
    """The permutations of B's hidden units that bring ``state_b`` closest to ``state_a`` in L2
    (Git Re-Basin's algorithm 2, in float64, from the identity; ``seed`` draws the order in
    which each pass visits the permutations). Apply them with
    :func:`~analysis.weights.specs.apply_permutation` to ``state_b``.

    Stops after a pass in which no permutation improves, or after ``max_iter`` passes.
    """
    spec.check(state_a, "model A")
    spec.check(state_b, "model B")
    a = {name: state_a[name].detach().to(torch.float64) for name in spec.shapes}
    b = {name: state_b[name].detach().to(torch.float64) for name in spec.shapes}
    rng = np.random.default_rng(seed)
    names = list(spec.perm_to_axes)
    perms = spec.identity()
    for _ in range(max_iter):
        improved = False
        for k in rng.permutation(len(names)):
            perm = names[k]
            cost = _cost(spec, perms, a, b, perm)
            rows, cols = linear_sum_assignment(cost, maximize=True)
            old = cost[rows, perms[perm]].sum()
            new = cost[rows, cols].sum()
            if new - old > RTOL * np.abs(cost).sum():
                perms[perm] = cols
                improved = True
        if not improved:
            break
    return perms


def l2_distance(state_a: StateDict, state_b: StateDict) -> float:
    """‖θ_A − θ_B‖: the Euclidean norm of the difference of all parameters, in float64."""
    if set(state_a) != set(state_b):
        raise InputError(
            "the two models have different parameters: "
            f"{', '.join(sorted(set(state_a) ^ set(state_b)))}"
        )
    total = 0.0
    for name, wa in state_a.items():
        wb = state_b[name]
        if wa.shape != wb.shape:
            raise InputError(
                f"parameter {name!r} has shape {tuple(wa.shape)} in A, {tuple(wb.shape)} in B"
            )
        diff = wa.detach().to(torch.float64) - wb.detach().to(torch.float64)
        total += float(torch.sum(diff * diff))
    return float(np.sqrt(total))
