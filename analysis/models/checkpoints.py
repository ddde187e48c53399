"""Loading checkpoints without unpickling anything, and describing their layers.

Formats: TorchScript archives (``torch.jit.save``); safetensors state dicts loaded into a
built-in architecture; Hugging Face model directories (:mod:`analysis.models.hf`); ONNX models
(:mod:`analysis.models.onnx`). Pickled ``torch.save`` files are refused: unpickling an untrusted
file can run arbitrary code. A fifth format, precomputed activations
(:mod:`analysis.models.precomputed`), has no model to load.

Every format behind one interface, :class:`~analysis.models.base.Model`: torch modules (eager or
TorchScript) through the adapter :class:`~analysis.models.modules.TorchModel`, Hugging Face
directories and ONNX files by classes of their own. The functions below take a ``Model`` or a
bare torch module.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from analysis.errors import InputError
from analysis.models.architectures import build_from_state_dict
from analysis.models.base import Model
from analysis.models.modules import as_model

FORMATS = ("torchscript", "safetensors", "huggingface", "onnx", "precomputed")
MODEL_FORMATS = FORMATS[:-1]
"""The formats that hold a model to run (precomputed activations do not)."""


def load_checkpoint(
    path: str | Path,
    fmt: str,
    architecture: str = "",
    filename: str = "",
    limits: tuple[int, int] | None = None,
) -> Model | nn.Module:
    """Load a checkpoint file as an eval-mode model on the CPU (a torch module as it is:
    :func:`as_model` adapts it). ``filename`` names the
    upload (archives and precomputed files are told apart by it); ``limits`` is
    ``(max_files, max_bytes)`` for archives."""
    if fmt == "torchscript":
        return load_torchscript(path)
    if fmt == "safetensors":
        if not architecture:
            raise InputError("a .safetensors state dict needs an architecture name")
        return load_safetensors(path, architecture)
    if fmt == "huggingface":
        from analysis.models.hf import load_huggingface

        return load_huggingface(path, filename, *(limits or ARCHIVE_LIMITS))
    if fmt == "onnx":
        from analysis.models.onnx import OnnxModel

        return OnnxModel(path)
    if fmt == "precomputed":
        raise InputError("precomputed activations have no model to run")
    raise InputError(f"unknown checkpoint format {fmt!r}; choose one of: {', '.join(FORMATS)}")


ARCHIVE_LIMITS = (10_000, 8 * 1024**3)
"""Default (files, unpacked bytes) limits of a model directory archive."""


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """Load a TorchScript archive; refuse anything else (notably pickled ``torch.save`` files)."""
    if not zipfile.is_zipfile(path):
        raise InputError(
            "not a TorchScript archive (not a zip file). Export the model with "
            "torch.jit.script(model).save(path), or upload a .safetensors state dict."
        )
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    if not any(n.endswith("/constants.pkl") for n in names) or not any(
        "/code/" in n for n in names
    ):
        raise InputError(
            "this archive is a pickled torch.save checkpoint, not TorchScript; it is refused "
            "because unpickling can run code. Export it with torch.jit.script(model).save(path) "
            "or save the state dict with safetensors."
        )
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # torch raises bare RuntimeErrors for corrupt archives
        raise InputError.caused_by("corrupt or unsupported TorchScript archive", err) from None
    return model.eval()


def load_safetensors(path: str | Path, architecture: str) -> nn.Module:
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError.caused_by("not a valid .safetensors file", err) from None
    return build_from_state_dict(architecture, state)


def input_kind(model: Model | nn.Module) -> str:
    """``"text"`` for models that read strings, ``"array"`` for the others."""
    return as_model(model).inputs


def layer_tree(model: Model | nn.Module) -> list[dict]:
    """Nested ``{name, type, parameters, children}`` of the model's parts (dotted names)."""
    return as_model(model).layer_tree()


def parameter_count(model: Model | nn.Module) -> int:
    return as_model(model).parameter_count()


def capturable_layers(model: Model | nn.Module) -> list[str]:
    """Layers whose outputs extraction can record, in forward order where known, ending with
    ``output``."""
    return as_model(model).capturable_layers()


def default_layers(model: Model | nn.Module) -> list[str]:
    """The layers extracted unless others are asked for."""
    return as_model(model).default_layers()


def describe(model: Model | nn.Module) -> dict:
    """What a checkpoint row records of its model: parameter count and layers."""
    model = as_model(model)
    return {
        "parameter_count": model.parameter_count(),
        "layer_tree": model.layer_tree(),
        "layers": model.capturable_layers(),
        "default_layers": model.default_layers(),
    }
