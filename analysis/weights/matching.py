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

Per-group permutations (each attention head's own permutation of its q/k and v coordinates,
:attr:`~analysis.weights.specs.PermutationSpec.groups`) are solved in their group's step, jointly
with it: for every pair (A's head i, B's head j) the best permutation of j's coordinates onto
i's is a linear assignment of its own, and its value is what pairing i with j is worth; the
heads' assignment then maximises the sum. Given the other permutations this is exact over the
heads' order and every head's coordinates together (a step over the coordinates alone, with
the heads' order held, could only reach a local optimum of the pair).
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
    grouped = {
        name
        for member, group in spec.groups.items()
        if group == perm
        for name, _ in spec.perm_to_axes[member]
    }
    for name, axis in spec.perm_to_axes[perm]:
        if name not in grouped:  # the others count through their coordinates' assignments
            wa = a[name].movedim(axis, 0).reshape(n, -1)
            wb = permuted_parameter(spec, perms, name, b[name], except_axes=(axis,))
            cost += wa @ wb.movedim(axis, 0).reshape(n, -1).T
    return cost.cpu().numpy()


def _per_group_cost(
    spec: PermutationSpec,
    perms: Permutations,
    a: dict[str, torch.Tensor],
    b: dict[str, torch.Tensor],
    perm: str,
) -> np.ndarray:
    """For per-group permutation ``perm`` of G groups of n coordinates, the G × G × n × n
    costs C[i, j, c, d]: what putting coordinate d of B's own group j at coordinate c of A's
    group i adds to ⟨θ_A, π(θ_B)⟩, the other permutations (not ``perm``'s group's) applied."""
    n, groups = spec.size(perm), spec.size(spec.groups[perm])
    cost = torch.zeros(
        (groups, groups, n, n), dtype=torch.float64, device=next(iter(a.values())).device
    )
    for name, axis in spec.perm_to_axes[perm]:
        group = spec.group_axis(name, perm)
        wa = a[name].movedim((group, axis), (0, 1)).reshape(groups, n, -1)
        wb = permuted_parameter(spec, perms, name, b[name], except_axes=(group, axis))
        wb = wb.movedim((group, axis), (0, 1)).reshape(groups, n, -1)
        cost += torch.einsum("icx,jdx->ijcd", wa, wb)
    return cost.cpu().numpy()


def _step(
    spec: PermutationSpec,
    perms: Permutations,
    a: dict[str, torch.Tensor],
    b: dict[str, torch.Tensor],
    perm: str,
) -> bool:
    """Set ``perm`` (and the per-group permutations it groups) to the best assignment given the
    other permutations; whether that raised the objective by more than round-off."""
    cost = _cost(spec, perms, a, b, perm)
    solutions = {}
    current = cost[np.arange(len(cost)), perms[perm]].sum()
    for member in (m for m, group in spec.groups.items() if group == perm):
        inner = _per_group_cost(spec, perms, a, b, member)
        best = np.empty(inner.shape[:3], dtype=np.int64)  # i, j → the assignment c → d
        for i, j in np.ndindex(*inner.shape[:2]):
            best[i, j] = linear_sum_assignment(inner[i, j], maximize=True)[1]
            cost[i, j] += inner[i, j][np.arange(inner.shape[2]), best[i, j]].sum()
        rows = np.arange(len(cost))
        held = perms[member][perms[perm]]  # the coordinates' assignment of the head at i
        current += inner[rows, perms[perm]][rows[:, None], np.arange(inner.shape[2]), held].sum()
        solutions[member] = best
    rows, cols = linear_sum_assignment(cost, maximize=True)
    if cost[rows, cols].sum() - current <= RTOL * np.abs(cost).sum():
        return False
    perms[perm] = cols
    for member, best in solutions.items():
        perms[member][cols] = best[rows, cols]
    return True


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
    names = [perm for perm in spec.perm_to_axes if perm not in spec.groups]  # in their group's
    perms = spec.identity()
    for _ in range(max_iter):
        improved = False
        for k in rng.permutation(len(names)):
            improved |= _step(spec, perms, a, b, names[k])
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
