"""ONNX models, run with onnxruntime, with intermediate values exposed as layers.

A layer is the name of a float tensor some node of the graph computes (what Netron shows, e.g.
``/features/features.0/Relu_output_0`` for a model exported from PyTorch) plus ``output``, the
graph's first output. Recording a layer adds its value to the graph's outputs. The default
layers are the last value computed inside each top-level scope of a PyTorch export (``/fc1/…``,
``/features/…``) and the output; for graphs without scopes, every node's float output.

Models that keep weights in external data files are refused (the file would point to paths on
the server). A graph input with a fixed batch size is fed batches of exactly that size.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from analysis.errors import InputError
from analysis.models.base import OUTPUT, Model, Recorder

if TYPE_CHECKING:
    import onnxruntime

FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16 (onnx.TensorProto)


class OnnxModel(Model):
    inputs = "array"

    def __init__(self, path: str | Path):
        import onnx
        from onnx.external_data_helper import uses_external_data

        try:
            model = onnx.load(str(path), load_external_data=False)
            if any(uses_external_data(t) for t in model.graph.initializer):
                raise InputError(
                    "this ONNX model keeps its weights in external data files; export it as "
                    "one self-contained .onnx file"
                )
            onnx.checker.check_model(model)
            model = onnx.shape_inference.infer_shapes(model)
        except InputError:
            raise
        except Exception as err:  # protobuf DecodeError, onnx ValidationError, …
            raise InputError.caused_by("not a valid ONNX model", err) from None
        graph = model.graph
        initialized = {t.name for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initialized]
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise InputError(f"the ONNX model must take one input; it takes {names or 'none'}")
        if not graph.output:
            raise InputError("the ONNX model has no output")
        self.model = model
        self.input_name = inputs[0].name
        first = inputs[0].type.tensor_type.shape.dim
        self.fixed_batch = first[0].dim_value if first and first[0].HasField("dim_value") else 0
        self.output_name = graph.output[0].name
        types = {v.name: v.type.tensor_type.elem_type for v in graph.value_info}
        types.update({v.name: v.type.tensor_type.elem_type for v in graph.output})
        self.values: dict[str, str] = {}  # float value → the op computing it, in graph order
        for node in graph.node:
            for name in node.output:
                if name and name != self.output_name and types.get(name) in FLOAT_TYPES:
                    self.values[name] = node.op_type
        self.sizes = {t.name: int(np.prod(t.dims)) for t in graph.initializer}
        self.node_parameters = {
            name: sum(self.sizes.get(i, 0) for i in node.input)
            for node in graph.node
            for name in node.output
        }
        self.providers = ["CPUExecutionProvider"]

    def to(self, device: torch.device) -> OnnxModel:
        import onnxruntime

        wanted = torch.device(device).type == "cuda"
        available = onnxruntime.get_available_providers()
        self.providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if wanted and "CUDAExecutionProvider" in available
            else ["CPUExecutionProvider"]
        )
        return self

    def parameter_count(self) -> int:
        return sum(self.sizes.values())

    def capturable_layers(self) -> list[str]:
        return [*self.values, OUTPUT]

    def default_layers(self) -> list[str]:
        last_in_scope: dict[str, str] = {}
        for name in self.values:
            parts = name.split("/")
            if name.startswith("/") and len(parts) > 2:  # "/scope/…/Op_output_0"
                last_in_scope[parts[1]] = name
        chosen = list(last_in_scope.values()) if last_in_scope else list(self.values)
        return [*chosen, OUTPUT]

    def layer_tree(self) -> list[dict]:
        return [
            {
                "name": name,
                "type": op,
                "parameters": self.node_parameters.get(name, 0),
                "children": [],
            }
            for name, op in [*self.values.items(), (OUTPUT, "output")]
        ]

    def recorder(self, layers: list[str], pooling: str) -> Recorder:
        import onnx
        import onnxruntime

        available = set(self.capturable_layers())
        missing = [name for name in layers if name not in available]
        if missing:
            raise InputError(f"model has no layer(s) {', '.join(missing)}")
        values = [self.output_name if name == OUTPUT else name for name in layers]
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        present = {o.name for o in model.graph.output}
        for name in values:
            if name not in present:
                model.graph.output.append(onnx.ValueInfoProto(name=name))
                present.add(name)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        try:
            session = onnxruntime.InferenceSession(
                model.SerializeToString(), options, providers=self.providers
            )
        except Exception as err:  # unsupported operators or opsets
            raise InputError.caused_by("onnxruntime cannot run this model", err) from None

        def run(batch: torch.Tensor) -> dict[str, torch.Tensor]:
            x = batch.detach().cpu().numpy()
            step = self.fixed_batch or len(x)
            parts = [self._run(session, values, x[i : i + step]) for i in range(0, len(x), step)]
            return {
                name: torch.from_numpy(np.concatenate([p[k] for p in parts])[: len(x)])
                for k, name in enumerate(layers)
            }

        return run

    def _run(
        self, session: onnxruntime.InferenceSession, values: list[str], x: np.ndarray
    ) -> list[np.ndarray]:
        """One call of the session; a short last batch is padded to a fixed batch size."""
        if self.fixed_batch and len(x) < self.fixed_batch:
            x = np.concatenate([x, np.zeros((self.fixed_batch - len(x), *x.shape[1:]), x.dtype)])
        outputs = session.run(values, {self.input_name: x})
        return [np.asarray(o, dtype=np.float32) for o in outputs]
