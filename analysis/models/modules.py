"""Torch modules, eager or TorchScript, behind the interface every model format implements
(:class:`analysis.models.base.Model`): described and run through their submodules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard, cast

import torch
from torch import nn

from analysis.errors import InputError
from analysis.models.base import OUTPUT, Model, Recorder


def as_model(model: Model | nn.Module) -> Model:
    """``model`` behind the common interface: a bare torch module is wrapped in a
    :class:`TorchModel` (the one place that looks at what kind of object a model is)."""
    return model if isinstance(model, Model) else TorchModel(model)


def is_torchscript(module: nn.Module) -> TypeGuard[torch.jit.ScriptModule]:
    return isinstance(module, torch.jit.ScriptModule)


def _forward_graph(module: torch.jit.ScriptModule) -> torch.Graph:
    """The graph of a TorchScript module's ``forward`` (a ScriptMethod, which torch's stubs
    type as any callable)."""
    return cast("torch._C.ScriptMethod[..., Any]", module.forward).graph


class TorchModel(Model):
    """An eager or TorchScript module. Its layers are its submodules: an eager module's are
    recorded by forward hooks; a TorchScript module's, which takes no hooks, are the top-level
    blocks its scripted ``forward`` calls once, read from the forward graph
    (:class:`ScriptCapture`)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def to(self, device: torch.device) -> TorchModel:
        self.module = self.module.to(device)
        return self

    def eval(self) -> TorchModel:
        self.module.eval()
        return self

    def layer_tree(self) -> list[dict]:
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

        return walk(self.module, "")

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def capturable_layers(self) -> list[str]:
        """Eager: every submodule. TorchScript: the top-level blocks called once, directly, in
        the scripted ``forward``."""
        if is_torchscript(self.module):
            names = list(_script_block_calls(_forward_graph(self.module)))
        else:
            names = [name for name, _ in self.module.named_modules() if name]
        return [*names, OUTPUT]

    def default_layers(self) -> list[str]:
        """Every top-level block, and the output unless it is the last block's output."""
        top = {name for name, _ in self.module.named_children()}
        layers = [name for name in self.capturable_layers() if name in top]
        return layers if self._output_is_a_block() else [*layers, OUTPUT]

    def recorder(self, layers: list[str], pooling: str) -> Recorder:
        if is_torchscript(self.module):
            return ScriptCapture(self.module, layers)
        available = set(self.capturable_layers())
        missing = [name for name in layers if name not in available]
        if missing:
            raise InputError(f"model has no layer(s) {', '.join(missing)}")
        modules = dict(self.module.named_modules())
        hooked = [name for name in layers if name != OUTPUT]

        def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
            captured: dict[str, torch.Tensor] = {}

            def hook_for(name: str) -> Callable[[nn.Module, Any, Any], None]:
                def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
                    captured[name] = output

                return hook

            handles = [modules[name].register_forward_hook(hook_for(name)) for name in hooked]
            try:
                output = self.module(x)
            finally:
                for handle in handles:
                    handle.remove()
            if OUTPUT in layers:
                captured[OUTPUT] = output
            return captured

        return run

    def _output_is_a_block(self) -> bool:
        if is_torchscript(self.module):
            graph = _forward_graph(self.module)
            returned = graph.return_node().inputsAt(0)
            return any(value == returned for value in _script_block_calls(graph).values())
        return isinstance(self.module, nn.Sequential) and len(self.module) > 0


def _type_name(module: nn.Module) -> str:
    return str(module.original_name) if is_torchscript(module) else type(module).__name__


def _script_block_calls(graph: torch.Graph) -> dict[str, torch.Value]:
    """Output values of ``self.<block>.forward(...)`` calls in a forward graph's top block, for
    blocks called exactly once anywhere in the graph (a block also called in a loop or branch
    has no single output to record)."""
    self_value = next(iter(graph.inputs()))
    top = set(graph.nodes())
    calls: dict[str, list[torch.Node]] = {}
    # torch's stubs give findAllNodes to Node only; Graph has it too
    for node in graph.findAllNodes("prim::CallMethod", recurse=True):  # type: ignore[attr-defined]
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
        graph = _forward_graph(self.model).copy()
        calls = _script_block_calls(graph)
        missing = [name for name in self.layers if name != OUTPUT and name not in calls]
        if missing:
            raise InputError(
                f"cannot record layer(s) {', '.join(missing)} of this TorchScript model; "
                f"available: {', '.join(TorchModel(self.model).capturable_layers())}"
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
