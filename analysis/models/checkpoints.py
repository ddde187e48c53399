"""Loading checkpoints without unpickling anything, and describing their layers.

Formats: TorchScript archives (``torch.jit.save``); safetensors state dicts loaded into a
built-in architecture; Hugging Face model directories (:mod:`analysis.models.hf`); ONNX models
(:mod:`analysis.models.onnx`). Pickled ``torch.save`` files are refused: unpickling an untrusted
file can run arbitrary code. A fifth format, precomputed activations
(:mod:`analysis.models.precomputed`), has no model to load.

Torch modules are described and run through their submodules; the other models are
:class:`~analysis.models.base.ForeignModel` objects that describe and run themselves.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from analysis.errors import InputError
from analysis.models.architectures import build_from_state_dict
from analysis.models.base import OUTPUT, ForeignModel, Model

FORMATS = ("torchscript", "safetensors", "huggingface", "onnx", "precomputed")
MODEL_FORMATS = FORMATS[:-1]
"""The formats that hold a model to run (precomputed activations do not)."""


def load_checkpoint(
    path: str | Path, fmt: str, architecture: str = "", filename: str = "", limits=None
) -> Model:
    """Load a checkpoint file as an eval-mode model on the CPU. ``filename`` names the
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
        raise InputError(f"corrupt or unsupported TorchScript archive: {err}") from None
    return model.eval()


def load_safetensors(path: str | Path, architecture: str) -> nn.Module:
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(f"not a valid .safetensors file: {err}") from None
    return build_from_state_dict(architecture, state)


def is_torchscript(model: Model) -> bool:
    return isinstance(model, torch.jit.ScriptModule)


def input_kind(model: Model) -> str:
    """``"text"`` for models that read strings, ``"array"`` for the others."""
    return model.inputs if isinstance(model, ForeignModel) else "array"


def _type_name(module: nn.Module) -> str:
    return module.original_name if is_torchscript(module) else type(module).__name__


def layer_tree(model: Model) -> list[dict]:
    """Nested ``{name, type, parameters, children}`` for every submodule (dotted names)."""
    if isinstance(model, ForeignModel):
        return model.layer_tree()

    def walk(module: nn.Module, prefix: str) -> list[dict]:
        nodes = []
        for name, child in module.named_children():
            path = f"{prefix}{name}"
            nodes.append(
                {
                    "name": path,
                    "type": _type_name(child),
                    "parameters": sum(p.numel() for p in child.parameters()),
                    "children": walk(child, f"{path}."),
                }
            )
        return nodes

    return walk(model, "")


def describe(model: Model) -> dict:
    """What a checkpoint row records of its model: parameter count and layers."""
    return {
        "parameter_count": parameter_count(model),
        "layer_tree": layer_tree(model),
        "layers": capturable_layers(model),
        "default_layers": default_layers(model),
    }


def parameter_count(model: Model) -> int:
    if isinstance(model, ForeignModel):
        return model.parameter_count()
    return sum(p.numel() for p in model.parameters())


def capturable_layers(model: Model) -> list[str]:
    """Layers whose outputs extraction can record, in forward order where known.

    Eager modules: every submodule (forward hooks). TorchScript: the top-level blocks called
    once, directly, in the scripted ``forward`` (hooks cannot be added to a loaded ScriptModule,
    so their outputs are read from the forward graph instead). Both end with ``output``.
    Foreign models name their own.
    """
    if isinstance(model, ForeignModel):
        return model.capturable_layers()
    if is_torchscript(model):
        names = list(_script_block_calls(model.forward.graph))
    else:
        names = [name for name, _ in model.named_modules() if name]
    return [*names, OUTPUT]


def default_layers(model: Model) -> list[str]:
    """Every top-level block, and the output unless it is the last block's output."""
    if isinstance(model, ForeignModel):
        return model.default_layers()
    top = {name for name, _ in model.named_children()}
    layers = [name for name in capturable_layers(model) if name in top]
    return layers if _output_is_a_block(model) else [*layers, OUTPUT]


def _output_is_a_block(model: nn.Module) -> bool:
    if is_torchscript(model):
        graph = model.forward.graph
        returned = graph.return_node().inputsAt(0)
        return any(value == returned for value in _script_block_calls(graph).values())
    return isinstance(model, nn.Sequential) and len(model) > 0


def _script_block_calls(graph: torch.Graph) -> dict[str, torch.Value]:
    """Output values of ``self.<block>.forward(...)`` calls in a forward graph's top block, for
    blocks called exactly once anywhere in the graph (a block also called in a loop or branch
    has no single output to record)."""
    self_value = next(iter(graph.inputs()))
    top = set(graph.nodes())
    calls: dict[str, list[torch.Node]] = {}
    for node in graph.findAllNodes("prim::CallMethod", recurse=True):
        owner = node.inputsAt(0).node()
        if (
            node.s("name") == "forward"
            and owner.kind() == "prim::GetAttr"
            and owner.inputsAt(0) == self_value
        ):
            calls.setdefault(owner.s("name"), []).append(node)
    return {
        name: nodes[0].outputsAt(0)
        for name, nodes in calls.items()
        if len(nodes) == 1 and nodes[0] in top
    }


@dataclass
class ScriptCapture:
    """A TorchScript forward rewritten to also return the outputs of chosen top-level blocks.

    Uses ``torch._C._create_function_from_graph``: TorchScript offers no public way to observe
    intermediate values of a loaded module.
    """

    model: torch.jit.ScriptModule
    layers: list[str]

    def __post_init__(self) -> None:
        graph = self.model.forward.graph.copy()
        calls = _script_block_calls(graph)
        missing = [name for name in self.layers if name != OUTPUT and name not in calls]
        if missing:
            raise InputError(
                f"cannot record layer(s) {', '.join(missing)} of this TorchScript model; "
                f"available: {', '.join(capturable_layers(self.model))}"
            )
        for name in self.layers:
            if name != OUTPUT:
                graph.registerOutput(calls[name])
        graph.makeMultiOutputIntoTuple()
        self._function = torch._C._create_function_from_graph("replens_capture", graph)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        output, *blocks = self._function(self.model._c, x)
        captured = dict(zip([n for n in self.layers if n != OUTPUT], blocks, strict=True))
        if OUTPUT in self.layers:
            captured[OUTPUT] = output
        return captured
