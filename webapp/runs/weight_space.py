"""Weight space between two checkpoints: asking for the run (refused at once for checkpoints
whose weights cannot be read through a permutation spec) and reading its Report back as the
page and the API draw it. The work itself runs in a model host
(:func:`analysis.host.tasks.weights`, called by ``workers.tasks.weight_space``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.db import transaction

from analysis.errors import InputError
from analysis.weights.chance import alignment_chance
from analysis.weights.formats import (
    ENCODERS,
    FUNCTION_TOLERANCE,
    declared_architecture,
    refusal,
)
from webapp.catalog.models import Checkpoint, Dataset
from webapp.runs.models import Report, Run
from webapp.runs.submit import _check_inputs, _checked, _same_workspace, _submit

if TYPE_CHECKING:
    from webapp.catalog.models import AnyUser

DEFINITIONS = {
    "l2": "‖θ_A − θ_B‖: the Euclidean norm of the difference of all parameters",
    "loss_barrier": (
        "the largest rise of the loss along the path above the straight line between its "
        "ends (nats); about 0 when the two are linearly mode connected"
    ),
    "accuracy_barrier": (
        "the largest dip of the accuracy along the path below the straight line between its "
        "ends (fraction of samples)"
    ),
    "chance": (
        "what a classifier that ignores its input scores on these samples: the loss of "
        "predicting the class shares (their entropy, nats) and the accuracy of always "
        "predicting the largest class (its share)"
    ),
    "function_check": (
        "the largest difference between B's outputs and those of B with its units permuted, "
        f"on every sample; it must stay within {FUNCTION_TOLERANCE:g} × max(1, largest |output|)"
    ),
    "alignment": (
        "Σ s_i^A s_i^B max(c_i, 0) / Σ s_i^A s_i^B, where c_i is the cosine between the i-th "
        "rank-one components u_i v_iᵀ of A and B: 1 when their singular vectors coincide, "
        "the large singular values weighing most"
    ),
    "alignment_chance": (
        "what unrelated weights score before matching: the expected alignment of two "
        "independent random out × in matrices with uniformly random (Haar) orientation, "
        "whatever their singular values, m(out) m(in) / 2 with m(p) = Γ(p/2) / (√π Γ((p+1)/2)) "
        "the mean |cosine| between independent uniform unit vectors of R^p; about "
        "1 / (π √(out·in)). It is a mean: one pair of unrelated layers scatters around it, "
        "the more the fewer directions carry their weight. Matching raises even unrelated "
        "weights' alignment above it (it permutes B's units to bring its weights closest to "
        "A's), so it is the chance level of the alignment before matching, not after (that is "
        "'unrelated weights, matched')"
    ),
    "alignment_matched_chance": (
        "what unrelated weights score after the same matching: the mean alignment after weight "
        "matching (the same algorithm and seed) of K pairs of unrelated networks, each "
        "parameter of A and of B replaced by one of its shape and singular values with "
        "uniformly random (Haar) orientation (before matching, such pairs score the level "
        "above in expectation), with the 95% interval of that mean (Student's t, K − 1 "
        "degrees of freedom); one pair scatters around it by the draws' standard deviation. "
        "An alignment after matching inside or below it is no more than matching gives "
        "unrelated weights"
    ),
}
"""One line per number the page shows."""


def weight_architecture(checkpoint: Checkpoint) -> str:
    """The built-in architecture whose permutation spec reads ``checkpoint``'s weights, or an
    :class:`InputError` that names it and says which formats expose weights this way."""
    found = declared_architecture(checkpoint.format, checkpoint.architecture, checkpoint.layer_tree)
    if found is None:
        raise InputError(refusal(checkpoint.name, checkpoint.format, checkpoint.architecture))
    return found


def _sizes(tree: list[dict]) -> list[tuple[str, int]]:
    """Every layer of a layer tree with its number of parameters, depth first."""
    return [
        pair
        for node in tree
        for pair in [(node.get("name", ""), node.get("parameters", 0)), *_sizes(node["children"])]
    ]


@transaction.atomic
def request_weight_space(
    user: AnyUser,
    checkpoint_a: Checkpoint,
    checkpoint_b: Checkpoint,
    dataset: Dataset,
    **parameters: Any,
) -> tuple[Run, bool]:
    """The run that matches B's hidden units to A's and reports the weight space between them
    on the labelled ``dataset``: L2 distances, the linear paths with their barriers and each
    layer's spectra, before and after matching. ``parameters``: the kind's (the matching's
    seed)."""
    if checkpoint_a.pk == checkpoint_b.pk:
        raise InputError("choose two different checkpoints")
    _same_workspace(dataset, checkpoint_a, checkpoint_b)
    architecture, other = weight_architecture(checkpoint_a), weight_architecture(checkpoint_b)
    if other != architecture:
        raise InputError(
            f"{checkpoint_a.name} and {checkpoint_b.name} are not of one architecture "
            f"({architecture} and {other}); weight matching permutes the units of two networks "
            "of one architecture"
        )
    if _sizes(checkpoint_a.layer_tree) != _sizes(checkpoint_b.layer_tree):
        raise InputError(
            f"{checkpoint_a.name} and {checkpoint_b.name} are {architecture} networks of "
            "different widths or depths; their weights cannot be matched unit for unit"
        )
    encoder = architecture in ENCODERS.values()  # no class scores: no paths, no labels
    if not encoder and (dataset.modality == "text" or dataset.column("y") is None):
        raise InputError(
            f"{dataset.name} has no class labels; the loss and accuracy along the path need them"
        )
    _check_inputs(checkpoint_a, dataset)
    _check_inputs(checkpoint_b, dataset)
    params = {"spec": architecture, **_checked(Run.Kind.WEIGHTS, **parameters)}
    return _submit(Run.Kind.WEIGHTS, user, dataset, params, checkpoint_a, checkpoint_b)


def weight_space_view(run: Run) -> dict:
    """A weight-space run as its page and API clients read it: the two checkpoints, the
    dataset, the definitions, and once finished the run's Report (see
    :func:`analysis.weights.space.weight_space`) with its code version; ``result`` is None
    until then."""
    assert run.checkpoint_b is not None  # a weight-space run has two checkpoints
    stored = Report.objects.filter(run=run).first()
    return {
        "run": run.pk,
        "state": run.state,
        "checkpoint_a": {"id": run.checkpoint_id, "name": run.checkpoint.name},
        "checkpoint_b": {"id": run.checkpoint_b_id, "name": run.checkpoint_b.name},
        "dataset": {"id": run.dataset_id, "name": run.dataset.name},
        "architecture": run.params["spec"],
        "seed": run.params["seed"],
        "definitions": DEFINITIONS,
        "result": stored.result if stored else None,
        "code_version": stored.code_version if stored else None,
    }


def weight_space_charts(view: dict) -> dict:
    """What the page's plots draw: the two paths (loss, accuracy) and per layer the spectra
    of A and B and the cosines before and after matching."""
    result = view["result"]
    if result is None:
        return {}
    return {
        "lambdas": result["lambdas"],
        # None for reports stored before it was kept
        "chance": result.get("chance"),
        # None for an encoder, which has no class scores to score a path with
        "paths": None
        if result["naive"] is None
        else {
            quantity: {
                "naive": result["naive"][quantity],
                "matched": result["matched"][quantity],
            }
            for quantity in ("loss", "accuracy")
        },
        "layers": {
            layer["layer"]: {
                "singular_a": layer["singular_a"],
                "singular_b": layer["singular_b"],
                "cosines_before": layer["cosines_before"],
                "cosines_after": layer["cosines_after"],
            }
            for layer in result["layers"]
        },
    }


def alignment_rows(result: dict) -> list[dict]:
    """The page's row per layer of a report: its name, shape (``"64 × 128"``, None where not
    kept), number of singular values, alignment before and after matching, and ``chance``,
    what unrelated weights of its shape score (stored with the layer; computed from its shape
    where only that was kept). Reports stored before either was kept have ``chance`` None and
    ``unknown``, a sentence saying why and the most it can be: a layer with r singular values
    is at least r × r, and m decreases with the width. ``matched_chance``: what unrelated
    weights score after matching (``{mean, low, high, sd}`` as stored, and ``draws``); None,
    with ``matched_unknown`` saying why, for reports stored before it was kept."""
    draws = (result.get("unrelated") or {}).get("draws")
    rows = []
    for layer in result["layers"]:
        shape, chance = layer.get("shape"), layer.get("alignment_chance")
        matched = layer.get("alignment_matched_chance")
        if chance is None and shape is not None:
            chance = alignment_chance(*shape)
        r = len(layer["singular_a"])
        rows.append(
            {
                "layer": layer["layer"],
                "shape": " × ".join(map(str, shape)) if shape else None,
                "singular_values": r,
                "before": layer["alignment_before"],
                "after": layer["alignment_after"],
                "chance": chance,
                "matched_chance": None if matched is None else {**matched, "draws": draws},
                "matched_unknown": None
                if matched is not None
                else "not known: this report was stored before the level after matching was kept",
                "unknown": None
                if chance is not None
                else (
                    "not known: this report was stored before the layers' shapes were kept; "
                    f"with {r} singular values the layer is at least {r} × {r}, so its unrelated "
                    f"weights score at most {alignment_chance(r, r):.3g}"
                ),
            }
        )
    return rows


_KINDS = {"heads": 0, "qk": 1, "v": 2, "mlp": 3}


def _natural(name: str) -> tuple[str | int, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _permutation_order(name: str) -> tuple[tuple[str | int, ...], int, tuple[str | int, ...]]:
    """The residual stream first, then block by block (block2 before block10): its heads,
    their q/k and v coordinates, its MLP (a stored report's keys come back in JSONB's
    order)."""
    block, _, kind = name.rpartition(".")
    return (_natural(block), _KINDS.get(kind, -1), _natural(name))


def permuted_units(units: dict[str, int]) -> list[tuple[str, str]]:
    """Each permutation of a report's ``units`` with what it permutes, in words: a block's
    heads, each head's q/k or v coordinates (a permutation per head, grouped by the ``.heads``
    beside it), or hidden units."""
    described = []
    for name, size in sorted(units.items(), key=lambda item: _permutation_order(item[0])):
        block, _, what = name.rpartition(".")
        if what == "heads":
            described.append((name, f"{size} heads"))
        elif what in ("qk", "v") and f"{block}.heads" in units:
            kind = "query/key" if what == "qk" else "value"
            heads = units[f"{block}.heads"]
            described.append((name, f"{size} {kind} coordinates in each of {heads} heads"))
        else:
            described.append((name, f"{size} units"))
    return described
