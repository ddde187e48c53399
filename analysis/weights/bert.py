"""The permutation structure of Hugging Face text encoders (BERT, RoBERTa, DistilBERT): the
built-in transformer's (:func:`analysis.weights.specs.transformer_spec`) on their names.

The three are post-LN (each block's sums pass through a LayerNorm: x ← LN(x + attn(x)), then
LN(x + mlp(x))), which permutes as the pre-LN blocks do: LayerNorm's mean and variance do not
depend on the order of the residual coordinates, so its weight and bias take the residual
stream's permutation. Their q, k, v projections are ``(heads·head_width) × width`` matrices and
their attention output ``width × (heads·head_width)``, heads contiguous (Hugging Face's
``transpose_for_scores`` and DistilBERT's ``shape`` split them so), so a spec over heads and
head coordinates reads them through a **view**: each reshaped to put the heads on an axis of
their own (:class:`ViewedSpec`), permuted, and reshaped back. The families differ only in
their parameters' names (:data:`LAYOUTS`): RoBERTa's are BERT's; DistilBERT has no token-type
embeddings and no pooler.

Permutations: ``residual`` (the embeddings' feature axis, every LayerNorm, every layer that
reads or writes the stream, the pooler's input) and per layer i ``layer{i}.heads``,
``layer{i}.qk``, ``layer{i}.v`` (both per head: each head's coordinates by a permutation of its
own) and ``layer{i}.mlp``. The pooler's output (the model's
``pooler_output``) is not permuted, so a permuted model's ``pooler_output`` is the original's
and its hidden states are the original's with the residual permutation applied to their
features (:func:`check_encoder_function` checks both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from analysis.errors import InputError
from analysis.models.architectures import StateDict
from analysis.weights.formats import ENCODER_NAMES, ENCODERS
from analysis.weights.matching import weight_matching
from analysis.weights.specs import Permutations, PermutationSpec, apply_permutation


@dataclass(frozen=True)
class ViewedSpec:
    """A permutation spec over reshaped views of some parameters: ``views`` gives the shape
    each named parameter is seen as (the same entries in the same order, ``reshape``), the
    others are seen as they are. ``spec`` names axes of the views."""

    spec: PermutationSpec
    views: Mapping[str, tuple[int, ...]]
    shapes: Mapping[str, tuple[int, ...]]  # every parameter's own shape

    def view(self, state: StateDict) -> dict[str, torch.Tensor]:
        return {name: w.reshape(self.views.get(name, w.shape)) for name, w in state.items()}

    def unview(self, state: StateDict) -> dict[str, torch.Tensor]:
        return {name: w.reshape(self.shapes.get(name, w.shape)) for name, w in state.items()}

    def apply(self, perms: Permutations, state: StateDict) -> dict[str, torch.Tensor]:
        """``state`` with its units permuted (see :func:`apply_permutation`), in its own
        shapes."""
        return self.unview(apply_permutation(self.spec, perms, self.view(state)))

    def match(self, state_a: StateDict, state_b: StateDict, seed: int = 0) -> Permutations:
        """Weight matching (:func:`weight_matching`) of ``state_b`` to ``state_a``."""
        return weight_matching(self.spec, self.view(state_a), self.view(state_b), seed=seed)


@dataclass(frozen=True)
class EncoderLayout:
    """Where one family of Hugging Face encoders keeps each parameter of the structure
    :func:`encoder_spec` declares (names without ``.weight`` or ``.bias``; ``{i}`` is a block's
    index)."""

    name: str  # the family as a refusal names it
    embeddings: tuple[str, ...]  # embedding tables, features on axis 1
    block: str  # the prefix of block i
    qkv: tuple[str, str, str]  # query, key and value projections, within a block
    out: str  # the attention's output projection
    ln1: str  # the LayerNorm after attention
    fc1: str  # the MLP's first layer
    fc2: str  # the MLP's second layer
    ln2: str  # the LayerNorm after the MLP
    pooler: str | None  # the pooler's dense layer (its input is the residual stream)


_BERT = EncoderLayout(
    name="BERT",
    embeddings=tuple(
        f"embeddings.{kind}_embeddings" for kind in ("word", "position", "token_type")
    ),
    block="encoder.layer.{i}.",
    qkv=("attention.self.query", "attention.self.key", "attention.self.value"),
    out="attention.output.dense",
    ln1="attention.output.LayerNorm",
    fc1="intermediate.dense",
    fc2="output.dense",
    ln2="output.LayerNorm",
    pooler="pooler.dense",
)

LAYOUTS = {
    "bert": _BERT,
    # RoBERTa's modules are BERT's, under BERT's names: only its tokenizer and the offset of
    # its position ids (which index rows of the position table, not features) differ
    "roberta": replace(_BERT, name="RoBERTa"),
    "distilbert": EncoderLayout(
        name="DistilBERT",
        embeddings=("embeddings.word_embeddings", "embeddings.position_embeddings"),
        block="transformer.layer.{i}.",
        qkv=("attention.q_lin", "attention.k_lin", "attention.v_lin"),
        out="attention.out_lin",
        ln1="sa_layer_norm",
        fc1="ffn.lin1",
        fc2="ffn.lin2",
        ln2="output_layer_norm",
        pooler=None,
    ),
}
assert set(LAYOUTS) == set(ENCODERS.values()), "formats.ENCODERS names the layouts"
"""The Hugging Face encoders whose permutation structure is declared, by the name
:data:`analysis.weights.formats.ENCODERS` gives them."""


def encoder_spec(state: StateDict, n_heads: int, family: str) -> ViewedSpec:
    """The viewed spec of the state dict of a Hugging Face encoder of ``family`` (a key of
    :data:`LAYOUTS`) whose attention has ``n_heads`` heads (``num_attention_heads`` of its
    config; the weights' shapes do not say)."""
    if family not in LAYOUTS:
        raise InputError(
            f"no permutation structure is declared for {family!r} encoders; weight matching "
            f"reads only {ENCODER_NAMES} encoders"
        )
    layout = LAYOUTS[family]
    query = f"{layout.block}{layout.qkv[0]}.weight"
    n_layers = 0
    while query.format(i=n_layers) in state:
        n_layers += 1
    word = f"{layout.embeddings[0]}.weight"
    if not n_layers or word not in state:
        raise InputError(
            f"the weights are not a {layout.name} encoder's: expected {word} "
            f"and {query.format(i=0)} …"
        )
    width = state[word].shape[1]
    attention = state[query.format(i=0)].shape[0]
    if n_heads < 1 or attention % n_heads:
        raise InputError(f"{n_heads} heads do not divide the attention width {attention}")
    head = attention // n_heads
    residual: list[tuple[str, int]] = [(f"{name}.weight", 1) for name in layout.embeddings]
    residual += [("embeddings.LayerNorm.weight", 0), ("embeddings.LayerNorm.bias", 0)]
    views: dict[str, tuple[int, ...]] = {}
    perm_to_axes: dict[str, tuple[tuple[str, int], ...]] = {}
    for i in range(n_layers):
        p, layer = layout.block.format(i=i), f"layer{i}"
        qkv = [f"{p}{name}" for name in layout.qkv]
        out, fc1, fc2 = (f"{p}{name}" for name in (layout.out, layout.fc1, layout.fc2))
        for name in qkv:
            views[f"{name}.weight"] = (n_heads, head, width)
            views[f"{name}.bias"] = (n_heads, head)
        views[f"{out}.weight"] = (width, n_heads, head)
        residual += [(f"{name}.weight", 2) for name in qkv]
        residual += [(f"{out}.weight", 0), (f"{out}.bias", 0)]
        residual += [
            (f"{p}{ln}.{x}", 0) for ln in (layout.ln1, layout.ln2) for x in ("weight", "bias")
        ]
        residual += [(f"{fc1}.weight", 1), (f"{fc2}.weight", 0), (f"{fc2}.bias", 0)]
        perm_to_axes[f"{layer}.heads"] = (
            *((f"{name}.{x}", 0) for name in qkv for x in ("weight", "bias")),
            (f"{out}.weight", 1),
        )
        perm_to_axes[f"{layer}.qk"] = tuple(
            (f"{name}.{x}", 1) for name in qkv[:2] for x in ("weight", "bias")
        )
        perm_to_axes[f"{layer}.v"] = (
            (f"{qkv[2]}.weight", 1),
            (f"{qkv[2]}.bias", 1),
            (f"{out}.weight", 2),
        )
        perm_to_axes[f"{layer}.mlp"] = (
            (f"{fc1}.weight", 0),
            (f"{fc1}.bias", 0),
            (f"{fc2}.weight", 1),
        )
    unpermuted = set()
    if layout.pooler is not None and f"{layout.pooler}.weight" in state:
        residual.append((f"{layout.pooler}.weight", 1))
        unpermuted.add(f"{layout.pooler}.bias")
    named = {name for pairs in (residual, *perm_to_axes.values()) for name, _ in pairs}
    unnamed = set(state) - named - unpermuted
    if unnamed:
        raise InputError(
            f"the weights have parameters a {layout.name} encoder does not: "
            + ", ".join(sorted(unnamed)[:5])
        )
    shapes = {name: tuple(w.shape) for name, w in state.items()}
    missing = [name for name in named if name not in shapes]
    if missing:
        raise InputError(f"the {layout.name} weights lack {', '.join(sorted(missing)[:5])}")
    viewed = {name: views.get(name, shapes[name]) for name in named}
    try:
        groups = {f"layer{i}.{x}": f"layer{i}.heads" for i in range(n_layers) for x in ("qk", "v")}
        spec = PermutationSpec({"residual": tuple(residual), **perm_to_axes}, viewed, groups)
    except InputError as err:
        raise InputError(f"the {layout.name} weights' shapes disagree with one another") from err
    return ViewedSpec(spec, views, shapes)


def check_encoder_function(
    original: torch.nn.Module,
    permuted: torch.nn.Module,
    residual: np.ndarray,
    inputs: Mapping[str, torch.Tensor],
) -> float:
    """The largest difference, on ``inputs`` (a tokenizer's batch), between ``permuted``'s
    outputs and ``original``'s with the residual permutation applied to their hidden states'
    features (``hidden[..., residual]``), over every hidden state and the pooler output where
    the model has one (DistilBERT has none)."""
    with torch.no_grad():
        a = original(**inputs, output_hidden_states=True)
        b = permuted(**inputs, output_hidden_states=True)
    index = torch.as_tensor(residual, dtype=torch.long)
    pooled = getattr(a, "pooler_output", None), getattr(b, "pooler_output", None)
    worst = 0.0 if pooled[0] is None else float((pooled[0] - pooled[1]).abs().max())
    for ha, hb in zip(a.hidden_states, b.hidden_states, strict=True):
        worst = max(worst, float((ha.index_select(-1, index) - hb).abs().max()))
    return worst
