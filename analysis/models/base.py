"""What a loaded model is, whatever its format: :class:`Model` names its layers and runs
batches (:mod:`analysis.models.checkpoints` loads every format; torch modules through
:class:`analysis.models.modules.TorchModel`, Hugging Face and ONNX through their own
classes)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

OUTPUT = "output"
"""Pseudo-layer name for what the model's forward returns."""


@dataclass(frozen=True)
class Positions:
    """One batch's activations at every position (the ``tokens`` pooling): ``values`` is
    ``rows × d``, and each row has its ``sample`` (index in the batch) and its ``position``: a
    text's token index counted over its real tokens (padding is never a row), a vision
    transformer's token index (the class token is position 0, the patches follow), a
    convolutional map's ``h · W + w``. Rows are sorted by sample, then position. ``special``
    marks the rows the ``mean`` pooling leaves out: a vision transformer's class token (and
    DeiT's distillation token), so a mean pooled from the rows is the ``mean`` extraction."""

    values: torch.Tensor
    sample: torch.Tensor
    position: torch.Tensor
    special: torch.Tensor

    def float(self) -> Positions:
        return Positions(self.values.float(), self.sample, self.position, self.special)

    def of_rows(self, rows: torch.Tensor) -> Positions:
        """The same rows with each sample renumbered to ``rows[sample]`` (a bucket's samples
        as positions in its batch)."""
        sample = rows.to(self.sample.device)[self.sample]
        return Positions(self.values, sample, self.position, self.special)

    @staticmethod
    def joined(parts: list[Positions]) -> Positions:
        """The rows of ``parts`` (of one batch), sorted by sample, then position."""
        sample = torch.cat([p.sample for p in parts])
        position = torch.cat([p.position for p in parts])
        order = torch.argsort(sample * (int(position.max()) + 1) + position, stable=True)
        values = torch.cat([p.values for p in parts])
        special = torch.cat([p.special for p in parts])
        return Positions(values[order], sample[order], position[order], special[order])


def positions_of(t: torch.Tensor, mask: torch.Tensor | None = None, prefix: int = 0) -> Positions:
    """A batch's layer output as one row per position (see :class:`Positions`): a token
    sequence ``batch × T × d`` at the tokens where ``mask`` (``batch × T``) is 1, every token
    without one; a convolutional map ``batch × C × H × W`` (or more spatial axes) at each of
    its flattened positions, the row its C channels; a ``batch × d`` output at position 0.
    The first ``prefix`` positions of each sample are special (a vision transformer's class
    and distillation tokens: :attr:`Positions.special`)."""
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim == 2:
        t = t[:, None, :]
    elif t.ndim > 3:
        t = t.flatten(2).transpose(1, 2)
    keep = (
        torch.ones(t.shape[:2], dtype=torch.bool, device=t.device) if mask is None else mask.bool()
    )
    sample = keep.nonzero(as_tuple=True)[0]
    position = (keep.long().cumsum(1) - 1)[keep]
    return Positions(t[keep], sample, position, position < prefix)


Recorder = Callable[[Any], Mapping[str, torch.Tensor | Positions]]
"""Runs one batch of inputs and returns ``{layer: output}``: a tensor, or for the ``tokens``
pooling of a recorder that reads masks itself, :class:`Positions`."""


class Model(ABC):
    """A loaded model: it names its own layers and runs batches itself.

    ``inputs`` says what a batch is: ``"array"`` (a float32 tensor), ``"image"`` (a float32
    ``n × C × H × W`` tensor in [0, 1]), ``"text"`` (a list of strings) or ``"text+image"``
    (either, for a dual encoder). A recorder may pool itself (token sequences need the
    attention mask) and then returns ``batch × d`` outputs.
    """

    inputs = "array"
    max_tokens: int | None = None
    """The most tokens a text is read as (models that read text; longer ones are truncated)."""

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

    def token_counts(self, texts: np.ndarray) -> np.ndarray | None:
        """How many tokens each text is read as (after truncation at :attr:`max_tokens`): the
        rows a token-level extraction stores of it; None for models that read no text."""
        return None

    def run_order(self, x: np.ndarray) -> np.ndarray | None:
        """The order to run the samples ``x`` in, when some orders cost less: texts sorted by
        length make batches of similar lengths, padded less. The results are the same in any
        order (each row is put back in its place); None: the dataset's order."""
        return None
