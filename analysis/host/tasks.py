"""The tasks a model host runs (:mod:`analysis.host`): each loads the uploaded model from the
host's directory and returns JSON and arrays. Never imported by the worker itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from analysis.errors import InputError, plain
from analysis.measures.positions import PER_POSITION
from analysis.models.architectures import build_from_state_dict
from analysis.models.base import Model
from analysis.models.checkpoints import describe as describe_model
from analysis.models.checkpoints import load_checkpoint
from analysis.models.choices import TOKENS
from analysis.models.extraction import TokenRows, extract_activations, extract_tokens
from analysis.models.modules import as_model, is_torchscript
from analysis.probes.engine import run_probe
from analysis.stitching import stitching_matrix, token_stitching_matrix
from analysis.weights.formats import ENCODERS, FUNCTION_TOLERANCE
from analysis.weights.space import encoder_weight_space, weight_space

Progress = Callable[[float], None]


def _model(params: dict, inputs: dict, name: str = "model") -> Model | nn.Module:
    """The model in file ``inputs[name]``: the run's checkpoint (``"model"``, described by
    ``params``' format keys) or a second one (``"model_b"``, described by ``params[name]``)."""
    model_file: Path = inputs[name]
    described = params if name == "model" else params[name]
    return load_checkpoint(
        model_file,
        described["format"],
        described.get("architecture", ""),
        described.get("filename", ""),
        tuple(described["archive_limits"]),
    )


def describe(params: dict, inputs: dict, progress: Progress) -> tuple[dict, dict]:
    """Load the model (validating it) and describe its layers, for the checkpoint row."""
    model = _model(params, inputs)
    progress(1.0)
    return describe_model(model), {}


def fit(params: dict, inputs: dict, progress: Progress) -> tuple[dict, dict]:
    """Whether the model reads each dataset: the first sample of every ``x:<key>`` of
    ``inputs`` run through it (its default layers, every position kept). ``{"fits": {key:
    reason}, "shapes": {key: shapes}}``, the reason one plain sentence, "" where the model
    reads the sample; the shapes of the layers where it does: ``{"max_tokens": the most tokens
    a text is read as, or None, "layers": {layer: {"positions": rows of the sample, "d": width,
    "positional": whether the output has positions}}}``, from which a token-level extraction's
    size is told before it runs; and where ``inputs`` hold every text of the dataset
    (``texts:<key>``), ``"tokens"``: how many tokens they are read as in all."""
    model = as_model(_model(params, inputs))
    layers = model.default_layers()
    samples = {name[2:]: np.asarray(x)[:1] for name, x in inputs.items() if name.startswith("x:")}
    reasons, shapes = {}, {}
    for done, (key, x) in enumerate(samples.items(), start=1):
        try:
            found = extract_tokens(model, x, layers, device="cpu")
        except InputError as err:
            reasons[key] = str(err)
        except Exception as err:  # the model's own error, on this input
            reasons[key] = plain(err) or "the model failed on a sample of this dataset"
        else:
            reasons[key] = ""
            shapes[key] = {
                "max_tokens": model.max_tokens,
                "layers": {
                    name: {
                        "positions": len(rows.values),
                        "d": int(rows.values.shape[1]),
                        "positional": rows.positional,
                    }
                    for name, rows in found.items()
                },
            }
            texts = inputs.get(f"texts:{key}")
            counts = None if texts is None else model.token_counts(np.asarray(texts))
            if counts is not None:
                shapes[key]["tokens"] = int(counts.sum())
        progress(done / len(samples))
    return {"fits": reasons, "shapes": shapes}, {}


def extract(params: dict, inputs: dict, progress: Progress) -> tuple[dict, dict]:
    """``{layer: n × d float32}`` activations of ``inputs["x"]``; at every position (the
    ``tokens`` pooling): ``{layer: rows × d float32, "sample:<layer>": each row's sample,
    "position:<layer>": its position, "special:<layer>": whether ``mean`` leaves it out}``."""
    model = _model(params, inputs)
    if params["pooling"] == TOKENS:
        found = extract_tokens(
            model,
            np.asarray(inputs["x"]),
            params["layers"],
            device=params.get("device"),
            progress=progress,
        )
        arrays: dict[str, np.ndarray] = {}
        for layer, rows in found.items():
            arrays |= {layer: rows.values, f"sample:{layer}": rows.sample}
            arrays |= {f"position:{layer}": rows.position, f"special:{layer}": rows.special}
        return {}, arrays
    activations = extract_activations(
        model,
        np.asarray(inputs["x"]),
        params["layers"],
        params["pooling"],
        device=params.get("device"),
        progress=progress,
    )
    return {}, activations


def probe(params: dict, inputs: dict, progress: Progress) -> tuple[dict, dict]:
    """Probe results per family (JSON) and each family's per-sample array. ``inputs`` hold
    each layer's stored activations of the untransformed samples (``stored:<layer>``) and,
    at every position (the ``tokens`` pooling), each row's ``sample:<layer>``,
    ``position:<layer>`` and ``special:<layer>``, read as ``params["positions"]`` asks."""
    model = _model(params, inputs)
    stored: dict[str, np.ndarray | TokenRows] = {}
    for layer in params["layers"]:
        values = inputs[f"stored:{layer}"]
        if params["pooling"] != TOKENS:
            stored[layer] = values
            continue
        sample = np.asarray(inputs[f"sample:{layer}"])
        position = np.asarray(inputs[f"position:{layer}"])
        special = inputs.get(f"special:{layer}")  # older sets: none
        special = np.zeros(len(sample), bool) if special is None else np.asarray(special)
        stored[layer] = TokenRows(values, sample, position, special, bool(position.any()))
    results = run_probe(
        model,
        np.asarray(inputs["x"]),
        params["layers"],
        dict(params["families"]),
        stored,
        params["pooling"],
        seed=params["seed"],
        device=params.get("device"),
        progress=progress,
        positions=params.get("positions", PER_POSITION),
    )
    arrays = {f"per_sample:{i}": r.per_sample for i, r in enumerate(results)}
    return {"families": [r.to_json() for r in results]}, arrays


def weights(params: dict, inputs: dict, progress: Progress) -> tuple[dict, dict]:
    """The weight space between the run's checkpoint (A, ``inputs["model"]``) and a second one
    (B, ``inputs["model_b"]``) on the labelled samples ``inputs["x"]``, ``inputs["y"]``
    (:func:`analysis.weights.space.weight_space`); both must be torch modules whose
    parameters follow ``params["spec"]``, a built-in architecture."""
    if params["spec"] in ENCODERS.values():  # Hugging Face encoders: no class scores
        encoders = [_model(params, inputs, name) for name in ("model", "model_b")]
        for encoder in encoders:
            if not isinstance(getattr(encoder, "model", None), nn.Module):
                raise InputError("weight space reads the weights of torch models only")
        found = encoder_weight_space(
            encoders[0],
            encoders[1],
            params["spec"],
            np.asarray(inputs["x"]),
            seed=params["seed"],
            progress=progress,
        )
        return found, {}
    models = []
    for name in ("model", "model_b"):
        model = _model(params, inputs, name)
        if not isinstance(model, nn.Module):
            raise InputError("weight space reads the weights of torch models only")
        models.append(model)
    result = weight_space(
        models[0],
        models[1],
        params["spec"],
        np.asarray(inputs["x"]),
        np.asarray(inputs["y"]),
        seed=params["seed"],
        progress=progress,
    )
    return result, {}


def stitch(params: dict, inputs: dict, progress: Progress) -> tuple[dict, dict]:
    """A's layers stitched into B's (:func:`analysis.stitching.stitching_matrix`) on the
    labelled samples ``inputs["x"]``, ``inputs["y"]``: A is the run's checkpoint
    (``inputs["model"]``), B the second one (``inputs["model_b"]``), as an eager module
    (:func:`eager_module`, the built-in ``params["architecture_b"]`` for a TorchScript B); a
    Hugging Face text encoder B (no ``architecture_b``) is stitched at its tokens
    (:func:`analysis.stitching.token_stitching_matrix`)."""
    x, y = np.asarray(inputs["x"]), np.asarray(inputs["y"])
    model_a = _model(params, inputs)
    if not params["architecture_b"]:
        found = token_stitching_matrix(
            as_model(model_a),
            as_model(_model(params, inputs, "model_b")),
            x,
            y,
            params["layers_a"] or None,  # none named: every hidden state
            params["layers_b"] or None,
            test_fraction=params["test_fraction"],
            seed=params["seed"],
            affine=params["map"] == "affine",
            ridge=params["ridge"],
            device=params.get("device"),
            progress=progress,
        )
        return found.to_json(), {}
    model_b = eager_module(_model(params, inputs, "model_b"), params["architecture_b"], x)
    found = stitching_matrix(
        model_a,
        model_b,
        x,
        y,
        params["layers_a"] or None,  # none named: the default layers with vector outputs
        params["layers_b"] or None,
        test_fraction=params["test_fraction"],
        seed=params["seed"],
        affine=params["map"] == "affine",
        ridge=params["ridge"],
        n_anchors=params["n_anchors"] or None,
        device=params.get("device"),
        progress=progress,
    )
    return found.to_json(), {}


def eager_module(model: Model | nn.Module, architecture: str, x: np.ndarray) -> Model | nn.Module:
    """``model`` with layers that take forward hooks: a TorchScript model rebuilt as the eager
    built-in ``architecture`` from its own parameters, checked to compute the same outputs on
    ``x`` (to :data:`~analysis.weights.formats.FUNCTION_TOLERANCE` × max(1, largest |output|));
    any other model as it is."""
    if not (isinstance(model, nn.Module) and is_torchscript(model)):
        return model
    state = {name: value.detach().cpu() for name, value in model.state_dict().items()}
    eager = build_from_state_dict(architecture, state)
    inputs = torch.as_tensor(x, dtype=torch.float32)
    with torch.inference_mode():
        difference, scale = 0.0, 1.0
        for start in range(0, len(inputs), 1024):
            batch = inputs[start : start + 1024]
            scripted, rebuilt = model(batch).double(), eager(batch).double()
            if scripted.shape != rebuilt.shape:
                difference = float("inf")
                break
            difference = max(difference, float((scripted - rebuilt).abs().max()))
            scale = max(scale, float(scripted.abs().max()))
    if not difference <= FUNCTION_TOLERANCE * scale:
        raise InputError(
            f"model B's layers are named after the built-in {architecture!r}, but that "
            f"architecture with B's weights does not compute B's outputs (they differ by up to "
            f"{difference:.3g}), so B cannot be rebuilt as an eager module to stitch into"
        )
    return eager
