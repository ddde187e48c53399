"""The weight space between two checkpoints of one architecture, as a run reports it.

:func:`weight_space` matches B's hidden units to A's (:mod:`~analysis.weights.matching`),
checks that the permuted B computes B's function on the data, and measures, before and after
matching: the L2 distance, loss and accuracy along the linear path (with its barriers,
:mod:`~analysis.weights.connectivity`) and each layer's spectra and singular-vector alignment
(:mod:`~analysis.weights.spectra`), beside what unrelated weights score on it before matching
(:mod:`~analysis.weights.chance`) and after the same matching (:mod:`~analysis.weights.unrelated`,
:func:`~analysis.weights.unrelated.draws_for` pairs). It reads weights only through a declared
permutation spec: a ``.safetensors`` state dict of a built-in architecture, or a TorchScript
model whose parameters follow a built-in architecture's naming
(:func:`analysis.weights.formats.declared_architecture`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.errors import InputError
from analysis.models.architectures import StateDict, build_from_state_dict
from analysis.weights.bert import LAYOUTS, check_encoder_function, encoder_spec
from analysis.weights.connectivity import (
    LAMBDAS,
    ConnectivityCurve,
    classifier_evaluator,
    evaluate_classifier,
    linear_path,
)
from analysis.weights.formats import FUNCTION_TOLERANCE
from analysis.weights.matching import l2_distance, weight_matching
from analysis.weights.specs import apply_permutation, spec_for
from analysis.weights.spectra import layer_spectra
from analysis.weights.unrelated import MatchedChance, draws_for, matched_chance


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """A loaded model's parameters and buffers by name, detached float copies on the CPU."""
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}


def _outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def function_check(
    model_b: nn.Module, architecture: str, permuted: dict[str, torch.Tensor], x: torch.Tensor
) -> dict:
    """Whether B permuted (built into ``architecture``) computes the same outputs as B as it
    was loaded, on the samples ``x``: ``{max_difference, scale, tolerance, passed}``."""
    out_b = _outputs(model_b, x)
    out_p = _outputs(build_from_state_dict(architecture, permuted), x)
    if out_b.shape != out_p.shape:
        return {"max_difference": None, "scale": None, "tolerance": None, "passed": False}
    difference = float((out_b.double() - out_p.double()).abs().max())
    scale = max(1.0, float(out_b.double().abs().max()))
    tolerance = FUNCTION_TOLERANCE * scale
    return {
        "max_difference": difference,
        "scale": scale,
        "tolerance": tolerance,
        "passed": bool(difference <= tolerance),
    }


def _curve_json(curve: ConnectivityCurve) -> dict:
    return {
        "loss": curve.loss.tolist(),
        "accuracy": curve.accuracy.tolist(),
        "loss_barrier": curve.loss_barrier,
        "accuracy_barrier": curve.accuracy_barrier,
    }


def weight_space(
    model_a: nn.Module,
    model_b: nn.Module,
    architecture: str,
    x: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> dict:
    """Everything the weight-space page shows about two loaded models whose parameters follow
    the built-in ``architecture``'s naming, as JSON:

    - ``parameters``: the permuted units (``units``: permutation → size);
    - ``function_check``: :func:`function_check` of π(B) against B on ``x``; a failure is
      refused (an :class:`InputError`), as the matched numbers would mean nothing;
    - ``l2``: ‖θ_A − θ_B‖ before and ‖θ_A − π(θ_B)‖ after matching;
    - ``models``: each model's own (loss, accuracy) on ``(x, labels)``, as loaded;
    - ``lambdas``, ``naive`` and ``matched``: loss and accuracy along (1−λ)θ_A + λθ_B and
      (1−λ)θ_A + λπ(θ_B), with their barriers;
    - ``chance``: :func:`chance_levels` of ``labels``, what a classifier that ignores its
      input scores;
    - ``layers``: per weight matrix, the singular values of A and B (π(B) has B's), and the
      cosines and alignment before and after matching, and the alignment of unrelated weights
      of the layer's shape before matching and after it;
    - ``unrelated``: how the level after matching was drawn (``draws`` pairs, ``seed``).
    """
    report = progress or (lambda f: None)
    x_t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(x_t) or not np.issubdtype(y.dtype, np.integer):
        raise InputError("weight space needs a dataset with an integer class label per sample")
    y_t = torch.as_tensor(y, dtype=torch.long)
    state_a, state_b = state_of(model_a), state_of(model_b)
    spec = spec_for(architecture, state_a)
    spec.check(state_b, "model B")
    perms = weight_matching(spec, state_a, state_b, seed=seed)
    permuted = apply_permutation(spec, perms, state_b)
    report(0.1)
    check = function_check(model_b, architecture, permuted, x_t)
    if not check["passed"]:
        found = check["max_difference"]
        raise InputError(
            "B with its units permuted does not compute the same function as B "
            + (f"(outputs differ by up to {found:.3g})" if found is not None else "")
            + f"; its layers are not those of the built-in {architecture!r} they are named after"
        )
    own = [evaluate_classifier(m, x_t, y_t) for m in (model_a, model_b)]
    evaluate = classifier_evaluator(architecture, x_t, y_t)
    naive = linear_path(state_a, state_b, evaluate, LAMBDAS)
    report(0.25)
    matched = linear_path(state_a, permuted, evaluate, LAMBDAS)
    report(0.4)
    unrelated = matched_chance(
        state_a,
        state_b,
        lambda a, b: apply_permutation(spec, weight_matching(spec, a, b, seed=seed), b),
        draws=draws_for(state_a),
        seed=seed,
        progress=lambda f: report(0.4 + 0.6 * f),
    )
    layers = _layer_spectra(state_a, state_b, permuted, unrelated)
    return {
        "architecture": architecture,
        "seed": seed,
        "n": len(y),
        "units": {perm: spec.size(perm) for perm in spec.perm_to_axes},
        "function_check": check,
        "l2": {
            "before": l2_distance(state_a, state_b),
            "after": l2_distance(state_a, permuted),
        },
        "models": {
            side: {"loss": loss, "accuracy": accuracy}
            for side, (loss, accuracy) in zip("ab", own, strict=True)
        },
        "lambdas": LAMBDAS.tolist(),
        "chance": chance_levels(y),
        "naive": _curve_json(naive),
        "matched": _curve_json(matched),
        "layers": layers,
        "unrelated": {"draws": unrelated.draws, "seed": unrelated.seed},
    }


def chance_levels(labels: np.ndarray) -> dict[str, float]:
    """What a classifier that ignores its input scores on ``labels``: the loss of predicting
    the class shares p_c, their entropy −Σ p_c ln p_c in nats (the least loss without the
    input), and the accuracy of always predicting the largest class, its share."""
    shares = np.bincount(labels) / len(labels)
    shares = shares[shares > 0]
    return {"loss": float(-(shares * np.log(shares)).sum()), "accuracy": float(shares.max())}


ENCODER_SAMPLES = 256
"""The function check of an encoder runs on the first ENCODER_SAMPLES texts (a BERT forward
pass per text costs far more than a small classifier's)."""


def encoder_weight_space(
    encoder_a: Any,
    encoder_b: Any,
    architecture: str,
    texts: np.ndarray,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> dict:
    """The weight space of two Hugging Face encoders of ``architecture`` (a value of
    :data:`analysis.weights.formats.ENCODERS`; each with ``model``, ``tokenizer`` and
    ``max_tokens``, as :class:`analysis.models.hf.HuggingFaceEncoder`), in the JSON of
    :func:`weight_space` without what needs class scores: ``models``, ``naive`` and
    ``matched`` are None and ``lambdas`` empty. The function check compares B's hidden states
    and pooler output with those of π(B) on the texts, the hidden states' features permuted by
    the residual permutation (an encoder's outputs are in its residual basis)."""
    report = progress or (lambda f: None)
    heads = {int(e.model.config.num_attention_heads) for e in (encoder_a, encoder_b)}
    if len(heads) != 1:
        raise InputError("the two encoders have different numbers of attention heads")
    state_a, state_b = state_of(encoder_a.model), state_of(encoder_b.model)
    viewed = encoder_spec(state_a, heads.pop(), architecture)
    viewed.spec.check(viewed.view(state_b), "model B")
    perms = viewed.match(state_a, state_b, seed=seed)
    permuted = viewed.apply(perms, state_b)
    report(0.4)
    copy_b = copy.deepcopy(encoder_b.model)
    copy_b.load_state_dict(permuted)
    sample = [str(t) for t in np.asarray(texts)[:ENCODER_SAMPLES]]
    tokens = encoder_b.tokenizer(
        sample, padding=True, truncation=True, max_length=encoder_b.max_tokens, return_tensors="pt"
    )
    difference = check_encoder_function(encoder_b.model, copy_b, perms["residual"], tokens)
    with torch.no_grad():
        hidden = encoder_b.model(**tokens, output_hidden_states=True).hidden_states
    scale = max(1.0, max(float(h.abs().max()) for h in hidden))
    tolerance = FUNCTION_TOLERANCE * scale
    if not difference <= tolerance:
        raise InputError(
            f"B with its units permuted does not compute the same function as B (outputs "
            f"differ by up to {difference:.3g}); its weights are not a "
            f"{LAYOUTS[architecture].name} encoder's"
        )
    report(0.5)
    unrelated = matched_chance(
        state_a,
        state_b,
        lambda a, b: viewed.apply(viewed.match(a, b, seed=seed), b),
        draws=draws_for(state_a),
        seed=seed,
        progress=lambda f: report(0.5 + 0.5 * f),
    )
    layers = _layer_spectra(state_a, state_b, permuted, unrelated)
    return {
        "architecture": architecture,
        "seed": seed,
        "n": len(sample),
        "units": {perm: viewed.spec.size(perm) for perm in viewed.spec.perm_to_axes},
        "function_check": {
            "max_difference": difference,
            "scale": scale,
            "tolerance": tolerance,
            "passed": True,
        },
        "l2": {"before": l2_distance(state_a, state_b), "after": l2_distance(state_a, permuted)},
        "models": None,
        "lambdas": [],
        "chance": None,
        "naive": None,
        "matched": None,
        "layers": layers,
        "unrelated": {"draws": unrelated.draws, "seed": unrelated.seed},
    }


def _layer_spectra(
    state_a: StateDict, state_b: StateDict, permuted: StateDict, unrelated: MatchedChance
) -> list[dict]:
    """Per layer, as stored: the shape ``[out, in]`` of its weight matrix, both matrices'
    singular values, the alignment of their singular vectors before (A against B) and after
    matching (A against π(B)), ``alignment_chance``, what unrelated weights of that shape
    score before matching (:attr:`~analysis.weights.spectra.LayerSpectra.chance`), and
    ``alignment_matched_chance``, what ``unrelated`` pairs with A's and B's spectra score after
    matching (:meth:`~analysis.weights.unrelated.MatchedChance.after_matching`: mean, low and
    high of its 95 % interval, sd of the draws)."""
    levels = unrelated.after_matching()
    return [
        {
            "layer": before.name,
            "shape": list(before.shape),
            "singular_a": before.singular_a.tolist(),
            "singular_b": before.singular_b.tolist(),
            "cosines_before": before.cosines.tolist(),
            "cosines_after": after.cosines.tolist(),
            "alignment_before": before.alignment,
            "alignment_after": after.alignment,
            "alignment_chance": before.chance,
            "alignment_matched_chance": levels[before.name],
        }
        for before, after in zip(
            layer_spectra(state_a, state_b), layer_spectra(state_a, permuted), strict=True
        )
    ]
