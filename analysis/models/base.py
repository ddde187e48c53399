"""What a loaded model is, whatever its format: :class:`Model` names its layers and runs
batches (:mod:`analysis.models.checkpoints` loads every format; torch modules through
:class:`analysis.models.modules.TorchModel`, Hugging Face and ONNX through their own
classes)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

OUTPUT = "output"
"""Pseudo-layer name for what the model's forward returns."""

Recorder = Callable[[Any], dict[str, torch.Tensor]]
"""Runs one batch of inputs and returns ``{layer: output}``."""


class Model(ABC):
    """A loaded model: it names its own layers and runs batches itself.

    ``inputs`` says what a batch is: ``"array"`` (a float32 tensor), ``"image"`` (a float32
    ``n × C × H × W`` tensor in [0, 1]), ``"text"`` (a list of strings) or ``"text+image"``
    (either, for a dual encoder). A recorder may pool itself (token sequences need the
    attention mask) and then returns ``batch × d`` outputs.
    """

    inputs = "array"

    def to(self, device: torch.device) -> Model:
        return self

    def eval(self) -> Model:
        return self

    @abstractmethod
    def layer_tree(self) -> list[dict]:
        """Nested ``{name, type, parameters, children}`` of the model's parts."""

    @abstractmethod
    def parameter_count(self) -> int:
        """How many weights the model has."""

    @abstractmethod
    def capturable_layers(self) -> list[str]:
        """Layers whose outputs a recorder can return, in forward order, ending with
        :data:`OUTPUT`."""

    @abstractmethod
    def default_layers(self) -> list[str]:
        """The layers extracted unless others are asked for."""

    @abstractmethod
    def recorder(self, layers: list[str], pooling: str) -> Recorder:
        """A function running one batch and returning ``{layer: output}``."""

    def run_order(self, x: np.ndarray) -> np.ndarray | None:
        """The order to run the samples ``x`` in, when some orders cost less: texts sorted by
        length make batches of similar lengths, padded less. The results are the same in any
        order (each row is put back in its place); None: the dataset's order."""
        return None
