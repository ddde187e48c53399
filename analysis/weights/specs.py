"""Permutation specs: which axes of which parameters are indexed by the same hidden units.

Permuting the hidden units of a layer (the output axis of its weight and bias, and the input
axis of the next layer's weight) leaves the function a network computes unchanged. A
:class:`PermutationSpec` declares these symmetries as Ainsworth, Hayase and Srinivasa (2023,
"Git Re-Basin", their ``PermutationSpec``) do: a name per permutation, and for each the list of
``(parameter name, axis)`` it acts on. A permutation is an index array ``perm`` of length n;
applying it to a parameter along an axis takes the entries ``perm[0], perm[1], …`` along that
axis (``np.take(w, perm, axis)``): unit i of the permuted network is unit ``perm[i]`` of the
original.

Specs are declared for the built-in architectures of :mod:`analysis.models.architectures`
(:func:`spec_for`); another architecture is refused with an :class:`~analysis.errors.InputError`
rather than guessed, since a wrong spec silently changes the function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from analysis.errors import InputError
from analysis.models.architectures import StateDict
from analysis.weights.formats import MATCHABLE

Permutations = dict[str, np.ndarray]
"""Permutation name → index array (a permutation of ``0 … n−1``)."""


@dataclass(frozen=True)
class PermutationSpec:
    """``perm_to_axes``: permutation name → the ``(parameter name, axis)`` pairs it permutes.

    ``axes_to_perm`` (derived) gives, for every parameter named in the spec, the permutation
    acting on each of its axes, or None for an axis no permutation acts on (a network's input
    features, its output classes, a conv kernel's spatial axes). Parameters not named are left
    alone by every permutation. ``shapes`` is the shape of every parameter the spec was built
    for, so a state dict of another shape is refused (:meth:`check`).
    """

    perm_to_axes: Mapping[str, tuple[tuple[str, int], ...]]
    shapes: Mapping[str, tuple[int, ...]]

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
        """The number of units permutation ``perm`` permutes."""
        name, axis = self.perm_to_axes[perm][0]
        return self.shapes[name][axis]

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
        return {perm: np.arange(self.size(perm)) for perm in self.perm_to_axes}


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
    ``blockI.qk`` (the coordinates of every head's queries and keys, the same for every head),
    ``blockI.v`` (the coordinates of every head's values, with the output projection's inputs)
    and ``blockI.mlp`` (the hidden units of its MLP).

    Why each leaves the function unchanged: LayerNorm's mean and variance over the residual
    coordinates do not depend on their order, so permuting its input and its weight and bias
    together permutes its output; every other layer that reads the stream (q, k, v, the MLP's
    first layer, the head) takes the permutation on its input axis, every layer that writes
    to it (the token projection, the position embedding, the output projection, the MLP's last
    layer) on its output axis, so the residual sums stay permuted alike. A head's score is
    Σ_k q_k·k_k, unchanged when q and k share a permutation of k and heads are reordered
    together; its values reach the stream only through the output projection, which takes
    their permutation and the heads' order on its input axes. Only permutations that act the
    same on every head's coordinates are declared (each head's own would need an axis per
    head), a subgroup of the full symmetry."""
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
    try:
        return PermutationSpec(perm_to_axes, shapes)
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
    except_axis: int | None = None,
) -> torch.Tensor:
    """Parameter ``name`` (``tensor``) with every permutation of the spec applied along its axes,
    except along ``except_axis``."""
    for axis, perm in enumerate(spec.axes_to_perm.get(name, ())):
        if perm is not None and axis != except_axis:
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
        n = spec.size(perm)
        if sorted(np.asarray(index).tolist()) != list(range(n)):
            raise InputError(f"{perm!r} is not a permutation of {n} units")
    return {name: permuted_parameter(spec, perms, name, w) for name, w in state.items()}
