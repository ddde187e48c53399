"""Seeded, parameterised transformation families for invariance and equivariance probes.

A family g_t maps a batch to a transformed batch of the same type, shape and dtype, for a
magnitude t (in the family's ``unit``) and a seed. g_0 is the identity: every family returns an
exact copy at t = 0 (a new tensor or list, never the input). Probes run a model on g_t x for each
t of a grid (see docs/MEASURES.md, "Invariance and equivariance probes").

Images are floating tensors N × C × H × W with values nominally in [0, 1]; nothing is clamped.
Positions are pixel centres; "the centre" is ((W − 1)/2, (H − 1)/2); x runs right, y down.

- **image/rotation** (degrees): counter-clockwise on screen about the centre, bilinear, zero
  fill (``grid_sample``, ``align_corners=False``). A multiple of 90° is ``torch.rot90`` on the
  (H, W) axes, exact, whenever it keeps the shape (180° always, ±90° on square images); the
  bilinear path agrees with it there, so the family is continuous in t.
- **image/translate-circular** (pixels, along x): out[…, j] = x[…, (j − k) mod W] for an integer
  k (content moves right for k > 0). A fractional t = k + f (k = ⌊t⌋) is (1 − f)·shift_k +
  f·shift_{k+1}: continuous, exact at integers, periodic with period W.
- **image/translate-zero** (pixels): the same, with the columns that enter filled with 0.
- **image/scale** (relative size, s = 1 + t): out(p) = x(p / s) about the centre, bilinear, zero
  fill. No antialiasing when shrinking.
- **image/hflip**, **image/vflip** (t ∈ {0, 1}): reverse the W or H axis at t = 1.
- **image/brightness**: x + t. **image/contrast**: m + (1 + t)(x − m), m the mean of the image
  over its channels and pixels (t = −1 gives the constant image m).
- **image/noise** (σ): x + t·z, z ~ N(0, 1) per pixel and channel (seeded).
- **image/blur** (σ in pixels): separable convolution with the normalised Gaussian
  w_k ∝ exp(−k²/2σ²), |k| ≤ ⌈3σ⌉, applied to the rows and then the columns, reflect padding
  (mirror without repeating the edge pixel, continued periodically when the kernel is wider than
  the image). Where ⌈3σ⌉ steps, the two added taps weigh at most 0.11 % of the kernel's mass.
  Defined for σ ≥ 0 only; blur = x + (σ²/2)·Δx + O(σ⁴), so its derivative at 0 is 0.
- **image/occlusion** (fraction): a square of side ⌊t·min(H, W) + ½⌋ pixels, at a seeded uniform
  position inside the image, set to 0 in every channel (Zeiler & Fergus 2014; DeVries & Taylor
  2017, "Cutout").

Texts are sequences of strings; each comes back as a new string. A word is a maximal run of
non-whitespace; the whitespace between words is kept as it was.

- **text/char-noise**: each letter (``str.isalpha``) is replaced, with probability t, by a
  uniformly drawn lowercase letter a–z (which may be the same letter).
- **text/word-dropout**: each word is dropped with probability t; when every word of a text
  would go, the word with the largest draw stays (so t = 1 keeps exactly one word). A kept word
  keeps the whitespace that preceded it.
- **text/word-shuffle**: k = ⌊t·n + ½⌋ of the n words, drawn at random, move cyclically among
  their own positions in a random order, so each of them changes position (nothing moves when
  k < 2); the multiset of words is kept (Wei & Zou 2019, "EDA", random swap).
- **text/case**: each word is upper-cased with probability t.

Vectors are floating tensors N × d.

- **vector/noise** (σ, in the data's units): x + t·z, z ~ N(0, 1) per entry. σ is not relative
  to each feature's spread: that would make a sample's output depend on its batch.
- **vector/dropout**: each entry is set to 0 with probability t, per sample; the rest are not
  rescaled (unlike ``nn.Dropout``).
- **vector/permutation**: k = ⌊t·d + ½⌋ features, drawn at random, move cyclically among their
  own positions: out = x[:, π] with one seeded permutation π for every sample
  (:func:`permutation_indices`), so g_t is linear and a learned map can undo it.
- **vector/scale**: x·(1 + t).

**Randomness.** Every draw for sample i comes from numpy's PCG64 generator seeded (through
``SeedSequence``) with (crc32(key), seed, 1, indices[i]); vector/permutation draws from
(crc32(key), seed, 0) once, for all samples. A sample thus gets the same draws whether it is
transformed alone or in a batch, provided the caller passes its dataset index: ``indices``
defaults to 0 … N − 1, so a caller that transforms a dataset in batches must pass each batch's
dataset indices (``indices=range(start, stop)``), or every batch repeats the first one's draws.
Families draw independently of each other for the same seed. The draws do not depend on t
(common random numbers): the same uniform u decides a mask or a replacement at every t, so masks
grow with t and noise is t·z with one z for the whole grid.

**Continuous** families are one-parameter families with g_0 = identity and g_t continuous and
piecewise differentiable in t, so a Lie derivative d/dt f(g_t x)|_{t=0} (Gruver et al. 2023,
"The Lie Derivative for Measuring Learned Equivariance", ICLR) and central differences in t are
meaningful (one-sided for blur). Noise, dropout, occlusion, permutations, flips and the text
families are not: their randomness or discreteness has no generator.

**Induced actions** (:func:`induced_action`): the transform of a conv feature map N × C × H × W
that corresponds to the input's transform, where one is defined (Lenc & Vedaldi 2015,
"Understanding image representations by measuring their equivariance and equivalence", CVPR;
Cohen & Welling 2016, "Group equivariant convolutional networks", ICML): a circular shift by t
pixels becomes a circular shift by t / stride on the map (defined when that is an integer; exact
for circular convolutions whose input width is stride × the map's width), a rotation by a
multiple of 90° becomes ``torch.rot90`` of the map (odd multiples need a square map), a flip the
same flip. Whether a layer commutes with it is what the probe measures: a strided or
zero-padded layer in general does not (Azulay & Weiss 2019, "Why do deep convolutional networks
generalize so poorly to small image transformations?", JMLR; Zhang 2019, "Making convolutional
networks shift-invariant again", ICML).

Perturbation families follow Hendrycks & Dietterich 2019 ("Benchmarking neural network robustness
to common corruptions and perturbations", ICLR) in kind, not in their severity scales: t is the
physical parameter itself.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from analysis.errors import InputError
from analysis.probes.families import (
    FAMILIES,
    MAX_SEED,
    Family,
    check_magnitude,
    get_family,
)

__all__ = ["TRANSFORMS", "Transform", "get_transform", "induced_action", "permutation_indices"]

Batch = Any  # torch.Tensor for images and vectors, list[str] for texts


@dataclass(frozen=True)
class _Draws:
    """Seeded generators for one call: per sample from (key, seed, index), or one shared."""

    key: str
    seed: int
    indices: np.ndarray

    def per_sample(self) -> list[np.random.Generator]:
        tag = zlib.crc32(self.key.encode())
        # The constant 1 (0 in shared) keeps the two entropy layouts apart: SeedSequence pads
        # short entropy with zeros, so (tag, seed) alone would equal (tag, seed, index 0).
        return [np.random.default_rng([tag, self.seed, 1, int(i)]) for i in self.indices]

    def shared(self) -> np.random.Generator:
        return np.random.default_rng([zlib.crc32(self.key.encode()), self.seed, 0])


Apply = Callable[[Batch, float, _Draws], Batch]


# --------------------------------------------------------------------------------------------
# Validation


def _check_batch(family: Family, x: Any) -> Batch:
    if family.modality == "text":
        if isinstance(x, str | bytes) or not isinstance(x, Sequence):
            raise InputError(f"{family.title} expects a list of strings, got {type(x).__name__}")
        for i, item in enumerate(x):
            if not isinstance(item, str):
                raise InputError(
                    f"{family.title} expects a list of strings; item {i} is {type(item).__name__}"
                )
        return x
    ndim, layout = (4, "N×C×H×W") if family.modality == "image" else (2, "N×d")
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{family.title} expects a torch tensor {layout}, got {type(x).__name__}")
    if x.ndim != ndim:
        raise InputError(
            f"{family.title} expects a {layout} tensor, got one of shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise InputError(f"{family.title} expects a floating-point tensor, got {x.dtype}")
    return x


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InputError(f"the seed must be an integer, got {seed!r}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise InputError(f"the seed must be between 0 and {MAX_SEED}, got {seed}")
    return int(seed)


def _check_indices(indices: Sequence[int] | np.ndarray | torch.Tensor | None, n: int) -> np.ndarray:
    if indices is None:
        return np.arange(n)
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    array = np.asarray(indices)
    if array.ndim != 1 or len(array) != n:
        raise InputError(f"indices must list one dataset index per sample ({n}), got {len(array)}")
    if n and (array.dtype.kind not in "iu" or array.min() < 0):
        raise InputError("indices must be non-negative integers (the samples' dataset indices)")
    return array.astype(np.int64)


def _copy(x: Batch) -> Batch:
    return x.clone() if isinstance(x, torch.Tensor) else list(x)


def _work(x: torch.Tensor) -> torch.Tensor:
    """x in a dtype the arithmetic is done in: its own when float32/64, else float32."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


# --------------------------------------------------------------------------------------------
# Images


def _affine(x: torch.Tensor, a: float, b: float, c: float, d: float) -> torch.Tensor:
    """Bilinear resampling with zero fill: output point p (normalised coordinates in [−1, 1],
    x right, y down, about the centre) takes the input's value at [[a, b], [c, d]]·p."""
    work = _work(x)
    n, channels, h, w = work.shape
    theta = torch.tensor([[a, b, 0.0], [c, d, 0.0]], dtype=work.dtype, device=work.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), [n, channels, h, w], align_corners=False)
    out = F.grid_sample(work, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


def _rotate_bilinear(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Counter-clockwise rotation about the centre, bilinear, zero fill, for any angle."""
    h, w = x.shape[-2:]
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    # Output pixel q (in pixels) samples the input at R(θ)·q (y down), which turns content
    # counter-clockwise on screen; the aspect factors convert pixels to normalised units.
    return _affine(x, cos, -sin * h / w, sin * w / h, cos)


def _rotate(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    quarter = t / 90
    if quarter == round(quarter):
        k = int(round(quarter)) % 4
        if k % 2 == 0 or x.shape[-1] == x.shape[-2]:
            return torch.rot90(x, k, dims=(-2, -1)).contiguous()
    return _rotate_bilinear(x, t)


def _shift_integer(x: torch.Tensor, k: int, circular: bool) -> torch.Tensor:
    if circular:
        return torch.roll(x, k, dims=-1)
    w = x.shape[-1]
    out = torch.zeros_like(x)
    if 0 <= k < w:
        out[..., k:] = x[..., : w - k]
    elif -w < k < 0:
        out[..., :k] = x[..., -k:]
    return out


def _shift(x: torch.Tensor, t: float, circular: bool) -> torch.Tensor:
    k = math.floor(t)
    fraction = t - k
    lower = _shift_integer(x, k, circular)
    if fraction == 0:
        return lower
    upper = _shift_integer(x, k + 1, circular)
    return ((1 - fraction) * _work(lower) + fraction * _work(upper)).to(x.dtype)


def _translate_circular(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    return _shift(x, t, circular=True)


def _translate_zero(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    return _shift(x, t, circular=False)


def _scale(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    inverse = 1 / (1 + t)
    return _affine(x, inverse, 0.0, 0.0, inverse)


def _hflip(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    return x.flip(-1)


def _vflip(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    return x.flip(-2)


def _brightness(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    return (_work(x) + t).to(x.dtype)


def _contrast(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    work = _work(x)
    mean = work.double().mean(dim=(1, 2, 3), keepdim=True).to(work.dtype)
    return (mean + (1 + t) * (work - mean)).to(x.dtype)


def _normal(draws: _Draws, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """One standard-normal array of ``shape`` per sample, stacked, in ``like``'s dtype/device."""
    z = np.stack([rng.standard_normal(shape) for rng in draws.per_sample()])
    return torch.from_numpy(z).to(dtype=like.dtype, device=like.device)


def _image_noise(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    work = _work(x)
    return (work + t * _normal(draws, tuple(x.shape[1:]), work)).to(x.dtype)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    """The normalised 1-D Gaussian w_k ∝ exp(−k²/2σ²), |k| ≤ ⌈3σ⌉, float64."""
    radius = math.ceil(3 * sigma)
    k = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-(k**2) / (2 * sigma**2))
    return weights / weights.sum()


def _reflect_indices(n: int, radius: int, device: torch.device) -> torch.Tensor:
    """Indices of a length-n axis padded by ``radius`` on each side by reflection (the edge
    element is not repeated), continued periodically, so any radius works."""
    i = torch.arange(-radius, n + radius, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i % period
    return torch.where(i >= n, period - i, i)


def _convolve_axis(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """x convolved along ``dim`` with a symmetric odd-length kernel, reflect padding: a sum of
    shifted copies (much faster on CPU than a one-channel conv2d over many planes)."""
    radius = (len(kernel) - 1) // 2
    n = x.shape[dim]
    padded = x.index_select(dim, _reflect_indices(n, radius, x.device))
    out = kernel[0] * padded.narrow(dim, 0, n)
    for k in range(1, len(kernel)):
        out += kernel[k] * padded.narrow(dim, k, n)
    return out


def _blur(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    work = _work(x)
    kernel = _gaussian_kernel(t).to(dtype=work.dtype, device=work.device)
    return _convolve_axis(_convolve_axis(work, kernel, -2), kernel, -1).to(x.dtype)


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _occlusion(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    h, w = x.shape[-2:]
    side = _round_half_up(t * min(h, w))
    out = x.clone()
    if side == 0:
        return out
    for i, rng in enumerate(draws.per_sample()):
        u_top, u_left = rng.random(2)
        top = math.floor(u_top * (h - side + 1))
        left = math.floor(u_left * (w - side + 1))
        out[i, :, top : top + side, left : left + side] = 0
    return out


# --------------------------------------------------------------------------------------------
# Texts

_WORD = re.compile(r"\S+")
_LOWERCASE = "abcdefghijklmnopqrstuvwxyz"


def _words(text: str) -> tuple[list[str], list[str]]:
    """The words of ``text`` and the n + 1 whitespace runs around them (before the first word,
    between words, after the last), so that text = s₀ + w₁ + s₁ + … + w_n + s_n."""
    matches = list(_WORD.finditer(text))
    if not matches:
        return [], [text]
    words = [m.group() for m in matches]
    starts = [0] + [m.end() for m in matches]
    ends = [m.start() for m in matches] + [len(text)]
    return words, [text[a:b] for a, b in zip(starts, ends, strict=True)]


def _join(words: list[str], spaces: list[str]) -> str:
    return spaces[0] + "".join(w + s for w, s in zip(words, spaces[1:], strict=True))


def _char_noise(texts: Sequence[str], t: float, draws: _Draws) -> list[str]:
    out = []
    for text, rng in zip(texts, draws.per_sample(), strict=True):
        u = rng.random(len(text))
        letters = rng.integers(0, len(_LOWERCASE), len(text))
        out.append(
            "".join(
                _LOWERCASE[letter] if c.isalpha() and draw < t else c
                for c, draw, letter in zip(text, u, letters, strict=True)
            )
        )
    return out


def _word_dropout(texts: Sequence[str], t: float, draws: _Draws) -> list[str]:
    out = []
    for text, rng in zip(texts, draws.per_sample(), strict=True):
        words, spaces = _words(text)
        u = rng.random(len(words))
        keep = u >= t
        if len(words) and not keep.any():
            keep[int(np.argmax(u))] = True
        pieces = [spaces[0]]
        for i in np.flatnonzero(keep):
            if len(pieces) > 1:  # a kept word after the first keeps the whitespace before it
                pieces.append(spaces[i])
            pieces.append(words[i])
        pieces.append(spaces[-1])
        out.append("".join(pieces))
    return out


def _cycle(order: np.ndarray, k: int, n: int) -> np.ndarray:
    """Source indices of the permutation that moves the elements at order[0], …, order[k − 1]
    cyclically (order[i] → order[i + 1 mod k]) and fixes the rest: out = x[source]."""
    source = np.arange(n)
    if k >= 2:
        chosen = order[:k]
        source[np.roll(chosen, -1)] = chosen
    return source


def _word_shuffle(texts: Sequence[str], t: float, draws: _Draws) -> list[str]:
    out = []
    for text, rng in zip(texts, draws.per_sample(), strict=True):
        words, spaces = _words(text)
        n = len(words)
        source = _cycle(rng.permutation(n), _round_half_up(t * n), n)
        out.append(_join([words[i] for i in source], spaces))
    return out


def _case(texts: Sequence[str], t: float, draws: _Draws) -> list[str]:
    out = []
    for text, rng in zip(texts, draws.per_sample(), strict=True):
        words, spaces = _words(text)
        upper = rng.random(len(words)) < t
        out.append(
            _join([w.upper() if up else w for w, up in zip(words, upper, strict=True)], spaces)
        )
    return out


# --------------------------------------------------------------------------------------------
# Vectors


def _vector_noise(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    work = _work(x)
    return (work + t * _normal(draws, (x.shape[1],), work)).to(x.dtype)


def _vector_dropout(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    u = np.stack([rng.random(x.shape[1]) for rng in draws.per_sample()])
    drop = torch.from_numpy(u < t).to(x.device)
    return x.masked_fill(drop, 0)


def permutation_indices(d: int, t: float, seed: int = 0) -> np.ndarray:
    """The column order π of vector/permutation for ``d`` features: g_t(x) = x[:, π]."""
    family = FAMILIES["vector/permutation"]
    if isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 0:
        raise InputError(f"the number of features must be a non-negative integer, got {d!r}")
    t = check_magnitude(family, t)
    seed = _check_seed(seed)
    return _permutation(int(d), t, _Draws(family.key, seed, np.arange(0)))


def _permutation(d: int, t: float, draws: _Draws) -> np.ndarray:
    return _cycle(draws.shared().permutation(d), _round_half_up(t * d), d)


def _vector_permutation(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    source = torch.from_numpy(_permutation(x.shape[1], t, draws)).to(x.device)
    return x.index_select(1, source)


def _vector_scale(x: torch.Tensor, t: float, draws: _Draws) -> torch.Tensor:
    return (_work(x) * (1 + t)).to(x.dtype)


# --------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class Transform(Family):
    """A family that transforms: call it as ``transform(x, t, seed=0, indices=None)``."""

    apply: Apply = field(repr=False, compare=False)

    def __call__(
        self,
        x: Batch,
        t: float,
        seed: int = 0,
        indices: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    ) -> Batch:
        """g_t applied to the batch ``x``: a new batch of the same type, shape and dtype.

        ``seed`` (0 … MAX_SEED) and ``indices`` (the samples' dataset indices, default
        0 … N − 1) determine the draws of the random families; see the module docstring.
        """
        t = check_magnitude(self, t)
        x = _check_batch(self, x)
        seed = _check_seed(seed)
        rows = _check_indices(indices, len(x))
        if t == 0 or len(x) == 0:
            return _copy(x)
        return self.apply(x, t, _Draws(self.key, seed, rows))


_IMPLEMENTATIONS: dict[str, Apply] = {
    "image/rotation": _rotate,
    "image/translate-circular": _translate_circular,
    "image/translate-zero": _translate_zero,
    "image/scale": _scale,
    "image/hflip": _hflip,
    "image/vflip": _vflip,
    "image/brightness": _brightness,
    "image/contrast": _contrast,
    "image/noise": _image_noise,
    "image/blur": _blur,
    "image/occlusion": _occlusion,
    "text/char-noise": _char_noise,
    "text/word-dropout": _word_dropout,
    "text/word-shuffle": _word_shuffle,
    "text/case": _case,
    "vector/noise": _vector_noise,
    "vector/dropout": _vector_dropout,
    "vector/permutation": _vector_permutation,
    "vector/scale": _vector_scale,
}

TRANSFORMS: dict[str, Transform] = {
    key: Transform(**{f.name: getattr(FAMILIES[key], f.name) for f in fields(Family)}, apply=apply)
    for key, apply in _IMPLEMENTATIONS.items()
}


def get_transform(key: str) -> Transform:
    """The implementation of the family registered under ``key`` (a key of FAMILIES)."""
    return TRANSFORMS[get_family(key).key]


def induced_action(
    family: Family | str, t: float, feature_map: torch.Tensor, *, stride: int = 1
) -> torch.Tensor | None:
    """The transform of an N × C × H × W conv feature map induced by g_t on the input, or None
    where none is defined.

    - "shift" (image/translate-circular): a circular shift of the map by t / ``stride`` columns,
      ``stride`` being the layer's total stride (input width / map width); None unless t /
      stride is an integer.
    - "rot90" (image/rotation): ``torch.rot90`` of the map by t / 90 quarter turns; None unless
      t is a multiple of 90, or for an odd multiple on a non-square map.
    - "flip" (image/hflip, image/vflip): the same flip of the map.

    Families without an induced action give None for every t. The result is a new tensor.
    """
    family = family if isinstance(family, Family) else get_family(family)
    t = check_magnitude(family, t)
    if not isinstance(feature_map, torch.Tensor) or feature_map.ndim != 4:
        raise InputError("the feature map must be an N×C×H×W torch tensor")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise InputError(f"the stride must be a positive integer, got {stride!r}")
    if family.induced == "shift":
        if t != math.floor(t) or int(t) % stride:
            return None
        return torch.roll(feature_map, int(t) // stride, dims=-1)
    if family.induced == "rot90":
        quarter = t / 90
        if quarter != round(quarter):
            return None
        k = int(round(quarter)) % 4
        if k % 2 and feature_map.shape[-1] != feature_map.shape[-2]:
            return None
        return torch.rot90(feature_map, k, dims=(-2, -1)).contiguous()
    if family.induced == "flip":
        if t == 0:
            return feature_map.clone()
        return feature_map.flip(-1 if family.key == "image/hflip" else -2)
    return None
