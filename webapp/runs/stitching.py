"""Model stitching between two checkpoints: asking for the run (refused at once where B cannot
be run as an eager torch module or a Hugging Face text encoder, or A not at all) and reading
its Report back as the page and the API draw it. The work runs in a model host
(:func:`analysis.host.tasks.stitch`, called by ``workers.tasks.stitching``); the definitions
are :mod:`analysis.stitching`'s."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from django.db import transaction

from analysis.errors import InputError
from analysis.measures.alignment import MIN_TEST, MIN_TRAIN
from analysis.weights.formats import (
    ENCODER_NAMES,
    ENCODERS,
    MATCHABLE,
    SCRIPTABLE,
    declared_architecture,
)
from webapp.catalog.models import Checkpoint, Dataset
from webapp.runs.models import Report, Run
from webapp.runs.submit import _check_inputs, _checked, _same_workspace, _submit

if TYPE_CHECKING:
    from webapp.catalog.models import AnyUser

B_FORMATS = (
    "stitching replaces one layer's output inside B, so B must be an eager torch module: a "
    f".safetensors state dict of a built-in architecture ({', '.join(MATCHABLE)}), a "
    f"TorchScript model whose layers follow the naming of {' or '.join(SCRIPTABLE)}, or a "
    f"Hugging Face text encoder ({ENCODER_NAMES}) stitched at its tokens"
)
"""What a refusal of model B says about the checkpoints that work."""

_WHY_NOT_B: dict[str, str] = {
    Checkpoint.Format.TORCHSCRIPT: (
        "a TorchScript model whose layers follow no built-in architecture's naming "
        "(TorchScript layers take no hooks)"
    ),
    Checkpoint.Format.HUGGINGFACE: (
        f"a Hugging Face directory of another kind than a {ENCODER_NAMES} text encoder"
    ),
    Checkpoint.Format.ONNX: "an ONNX model, whose layers take no hooks",
    Checkpoint.Format.PRECOMPUTED: "precomputed activations, with no model to run",
}

ACCURACY = {
    "id": "stitching/accuracy",
    "name": "accuracy",
    "range": [0.0, 1.0],
    "can_be_negative": False,
    "larger_is_more_similar": True,
    "reading": "higher = better",
    "definition": "share of held-out samples whose highest class score is their label",
}
"""The measure block of the page's heatmaps (static/js/heatmap)."""

DEFINITIONS = {
    "fitted": (
        "A up to layer i, then an affine (or linear) map fitted by least squares from A's "
        "layer i to B's layer j on the training samples, then B from layer j on; between two "
        "feature maps on the same grid the map is a 1×1 convolution (one map of the channels "
        "shared by every position, fitted over all positions)"
    ),
    "relative": (
        "zero-shot, nothing fitted (Moschella et al. 2023): each sample becomes its cosines to "
        "m anchor samples in A's layer i; B's layer j is rebuilt from those cosines through "
        "B's own anchors (pseudo-inverse), then B runs from layer j on; per-sample vectors only"
    ),
    "accuracy": ACCURACY["definition"],
    "r2": (
        "how well the mapped activations match B's own layer j on the held-out samples: "
        "1 − Σ‖ŷ − y‖² / Σ‖y − ȳ_train‖²"
    ),
    "chance": "the largest class share among the held-out labels (the best constant guess)",
}
"""One line per number the page shows."""

TITLES = {"fitted": "Fitted map", "relative": "Zero-shot (relative representations)"}


def b_architecture(checkpoint: Checkpoint) -> str:
    """The built-in architecture model B is run as (eager), ``""`` for a Hugging Face text
    encoder (run as it is, stitched at its tokens), or an :class:`InputError` that names the
    checkpoint and says which checkpoints work."""
    found = declared_architecture(checkpoint.format, checkpoint.architecture, checkpoint.layer_tree)
    if found in ENCODERS.values():
        return ""
    if found is None:
        what = _WHY_NOT_B.get(checkpoint.format, f"a {checkpoint.get_format_display()} checkpoint")
        raise InputError(f"{checkpoint.name} cannot be model B: it is {what}, and {B_FORMATS}")
    return found


def _chosen_layers(checkpoint: Checkpoint, layers: list[str] | None, side: str) -> list[str]:
    """The named layers, each checked to be one of the checkpoint's ([]: its default layers
    whose outputs are vectors, chosen in the host)."""
    if not layers:
        return []
    unknown = [layer for layer in layers if layer not in checkpoint.layers]
    if unknown:
        raise InputError(
            f"{checkpoint.name} (model {side}) has no layer {unknown[0]!r}; its layers: "
            f"{', '.join(checkpoint.layers)}"
        )
    if len(set(layers)) != len(layers):
        raise InputError(f"a layer of model {side} is named twice")
    return list(layers)


def _check_split(dataset: Dataset, test_fraction: float, n_anchors: int) -> None:
    """The samples split as :func:`analysis.stitching.stitching_matrix` splits them leave
    enough to fit, to score and to draw the anchors from."""
    n = dataset.n_samples
    n_test = math.ceil(test_fraction * n)
    n_train = n - n_test
    if n_train < MIN_TRAIN or n_test < MIN_TEST:
        raise InputError(
            f"a test fraction of {test_fraction:g} splits the {n} samples of {dataset.name} "
            f"into {n_train} to train and {n_test} to test; stitching needs at least "
            f"{MIN_TRAIN} and {MIN_TEST}"
        )
    if n_anchors >= n_train:
        raise InputError(
            f"{n_anchors} anchors asked for, but the anchors are among the {n_train} training "
            f"samples; choose fewer than {n_train}"
        )


@transaction.atomic
def request_stitching(
    user: AnyUser,
    checkpoint_a: Checkpoint,
    checkpoint_b: Checkpoint,
    dataset: Dataset,
    layers_a: list[str] | None = None,
    layers_b: list[str] | None = None,
    **parameters: Any,
) -> tuple[Run, bool]:
    """The run that stitches each layer of A (``layers_a``; default: its default layers with
    vector outputs) into each layer of B (``layers_b``, likewise) and scores the stitched
    models on the held-out samples of the labelled ``dataset``, by a fitted map and
    zero-shot. A and B may be the same checkpoint. ``parameters``: the kind's
    (``test_fraction``, ``seed``, ``map``, ``ridge``, ``n_anchors``)."""
    _same_workspace(dataset, checkpoint_a, checkpoint_b)
    if checkpoint_a.format == Checkpoint.Format.PRECOMPUTED:
        raise InputError(
            f"{checkpoint_a.name} cannot be model A: it is precomputed activations, and "
            "stitching runs A on the samples"
        )
    architecture = b_architecture(checkpoint_b)
    if not architecture and checkpoint_a.format != Checkpoint.Format.HUGGINGFACE:
        raise InputError(
            f"{checkpoint_a.name} cannot be model A: {checkpoint_b.name} is a Hugging Face text "
            "encoder, stitched at its tokens, so A must be a Hugging Face text encoder reading "
            "the same tokens"
        )
    if dataset.column("y") is None:
        raise InputError(f"{dataset.name} has no class labels; stitching is scored by accuracy")
    _check_inputs(checkpoint_a, dataset)
    _check_inputs(checkpoint_b, dataset)
    checked = _checked(Run.Kind.STITCH, **parameters)
    _check_split(dataset, checked["test_fraction"], checked["n_anchors"])
    params = {
        "layers_a": _chosen_layers(checkpoint_a, layers_a, "A"),
        "layers_b": _chosen_layers(checkpoint_b, layers_b, "B"),
        "architecture_b": architecture,
        **checked,
    }
    return _submit(Run.Kind.STITCH, user, dataset, params, checkpoint_a, checkpoint_b)


def stitching_view(run: Run) -> dict:
    """A stitching run as its page and API clients read it: the two checkpoints, the
    dataset, the parameters, the definitions, and once finished the run's Report (see
    :meth:`analysis.stitching.Stitching.to_json`) with its code version; ``result`` is None
    until then."""
    assert run.checkpoint_b is not None  # a stitching run has two checkpoints
    stored = Report.objects.filter(run=run).first()
    p = run.params
    return {
        "run": run.pk,
        "state": run.state,
        "checkpoint_a": {"id": run.checkpoint_id, "name": run.checkpoint.name},
        "checkpoint_b": {"id": run.checkpoint_b_id, "name": run.checkpoint_b.name},
        "dataset": {"id": run.dataset_id, "name": run.dataset.name},
        "layers_a": p["layers_a"],
        "layers_b": p["layers_b"],
        "architecture_b": p["architecture_b"],
        "parameters": {
            name: p[name] for name in ("test_fraction", "seed", "map", "ridge", "n_anchors")
        },
        "definitions": DEFINITIONS,
        "result": _as_now(stored.result) if stored else None,
        "code_version": stored.code_version if stored else None,
    }


def _as_now(result: dict) -> dict:
    """A stored result in today's layout. Reports stored before stitching took feature maps
    stitched per-sample vectors only: every layer's shape is its width, and no cell was
    refused."""
    if "shapes_a" in result:
        return result
    return {
        **result,
        "shapes_a": [[width] for width in result["dims_a"]],
        "shapes_b": [[width] for width in result["dims_b"]],
        "matrices": {
            method: {**matrix, "refused": [[None] * len(row) for row in matrix["accuracy"]]}
            for method, matrix in result["matrices"].items()
        },
    }


def _r2_note(r2: float | None) -> str:
    return "R² of B's layer: undefined (it does not vary)" if r2 is None else f"R² {r2:.4f}"


def _cell_note(estimator: str, r2: float | None, refused: str | None) -> str:
    """A cell's hover: how it was stitched and its R², or why it was not."""
    return f"not stitched: {refused}" if refused else f"{estimator} · {_r2_note(r2)}"


def stitching_matrices(view: dict) -> list[dict]:
    """Per method of a finished run: its title, definition, and the A-layer × B-layer
    accuracy matrix as the heatmap island draws it (each cell's hover naming the estimator
    and the held-out R² of the mapped layer, or why the pair was not stitched: an empty
    cell), with chance and B alone marked on its colour bar and each cell's hover saying its
    accuracy relative to them."""
    result = view["result"]
    if result is None:
        return []
    shown = []
    for position, (method, matrix) in enumerate(result["matrices"].items(), start=1):
        shown.append(
            {
                "method": method,
                "title": TITLES[method],
                "definition": DEFINITIONS[method],
                "json_id": f"stitching-{position}",
                "matrix": {
                    "measure": ACCURACY,
                    "layers_a": result["layers_a"],
                    "layers_b": result["layers_b"],
                    "value": matrix["accuracy"],
                    "estimator": [
                        [
                            _cell_note(matrix["estimator"], r2, why)
                            for r2, why in zip(r2_row, why_row, strict=True)
                        ]
                        for r2_row, why_row in zip(matrix["r2"], matrix["refused"], strict=True)
                    ],
                    "n": result["n_test"],
                    "d_a": result["dims_a"],
                    "d_b": result["dims_b"],
                    "marks": [
                        {"label": "chance", "value": result["chance"]},
                        {"label": "B alone", "value": result["accuracy_b"]},
                    ],
                    "checkpoint_a": {"name": f"A: {view['checkpoint_a']['name']}"},
                    "checkpoint_b": {"name": f"B: {view['checkpoint_b']['name']}"},
                },
            }
        )
    return shown


def zero_shot_failures(result: dict) -> str:
    """Where the zero-shot variant fails on these models, in one plain sentence: the pairs of
    layers whose stitched accuracy keeps less than half of B's accuracy above chance (B's
    layers where it fails from every layer of A it stitched first, then at most
    :data:`PAIRS_NAMED` pairs), among the pairs it stitched (not those with a feature map);
    "" without a zero-shot matrix."""
    matrix = result["matrices"].get("relative")
    if matrix is None:
        return ""
    if result["accuracy_b"] <= result["chance"]:
        return (
            "B alone does no better than chance on these samples, so neither matrix can show "
            "a stitched model keeping what B does."
        )
    bar = result["chance"] + (result["accuracy_b"] - result["chance"]) / 2
    layers_a, layers_b = result["layers_a"], result["layers_b"]
    values = matrix["accuracy"]  # [i][j]: A i → B j; None where not stitched
    stitched = [[value is not None for value in row] for row in values]
    failed = [[value is not None and value < bar for value in row] for row in values]
    total = sum(map(sum, stitched))
    if not total:
        return "The zero-shot variant stitches per-sample vectors only, and no pair here has both."
    count = sum(map(sum, failed))
    if not count:
        return (
            "On these models the zero-shot variant keeps at least half of B's accuracy above "
            "chance at every pair of layers it stitched."
        )
    columns = [
        [(row[j], done[j]) for row, done in zip(failed, stitched, strict=True)]
        for j in range(len(layers_b))
    ]
    whole = [
        j
        for j, column in enumerate(columns)
        if any(done for _, done in column) and all(bad for bad, done in column if done)
    ]
    parts = []
    if whole:
        into = f"into B's {_and([layers_b[j] for j in whole])}"
        if len(layers_a) > 1:
            some = not all(done for j in whole for _, done in columns[j])
            into += f" from every layer of A{' it stitched' if some else ''}"
        parts.append(into)
    single = [
        f"A's {layers_a[i]} → B's {layers_b[j]}"
        for i, row in enumerate(failed)
        for j, bad in enumerate(row)
        if bad and j not in whole
    ]
    if len(single) > PAIRS_NAMED:
        more = len(single) - PAIRS_NAMED
        single = [*single[:PAIRS_NAMED], f"{more} more pair{'s' if more > 1 else ''}"]
    if single:
        parts.append(_and(single))
    among = " it stitched" if total < len(layers_a) * len(layers_b) else ""
    return (
        f"On these models the zero-shot variant fails at {count} of {total} pairs of layers"
        f"{among} (less than half of B's accuracy above chance kept): {'; and '.join(parts)}."
    )


PAIRS_NAMED = 6
"""Pairs of layers the zero-shot sentence names one by one."""


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
