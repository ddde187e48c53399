"""The permutation structure of a BERT-style encoder (a Hugging Face ``BertModel`` state dict):
the built-in transformer's (:func:`analysis.weights.specs.transformer_spec`) on BERT's names.

BERT is post-LN (each block's sums pass through a LayerNorm: x ← LN(x + attn(x)), then
LN(x + mlp(x))), which permutes as the pre-LN blocks do: LayerNorm's mean and variance do not
depend on the order of the residual coordinates, so its weight and bias take the residual
stream's permutation. Its q, k, v projections are ``(heads·head_width) × width`` matrices and
its attention output ``width × (heads·head_width)``, heads contiguous (Hugging Face's
``transpose_for_scores`` splits them so), so a spec over heads and head coordinates reads them
through a **view**: each reshaped to put the heads on an axis of their own
(:class:`ViewedSpec`), permuted, and reshaped back.

Permutations: ``residual`` (the word, position and token-type embeddings' feature axis, every
LayerNorm, every layer that reads or writes the stream, the pooler's input) and per layer i
``layer{i}.heads``, ``layer{i}.qk``, ``layer{i}.v`` and ``layer{i}.mlp``. The pooler's output
(the model's ``pooler_output``) is not permuted, so a permuted model's ``pooler_output`` is
the original's and its hidden states are the original's with the residual permutation applied
to their features (:func:`check_bert_function` checks both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from analysis.errors import InputError
from analysis.models.architectures import StateDict
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


def bert_spec(state: StateDict, n_heads: int) -> ViewedSpec:
    """The viewed spec of a ``BertModel`` state dict whose attention has ``n_heads`` heads
    (``num_attention_heads`` of its config.json; the weights' shapes do not say)."""
    n_layers = 0
    while f"encoder.layer.{n_layers}.attention.self.query.weight" in state:
        n_layers += 1
    if not n_layers or "embeddings.word_embeddings.weight" not in state:
        raise InputError(
            "the weights are not a BERT encoder's: expected embeddings.word_embeddings.weight "
            "and encoder.layer.0.attention.self.query.weight …"
        )
    width = state["embeddings.word_embeddings.weight"].shape[1]
    attention = state["encoder.layer.0.attention.self.query.weight"].shape[0]
    if n_heads < 1 or attention % n_heads:
        raise InputError(f"{n_heads} heads do not divide the attention width {attention}")
    head = attention // n_heads
    residual: list[tuple[str, int]] = [
        (f"embeddings.{kind}_embeddings.weight", 1) for kind in ("word", "position", "token_type")
    ]
    residual += [("embeddings.LayerNorm.weight", 0), ("embeddings.LayerNorm.bias", 0)]
    views: dict[str, tuple[int, ...]] = {}
    perm_to_axes: dict[str, tuple[tuple[str, int], ...]] = {}
    for i in range(n_layers):
        p, layer = f"encoder.layer.{i}.", f"layer{i}"
        qkv = [f"{p}attention.self.{x}" for x in ("query", "key", "value")]
        out = f"{p}attention.output.dense"
        for name in qkv:
            views[f"{name}.weight"] = (n_heads, head, width)
            views[f"{name}.bias"] = (n_heads, head)
        views[f"{out}.weight"] = (width, n_heads, head)
        residual += [(f"{name}.weight", 2) for name in qkv]
        residual += [(f"{out}.weight", 0), (f"{out}.bias", 0)]
        residual += [
            (f"{p}{ln}.LayerNorm.{x}", 0)
            for ln in ("attention.output", "output")
            for x in ("weight", "bias")
        ]
        residual += [(f"{p}intermediate.dense.weight", 1)]
        residual += [(f"{p}output.dense.weight", 0), (f"{p}output.dense.bias", 0)]
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
            (f"{p}intermediate.dense.weight", 0),
            (f"{p}intermediate.dense.bias", 0),
            (f"{p}output.dense.weight", 1),
        )
    if "pooler.dense.weight" in state:
        residual.append(("pooler.dense.weight", 1))
    named = {name for pairs in (residual, *perm_to_axes.values()) for name, _ in pairs}
    unnamed = set(state) - named - {"pooler.dense.bias"}
    if unnamed:
        raise InputError(
            "the weights have parameters a BERT encoder does not: " + ", ".join(sorted(unnamed)[:5])
        )
    shapes = {name: tuple(w.shape) for name, w in state.items()}
    missing = [name for name in named if name not in shapes]
    if missing:
        raise InputError(f"the BERT weights lack {', '.join(sorted(missing)[:5])}")
    viewed = {name: views.get(name, shapes[name]) for name in named}
    try:
        spec = PermutationSpec({"residual": tuple(residual), **perm_to_axes}, viewed)
    except InputError as err:
        raise InputError("the BERT weights' shapes disagree with one another") from err
    return ViewedSpec(spec, views, shapes)


def check_bert_function(
    original: torch.nn.Module,
    permuted: torch.nn.Module,
    residual: np.ndarray,
    inputs: Mapping[str, torch.Tensor],
) -> float:
    """The largest difference, on ``inputs`` (a tokenizer's batch), between ``permuted``'s
    outputs and ``original``'s with the residual permutation applied to their hidden states'
    features (``hidden[..., residual]``), over every hidden state and the pooler output."""
    with torch.no_grad():
        a = original(**inputs, output_hidden_states=True)
        b = permuted(**inputs, output_hidden_states=True)
    index = torch.as_tensor(residual, dtype=torch.long)
    worst = float((a.pooler_output - b.pooler_output).abs().max())
    for ha, hb in zip(a.hidden_states, b.hidden_states, strict=True):
        worst = max(worst, float((ha.index_select(-1, index) - hb).abs().max()))
    return worst
