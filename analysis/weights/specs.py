"""Permutation specs: which axes of which parameters are indexed by the same hidden units.

Permuting the hidden units of a layer (the output axis of its weight and bias, and the input
axis of the next layer's weight) leaves the function a network computes unchanged. A
:class:`PermutationSpec` declares these symmetries as Ainsworth, Hayase and Srinivasa (2023,
"Git Re-Basin", their ``PermutationSpec``) do: a name per permutation, and for each the list of
``(parameter name, axis)`` it acts on. A permutation is an index array ``perm`` of length n;
applying it to a parameter along an axis takes the entries ``perm[0], perm[1], …`` along that
axis (``np.take(w, perm, axis)``): unit i of the permuted network is unit ``perm[i]`` of the
original.

A permutation may also act **per group**: the coordinates of each attention head permuted by a
permutation of that head's own (:attr:`PermutationSpec.groups`), an array of one row per head.
One permutation across the concatenation of the heads' coordinates would mix heads, which
changes the function; the same permutation in every head is only a subgroup of the symmetry.

Specs are declared for the built-in architectures of :mod:`analysis.models.architectures`
(:func:`spec_for`); another architecture is refused with an :class:`~analysis.errors.InputError`
rather than guessed, since a wrong spec silently changes the function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from analysis.errors import InputError
from analysis.models.architectures import StateDict
from analysis.weights.formats import MATCHABLE

Permutations = dict[str, np.ndarray]
"""Permutation name → index array (a permutation of ``0 … n−1``; for a per-group permutation,
``G × n``, one such row per unit of its group)."""


@dataclass(frozen=True)
class PermutationSpec:
    """``perm_to_axes``: permutation name → the ``(parameter name, axis)`` pairs it permutes.

    ``axes_to_perm`` (derived) gives, for every parameter named in the spec, the permutation
    acting on each of its axes, or None for an axis no permutation acts on (a network's input
    features, its output classes, a conv kernel's spatial axes). Parameters not named are left
    alone by every permutation. ``shapes`` is the shape of every parameter the spec was built
    for, so a state dict of another shape is refused (:meth:`check`).

    ``groups``: per-group permutation → the permutation of its groups (``blockI.qk`` →
    ``blockI.heads``). Every parameter a per-group permutation acts on carries its group's
    permutation on another axis; row j of the ``G × n`` array permutes, along its own axis,
    the slice of **B's own** unit j of the group (before the group's permutation reorders
    the units), so that unit i of the permuted parameter is, for a head axis h and a
    coordinate axis c, ``w[heads[i], qk[heads[i], c]]``.
    """

    perm_to_axes: Mapping[str, tuple[tuple[str, int], ...]]
    shapes: Mapping[str, tuple[int, ...]]
    groups: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for perm, axes in self.perm_to_axes.items():
            for name, axis in axes:
                if not 0 <= axis < len(self.shapes.get(name, ())):
                    raise InputError(
                        f"permutation {perm!r} names a missing axis {axis} of {name!r}"
                    )
            sizes = {self.shapes[name][axis] for name, axis in axes}
            if len(sizes) != 1:
                raise InputError(f"permutation {perm!r} acts on axes of different sizes {sizes}")
        for perm, group in self.groups.items():
            if group not in self.perm_to_axes or group in self.groups:
                raise InputError(f"{perm!r} is grouped by {group!r}, not a plain permutation")
            for name, _ in self.perm_to_axes[perm]:
                if self.axes_to_perm[name].count(group) != 1:
                    raise InputError(f"{name!r} carries {perm!r} without its group {group!r}")

    @cached_property
    def axes_to_perm(self) -> dict[str, tuple[str | None, ...]]:
        axes: dict[str, list[str | None]] = {
            name: [None] * len(self.shapes[name])
            for pairs in self.perm_to_axes.values()
            for name, _ in pairs
        }
        for perm, pairs in self.perm_to_axes.items():
            for name, axis in pairs:
                axes[name][axis] = perm
        return {name: tuple(perms) for name, perms in axes.items()}

    def size(self, perm: str) -> int:
        """The number of units permutation ``perm`` permutes (per group for a per-group one)."""
        name, axis = self.perm_to_axes[perm][0]
        return self.shapes[name][axis]

    def shape(self, perm: str) -> tuple[int, ...]:
        """The shape of ``perm``'s index array: ``(n,)``, or ``(G, n)`` for a per-group one."""
        group = self.groups.get(perm)
        return (self.size(perm),) if group is None else (self.size(group), self.size(perm))

    def group_axis(self, name: str, perm: str) -> int:
        """The axis of parameter ``name`` that the group of per-group ``perm`` acts on."""
        return self.axes_to_perm[name].index(self.groups[perm])

    def check(self, state: StateDict, side: str = "state dict") -> None:
        """Refuse a state dict that lacks a parameter of the spec or holds one of another
        shape."""
        for name, shape in self.shapes.items():
            if name not in state:
                raise InputError(f"{side}: parameter {name!r} is missing")
            if tuple(state[name].shape) != shape:
                raise InputError(
                    f"{side}: parameter {name!r} has shape {tuple(state[name].shape)}, "
                    f"expected {shape}"
                )

    def identity(self) -> Permutations:
        """Every permutation the identity."""
        return {
            perm: np.broadcast_to(np.arange(self.size(perm)), self.shape(perm)).copy()
            for perm in self.perm_to_axes
        }

    def random(self, rng: np.random.Generator) -> Permutations:
        """Permutations drawn uniformly at random (each row of a per-group one on its own)."""
        return {perm: rng.permuted(index, axis=-1) for perm, index in self.identity().items()}

    def inverse(self, perms: Permutations) -> Permutations:
        """The permutations that undo ``perms``: ``apply_permutation(spec, spec.inverse(p),
        apply_permutation(spec, p, state))`` is ``state``. A per-group one's row j undoes the
        row of the unit the inverse group permutation puts at j: ``argsort(qk[heads[j]])``."""
        inverse = {
            perm: np.argsort(index) for perm, index in perms.items() if perm not in self.groups
        }
        for perm, group in self.groups.items():
            inverse[perm] = np.argsort(perms[perm][perms[group]], axis=-1)
        return inverse


def _chain_spec(state: StateDict, prefix: str, architecture: str) -> PermutationSpec:
    """The spec of a chain ``{prefix}1.0 … {prefix}K.0`` (weight and bias each) feeding a linear
    ``head``: permutation ``{prefix}i`` acts on the outputs of layer i (weight axis 0, bias) and
    the inputs of the layer after it (weight axis 1), the head for the last. The output axis of
    a conv weight (out × in × kh × kw) is axis 0 and its input axis 1, as for a linear weight
    (out × in); a global average pool between the last conv and the head keeps channels as
    features, one to one."""
    layers: list[str] = []
    while f"{prefix}{len(layers) + 1}.0.weight" in state:
        layers.append(f"{prefix}{len(layers) + 1}.0")
    expected = {f"{layer}.{p}" for layer in layers for p in ("weight", "bias")}
    expected |= {"head.weight", "head.bias"}
    if not layers or set(state) != expected:
        raise InputError(
            f"the weights do not have the parameters of architecture {architecture!r}: expected "
            f"{prefix}1.0.weight, {prefix}1.0.bias, … head.weight, head.bias"
        )
    shapes = {name: tuple(state[name].shape) for name in sorted(expected)}
    perm_to_axes = {}
    for i, layer in enumerate(layers):
        following = f"{layers[i + 1]}.weight" if i + 1 < len(layers) else "head.weight"
        perm_to_axes[layer.removesuffix(".0")] = (
            (f"{layer}.weight", 0),
            (f"{layer}.bias", 0),
            (following, 1),
        )
    try:
        return PermutationSpec(perm_to_axes, shapes)
    except InputError as err:
        raise InputError(
            f"the weights do not fit architecture {architecture!r}: consecutive layers' shapes "
            "disagree"
        ) from err


def mlp_spec(state: StateDict) -> PermutationSpec:
    """The spec of a built-in ``mlp``: one permutation per hidden layer, ``block1 … blockK``."""
    return _chain_spec(state, "block", "mlp")


def cnn_spec(state: StateDict) -> PermutationSpec:
    """The spec of a built-in ``small_cnn``: one permutation of channels per conv layer,
    ``conv1 … convK``."""
    return _chain_spec(state, "conv", "small-cnn")


def transformer_spec(state: StateDict) -> PermutationSpec:
    """The spec of a built-in ``transformer``
    (:func:`analysis.models.architectures.transformer`), after Ainsworth et al. 2023 (their
    transformer experiments): one permutation ``residual`` of the residual stream shared by
    every block, and per block ``blockI.heads`` (the order of its attention heads),
    ``blockI.qk`` (the coordinates of each head's queries and keys, per head),
    ``blockI.v`` (the coordinates of each head's values, with the output projection's inputs)
    and ``blockI.mlp`` (the hidden units of its MLP).

    Why each leaves the function unchanged: LayerNorm's mean and variance over the residual
    coordinates do not depend on their order, so permuting its input and its weight and bias
    together permutes its output; every other layer that reads the stream (q, k, v, the MLP's
    first layer, the head) takes the permutation on its input axis, every layer that writes
    to it (the token projection, the position embedding, the output projection, the MLP's last
    layer) on its output axis, so the residual sums stay permuted alike. A head's score is
    Σ_k q_k·k_k, unchanged when q and k share a permutation of k and heads are reordered
    together; its values reach the stream only through the output projection, which takes
    their permutation and the heads' order on its input axes. Each head's q/k and v
    coordinates are permuted by that head's own permutation (``blockI.qk`` and ``blockI.v``
    are per head, grouped by ``blockI.heads``): one permutation across all heads' coordinates
    would mix heads, and one shared by every head is a subgroup of the symmetry."""
    from analysis.models.architectures import TransformerConfig  # torch models, not specs

    config = TransformerConfig.from_state(state)
    blocks = [f"block{i}" for i in range(1, config.n_blocks + 1)]
    residual = [
        ("embed.proj.weight", 0),
        ("embed.proj.bias", 0),
        ("embed.pos", 1),
        ("norm.weight", 0),
        ("norm.bias", 0),
        ("head.weight", 1),
    ]
    perm_to_axes: dict[str, tuple[tuple[str, int], ...]] = {}
    for block in blocks:
        attn = f"{block}.attn"
        residual += [
            (f"{block}.ln1.weight", 0),
            (f"{block}.ln1.bias", 0),
            *((f"{attn}.{x}.weight", 0) for x in "qkvo"),
            (f"{attn}.o.bias", 0),
            (f"{block}.ln2.weight", 0),
            (f"{block}.ln2.bias", 0),
            (f"{block}.mlp.0.weight", 1),
            (f"{block}.mlp.2.weight", 0),
            (f"{block}.mlp.2.bias", 0),
        ]
        perm_to_axes[f"{block}.heads"] = (
            *((f"{attn}.{x}.weight", 1) for x in "qkvo"),
            *((f"{attn}.{x}.bias", 0) for x in "qkv"),
        )
        perm_to_axes[f"{block}.qk"] = tuple(
            (f"{attn}.{x}.{p}", 2 if p == "weight" else 1) for x in "qk" for p in ("weight", "bias")
        )
        perm_to_axes[f"{block}.v"] = (
            (f"{attn}.v.weight", 2),
            (f"{attn}.v.bias", 1),
            (f"{attn}.o.weight", 2),
        )
        perm_to_axes[f"{block}.mlp"] = (
            (f"{block}.mlp.0.weight", 0),
            (f"{block}.mlp.0.bias", 0),
            (f"{block}.mlp.2.weight", 1),
        )
    perm_to_axes = {"residual": tuple(residual), **perm_to_axes}
    expected = {name for pairs in perm_to_axes.values() for name, _ in pairs}
    expected |= {"head.bias"}
    if set(state) != expected:
        raise InputError(
            "the weights do not have the parameters of architecture 'transformer': "
            f"{', '.join(sorted(set(state) ^ expected)[:5])} differ"
        )
    shapes = {name: tuple(state[name].shape) for name in sorted(expected)}
    groups = {f"{block}.{x}": f"{block}.heads" for block in blocks for x in ("qk", "v")}
    try:
        return PermutationSpec(perm_to_axes, shapes, groups)
    except InputError as err:
        raise InputError(
            "the weights do not fit architecture 'transformer': their shapes disagree"
        ) from err


SPECS: dict[str, Callable[[StateDict], PermutationSpec]] = {
    "mlp": mlp_spec,
    "small-cnn": cnn_spec,
    "transformer": transformer_spec,
}
assert tuple(sorted(SPECS)) == tuple(sorted(MATCHABLE)), "formats.MATCHABLE names the specs"
"""The architectures (names of :data:`analysis.models.choices.ARCHITECTURES`) whose permutation
symmetry is declared, each with the builder of its spec from a state dict."""


def spec_for(architecture: str, state: StateDict) -> PermutationSpec:
    """The permutation spec of ``state``, a state dict of the built-in ``architecture``."""
    if architecture not in SPECS:
        raise InputError(
            f"no permutation spec is declared for architecture {architecture!r}; weight matching "
            f"supports: {', '.join(sorted(SPECS))}"
        )
    return SPECS[architecture](state)


def permuted_parameter(
    spec: PermutationSpec,
    perms: Permutations,
    name: str,
    tensor: torch.Tensor,
    except_axes: tuple[int, ...] = (),
) -> torch.Tensor:
    """Parameter ``name`` (``tensor``) with every permutation of the spec applied along its axes,
    except along ``except_axes``: per-group permutations first, on B's own units of their group
    (whether or not the group's axis is excepted), then the others."""
    on = spec.axes_to_perm.get(name, ())
    for axis, perm in enumerate(on):
        if perm is not None and perm in spec.groups and axis not in except_axes:
            group = spec.group_axis(name, perm)
            index = torch.as_tensor(perms[perm], dtype=torch.long, device=tensor.device)
            rows = torch.arange(len(index), device=tensor.device)[:, None]
            moved = tensor.movedim((group, axis), (0, 1))[rows, index]
            tensor = moved.movedim((0, 1), (group, axis))
    for axis, perm in enumerate(on):
        if perm is not None and perm not in spec.groups and axis not in except_axes:
            index = torch.as_tensor(perms[perm], dtype=torch.long, device=tensor.device)
            tensor = tensor.index_select(axis, index)
    return tensor


def apply_permutation(
    spec: PermutationSpec, perms: Permutations, state: StateDict
) -> dict[str, torch.Tensor]:
    """``state`` with its hidden units permuted by ``perms``: for every permuted axis,
    ``new.take(perm, axis)``. The permuted network computes the same function. Parameters the
    spec does not name are kept as they are (the same tensors)."""
    spec.check(state)
    if set(perms) != set(spec.perm_to_axes):
        raise InputError(f"expected permutations {sorted(spec.perm_to_axes)}, got {sorted(perms)}")
    for perm, index in perms.items():
        n, rows = spec.size(perm), np.asarray(index)
        if rows.shape != spec.shape(perm) or any(
            sorted(row.tolist()) != list(range(n)) for row in rows.reshape(-1, n)
        ):
            per = f" per unit of {spec.groups[perm]!r}" if perm in spec.groups else ""
            raise InputError(f"{perm!r} is not a permutation of {n} units{per}")
    return {name: permuted_parameter(spec, perms, name, w) for name, w in state.items()}
