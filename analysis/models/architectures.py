"""Built-in architectures that a ``.safetensors`` state dict can be loaded into.

Each architecture is an ``nn.Sequential`` of named top-level blocks, so the blocks are the
layers a user sees by default, and it can be rebuilt from the shapes in a state dict alone:
uploading weights needs only the architecture's name.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class TransformerConfig:
    """A tiny pre-LN transformer encoder (:func:`transformer`). Each sample's features are
    read as ``n_tokens`` tokens of ``token_features`` (a digit's 8 × 8 pixels as 8 rows of 8);
    every field is read back from a state dict's shapes (:meth:`from_state`), so uploading its
    weights needs only the architecture's name."""

    n_tokens: int
    token_features: int
    width: int  # d, the residual stream
    n_heads: int
    head_width: int  # of each head's queries, keys and values
    mlp_width: int
    n_blocks: int
    n_classes: int

    @classmethod
    def from_state(cls, state: StateDict) -> TransformerConfig:
        """The config whose :func:`transformer` holds the parameters of ``state``."""
        n_blocks = 0
        while f"block{n_blocks + 1}.ln1.weight" in state:
            n_blocks += 1
        needed = ("embed.proj.weight", "embed.pos", "block1.attn.q.weight", "block1.mlp.0.weight")
        if not n_blocks or any(name not in state for name in (*needed, "head.weight")):
            raise InputError(
                "expected keys embed.proj.weight, embed.pos, block1.ln1.weight, "
                "block1.attn.q.weight, block1.mlp.0.weight … and head.weight for architecture "
                "'transformer'"
            )
        width, token_features = state["embed.proj.weight"].shape
        _, n_heads, head_width = state["block1.attn.q.weight"].shape
        return cls(
            n_tokens=state["embed.pos"].shape[0],
            token_features=token_features,
            width=width,
            n_heads=n_heads,
            head_width=head_width,
            mlp_width=state["block1.mlp.0.weight"].shape[0],
            n_blocks=n_blocks,
            n_classes=state["head.weight"].shape[0],
        )


class TokenEmbedding(nn.Module):
    """A sample's features as ``n_tokens`` tokens, each projected to the residual stream
    (``proj``), plus a learnt position embedding (``pos``, n_tokens × width)."""

    def __init__(self, n_tokens: int, token_features: int, width: int) -> None:
        super().__init__()
        self.n_tokens, self.token_features = n_tokens, token_features
        self.proj = nn.Linear(token_features, width)
        self.pos = nn.Parameter(0.02 * torch.randn(n_tokens, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(x.shape[0], self.n_tokens, self.token_features)
        return self.proj(tokens) + self.pos


class HeadProjection(nn.Module):
    """Queries, keys or values of every head: ``weight`` is width × heads × head_width (the
    residual axis first, so its matrix ``width × (heads·head_width)`` is Wᵀ of the usual
    ``out × in`` projection, with the same singular values), ``bias`` heads × head_width. Heads
    and each head's coordinates are axes of their own, so a permutation spec can name them."""

    def __init__(self, width: int, n_heads: int, head_width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(width, n_heads, head_width) / width**0.5)
        self.bias = nn.Parameter(torch.zeros(n_heads, head_width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ntc,chk->nthk", x, self.weight) + self.bias


class HeadOutput(nn.Module):
    """The heads' values back into the residual stream: ``weight`` width × heads × head_width
    (the usual ``out × in`` matrix), ``bias`` width."""

    def __init__(self, width: int, n_heads: int, head_width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(
            torch.randn(width, n_heads, head_width) / (n_heads * head_width) ** 0.5
        )
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nthk,chk->ntc", z, self.weight) + self.bias


class SelfAttention(nn.Module):
    """Multi-head self-attention over all tokens (no mask), softmax(q·k / √head_width)."""

    def __init__(self, width: int, n_heads: int, head_width: int) -> None:
        super().__init__()
        self.q = HeadProjection(width, n_heads, head_width)
        self.k = HeadProjection(width, n_heads, head_width)
        self.v = HeadProjection(width, n_heads, head_width)
        self.o = HeadOutput(width, n_heads, head_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q(x), self.k(x), self.v(x)
        scores = torch.einsum("nthk,nshk->nhts", q, k) / q.shape[-1] ** 0.5
        return self.o(torch.einsum("nhts,nshk->nthk", scores.softmax(dim=-1), v))


class EncoderBlock(nn.Module):
    """Pre-LN: x + attn(ln1(x)), then + mlp(ln2(·)) with a GELU MLP (``mlp.0``, ``mlp.2``)."""

    def __init__(self, width: int, n_heads: int, head_width: int, mlp_width: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, n_heads, head_width)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_width), nn.GELU(), nn.Linear(mlp_width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class MeanTokens(nn.Module):
    """The mean over tokens: n × tokens × width → n × width."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


def transformer(config: TransformerConfig) -> nn.Sequential:
    """``embed`` (:class:`TokenEmbedding`), ``block1 … blockK`` (:class:`EncoderBlock`), a final
    LayerNorm ``norm``, the mean over tokens ``pool`` and a linear ``head``."""
    c = config
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        embed=TokenEmbedding(c.n_tokens, c.token_features, c.width)
    )
    for i in range(1, c.n_blocks + 1):
        layers[f"block{i}"] = EncoderBlock(c.width, c.n_heads, c.head_width, c.mlp_width)
    layers["norm"] = nn.LayerNorm(c.width)
    layers["pool"] = MeanTokens()
    layers["head"] = nn.Linear(c.width, c.n_classes)
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
    "transformer": lambda state: transformer(TransformerConfig.from_state(state)),
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
