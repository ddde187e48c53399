"""Built-in architectures that a ``.safetensors`` state dict can be loaded into.

Each architecture is an ``nn.Sequential`` of named top-level blocks, so the blocks are the
layers a user sees by default, and it can be rebuilt from the shapes in a state dict alone:
uploading weights needs only the architecture's name.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from analysis.errors import InputError
from analysis.models.choices import ARCHITECTURES

StateDict = Mapping[str, torch.Tensor]


def mlp(in_features: int, hidden: Sequence[int], n_classes: int) -> nn.Sequential:
    """Flatten, then ``block1 … blockK`` (Linear + ReLU), then a linear ``head``."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    width = in_features
    for i, h in enumerate(hidden, start=1):
        layers[f"block{i}"] = nn.Sequential(nn.Linear(width, h), nn.ReLU())
        width = h
    layers["head"] = nn.Linear(width, n_classes)
    return nn.Sequential(layers)


def small_cnn(in_channels: int, widths: Sequence[int], n_classes: int) -> nn.Sequential:
    """``conv1 … convK`` (3×3 conv, stride 2 after the first, + ReLU), global average ``pool``,
    linear ``head``. Works on any image size."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = in_channels
    for i, w in enumerate(widths, start=1):
        stride = 1 if i == 1 else 2
        layers[f"conv{i}"] = nn.Sequential(
            nn.Conv2d(channels, w, kernel_size=3, stride=stride, padding=1), nn.ReLU()
        )
        channels = w
    layers["pool"] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    layers["head"] = nn.Linear(channels, n_classes)
    return nn.Sequential(layers)


def _numbered_shapes(state: StateDict, prefix: str) -> list[torch.Size]:
    """Weight shapes of ``{prefix}1.0.weight``, ``{prefix}2.0.weight`` … in order."""
    shapes = []
    i = 1
    while f"{prefix}{i}.0.weight" in state:
        shapes.append(state[f"{prefix}{i}.0.weight"].shape)
        i += 1
    return shapes


def _mlp_from_state(state: StateDict) -> nn.Module:
    shapes = _numbered_shapes(state, "block")
    if not shapes or "head.weight" not in state:
        raise InputError("expected keys block1.0.weight … and head.weight for architecture 'mlp'")
    return mlp(shapes[0][1], [s[0] for s in shapes], state["head.weight"].shape[0])


def _cnn_from_state(state: StateDict) -> nn.Module:
    shapes = _numbered_shapes(state, "conv")
    if not shapes or "head.weight" not in state:
        raise InputError(
            "expected keys conv1.0.weight … and head.weight for architecture 'small-cnn'"
        )
    return small_cnn(shapes[0][1], [s[0] for s in shapes], state["head.weight"].shape[0])


_BUILDERS: dict[str, Callable[[StateDict], nn.Module]] = {
    "mlp": _mlp_from_state,
    "small-cnn": _cnn_from_state,
}
"""How each of :data:`analysis.models.choices.ARCHITECTURES` is built from its weights."""


def build_from_state_dict(name: str, state: StateDict) -> nn.Module:
    """An eval-mode model of architecture ``name`` holding the weights in ``state``."""
    if name not in ARCHITECTURES:
        raise InputError(
            f"unknown architecture {name!r}; choose one of: {', '.join(sorted(ARCHITECTURES))}"
        )
    try:
        model = _BUILDERS[name](state)
    except (IndexError, TypeError, ValueError, RuntimeError) as err:
        raise InputError.caused_by(f"weights do not fit architecture {name!r}", err) from None
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as err:
        raise InputError.caused_by(f"weights do not fit architecture {name!r}", err) from None
    return model.eval()
