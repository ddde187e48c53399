"""What a loaded model is, whatever its format: :class:`Model` names its layers and runs
batches (:mod:`analysis.models.checkpoints` loads every format; torch modules through
:class:`analysis.models.modules.TorchModel`, Hugging Face and ONNX through their own
classes)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch

OUTPUT = "output"
"""Pseudo-layer name for what the model's forward returns."""

Recorder = Callable[[Any], dict[str, torch.Tensor]]
"""Runs one batch of inputs and returns ``{layer: output}``."""


class Model(ABC):
    """A loaded model: it names its own layers and runs batches itself.

    ``inputs`` says what a batch is: ``"array"`` (a float32 tensor) or ``"text"`` (a list of
    strings). A recorder may pool itself (token sequences need the attention mask) and then
    returns ``batch × d`` outputs.
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
