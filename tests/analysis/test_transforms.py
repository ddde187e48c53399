"""Transformation families (analysis/probes/transforms.py): identity at t = 0, seeded draws that do
not
depend on the batch split, known answers for each family (rotations against an independently
written transpose-and-flip, shifts, flips, blur, affine intensity maps, occlusion areas, text and
vector families at their extremes), induced actions against convolutions that commute with them
exactly, and bad input refused."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from analysis.errors import InputError
from analysis.probes.families import (
    FAMILIES,
    INDUCED_ACTIONS,
    MAX_MAGNITUDES,
    MODALITIES,
    Family,
    check_magnitudes,
    families_for,
    get_family,
)
from analysis.probes.transforms import (
    TRANSFORMS,
    _rotate_bilinear,
    get_transform,
    induced_action,
    permutation_indices,
)

SEEDED = {
    "image/noise",
    "image/occlusion",
    "text/char-noise",
    "text/word-dropout",
    "text/word-shuffle",
    "text/case",
    "vector/noise",
    "vector/dropout",
    "vector/permutation",
}
TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "  Hello,   world!  how are\tyou today ",
    "one",
    "",
    "a b c d e f g h i j k l",
    "representations of neural networks are compared layer by layer",
]


def images(n: int = 5, c: int = 3, h: int = 12, w: int = 12, seed: int = 0) -> torch.Tensor:
    """Values in [0.05, 0.95]: never exactly 0."""
    g = torch.Generator().manual_seed(seed)
    return 0.05 + 0.9 * torch.rand(n, c, h, w, generator=g)


def vectors(n: int = 6, d: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def batch_for(family: Family):
    if family.modality == "image":
        return images()
    if family.modality == "vector":
        return vectors()
    return list(TEXTS)


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


def smooth_image(h: int = 16, w: int = 16) -> torch.Tensor:
    """A smooth, non-symmetric 1×2×h×w image (low-frequency waves)."""
    y = torch.arange(h, dtype=torch.float64)[:, None] / h
    x = torch.arange(w, dtype=torch.float64)[None, :] / w
    a = 0.5 + 0.3 * torch.sin(2.1 * x + 0.7) * torch.cos(1.3 * y - 0.4) + 0.1 * x * y
    b = 0.5 + 0.2 * torch.cos(1.7 * x - 2.2 * y)
    return torch.stack([a, b])[None].float()


FAMILY_KEYS = list(FAMILIES)


# --------------------------------------------------------------------------------------------
# Registry


def test_registry_is_consistent():
    assert set(MODALITIES) == {f.modality for f in FAMILIES.values()}
    for key, family in FAMILIES.items():
        assert family.key == key and key.startswith(family.modality + "/")
        assert family.magnitudes[0] == 0
        assert check_magnitudes(family, family.magnitudes) == family.magnitudes
        assert family.induced is None or family.induced in INDUCED_ACTIONS
        assert get_family(key) is family
        assert get_transform(key).key == key and TRANSFORMS[key].description == family.description
        assert family in families_for(family.modality)
    assert [f.key for f in families_for("text")] == [
        "text/char-noise",
        "text/word-dropout",
        "text/word-shuffle",
        "text/case",
    ]
    continuous = {k for k, f in FAMILIES.items() if f.continuous}
    assert continuous == {
        "image/rotation",
        "image/translate-circular",
        "image/translate-zero",
        "image/scale",
        "image/brightness",
        "image/contrast",
        "image/blur",
        "vector/scale",
    }
    induced = {k: f.induced for k, f in FAMILIES.items() if f.induced}
    assert induced == {
        "image/rotation": "rot90",
        "image/translate-circular": "shift",
        "image/hflip": "flip",
        "image/vflip": "flip",
    }


def test_unknown_keys_are_refused_with_the_choices():
    with pytest.raises(InputError, match="image/rotation.*vector/scale"):
        get_family("image/rotate")
    with pytest.raises(InputError, match="image, text, vector"):
        families_for("audio")


# --------------------------------------------------------------------------------------------
# Properties shared by every family


@pytest.mark.parametrize("key", FAMILY_KEYS)
def test_zero_magnitude_returns_an_exact_copy(key):
    family = TRANSFORMS[key]
    x = batch_for(family)
    before = x.clone() if isinstance(x, torch.Tensor) else list(x)
    out = family(x, 0.0, seed=7)
    assert same(out, x) and out is not x
    if isinstance(x, torch.Tensor):
        assert out.data_ptr() != x.data_ptr()
        out.add_(1)
    else:
        out.append("extra")
    assert same(x, before)


@pytest.mark.parametrize("key", FAMILY_KEYS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_type_shape_and_dtype_are_kept(key, dtype):
    family = TRANSFORMS[key]
    t = family.magnitudes[-1]
    if family.modality == "text":
        out = family(TEXTS, t)
        assert isinstance(out, list) and len(out) == len(TEXTS)
        assert all(isinstance(s, str) for s in out)
        return
    shapes = [(2, 3, 10, 14), (3, 1, 9, 9)] if family.modality == "image" else [(4, 7)]
    for shape in shapes:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1)).to(dtype)
        before = x.clone()
        out = family(x, t)
        assert out.shape == x.shape and out.dtype == dtype
        assert torch.isfinite(out).all()
        assert torch.equal(x, before)  # the input is not modified


@pytest.mark.parametrize("key", FAMILY_KEYS)
def test_draws_are_seeded_and_do_not_depend_on_the_batch_split(key):
    family = TRANSFORMS[key]
    x = batch_for(family)
    t = family.magnitudes[-1]
    whole = family(x, t, seed=3)
    assert same(family(x, t, seed=3), whole)
    for i in range(len(x)):
        alone = family(x[i : i + 1], t, seed=3, indices=[i])
        assert same(alone, whole[i : i + 1])
    halves = [
        family(x[:2], t, seed=3, indices=[0, 1]),
        family(x[2:], t, seed=3, indices=range(2, len(x))),
    ]
    if isinstance(whole, torch.Tensor):
        assert same(torch.cat(halves), whole)
    else:
        assert halves[0] + halves[1] == whole
    if key not in SEEDED:  # deterministic families ignore the seed
        assert same(family(x, t, seed=4), whole)


@pytest.mark.parametrize("key", sorted(SEEDED))
def test_different_seeds_and_indices_draw_differently(key):
    family = TRANSFORMS[key]
    x = batch_for(family)
    t = 0.5
    assert not same(family(x, t, seed=0), family(x, t, seed=1))
    # The same sample at another dataset index gets other draws.
    shifted = family(x, t, seed=0, indices=range(100, 100 + len(x)))
    if key != "vector/permutation":  # one permutation for every sample, by design
        assert not same(family(x, t, seed=0), shifted)
    else:
        assert same(family(x, t, seed=0), shifted)


def test_families_draw_independently_of_each_other():
    x = torch.zeros(4, 20)
    noise = TRANSFORMS["vector/noise"](x, 1.0, seed=0)
    assert not torch.equal(
        noise, TRANSFORMS["image/noise"](x[:, None, None, :], 1.0, seed=0)[:, 0, 0]
    )


# --------------------------------------------------------------------------------------------
# Rotation


def transpose_flip(x: torch.Tensor) -> torch.Tensor:
    """Counter-clockwise quarter turn written independently of torch.rot90: the top row of the
    result is the right column of x, read top to bottom."""
    return x.transpose(-1, -2).flip(-2)


def test_quarter_turns_are_exact_and_counter_clockwise():
    rotation = TRANSFORMS["image/rotation"]
    x = images(h=9, w=9)
    quarter = rotation(x, 90)
    assert torch.equal(quarter, transpose_flip(x))
    assert torch.equal(rotation(x, 180), transpose_flip(transpose_flip(x)))
    assert torch.equal(rotation(x, 180), x.flip(-1).flip(-2))
    assert torch.equal(rotation(x, 270), transpose_flip(transpose_flip(transpose_flip(x))))
    assert torch.equal(rotation(x, -90), rotation(x, 270))
    assert torch.equal(rotation(x, 360), x) and torch.equal(rotation(x, -360), x)
    # On screen (row 0 at the top): [[1, 2], [3, 4]] turned counter-clockwise is [[2, 4], [1, 3]].
    tiny = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]
    assert rotation(tiny, 90)[0, 0].tolist() == [[2.0, 4.0], [1.0, 3.0]]
    # A non-square image keeps its shape; 180° is still exact.
    wide = images(h=6, w=10)
    assert torch.equal(rotation(wide, 180), wide.flip(-1).flip(-2))
    assert rotation(wide, 90).shape == wide.shape


@pytest.mark.parametrize("size", [(16, 16), (15, 15)])
def test_bilinear_path_agrees_with_the_quarter_turn(size):
    x = smooth_image(*size)
    bilinear = _rotate_bilinear(x, 90.0)
    torch.testing.assert_close(bilinear[..., 1:-1, 1:-1], transpose_flip(x)[..., 1:-1, 1:-1])
    torch.testing.assert_close(
        _rotate_bilinear(x, -90.0)[..., 1:-1, 1:-1], x.transpose(-1, -2).flip(-1)[..., 1:-1, 1:-1]
    )
    # Full turns are the identity up to round-off, and the family is continuous across 90°.
    torch.testing.assert_close(_rotate_bilinear(x, 360.0), x, atol=1e-5, rtol=0)
    rotation = TRANSFORMS["image/rotation"]
    near = rotation(x, 89.999)
    torch.testing.assert_close(near, rotation(x, 90), atol=1e-3, rtol=0)


def test_rotation_turns_about_the_centre():
    # A centred radial blob is (nearly) invariant; rotating back and forth restores the centre.
    r2 = (torch.arange(21.0) - 10)[:, None] ** 2 + (torch.arange(21.0) - 10)[None, :] ** 2
    blob = torch.exp(-r2 / (2 * 3.0**2))[None, None]
    rotation = TRANSFORMS["image/rotation"]
    torch.testing.assert_close(rotation(blob, 37), blob, atol=0.03, rtol=0)  # bilinear error
    x = smooth_image(21, 21)
    back = rotation(rotation(x, 30), -30)
    centre = (slice(None), slice(None), slice(6, 15), slice(6, 15))
    torch.testing.assert_close(back[centre], x[centre], atol=0.02, rtol=0)


# --------------------------------------------------------------------------------------------
# Translation, scale, flips


def test_circular_translation():
    shift = TRANSFORMS["image/translate-circular"]
    x = images(w=10)
    assert torch.equal(shift(x, 1)[..., 1:], x[..., :-1])  # content moves right
    assert torch.equal(shift(x, 1)[..., 0], x[..., -1])
    assert torch.equal(shift(x, 10), x) and torch.equal(shift(x, -20), x)
    for k, m in [(1, 2), (3, -5), (4, 8), (-2, -9)]:
        assert torch.equal(shift(shift(x, k), m), shift(x, k + m))
    halfway = shift(x, 2.5)
    torch.testing.assert_close(halfway, (shift(x, 2) + shift(x, 3)) / 2, atol=1e-7, rtol=0)
    torch.testing.assert_close(
        shift(x, -1.25), 0.25 * shift(x, -2) + 0.75 * shift(x, -1), atol=1e-7, rtol=0
    )


def test_zero_padded_translation():
    shift = TRANSFORMS["image/translate-zero"]
    x = images(w=10)
    out = shift(x, 3)
    assert torch.equal(out[..., 3:], x[..., :-3]) and (out[..., :3] == 0).all()
    out = shift(x, -2)
    assert torch.equal(out[..., :-2], x[..., 2:]) and (out[..., -2:] == 0).all()
    assert (shift(x, 10) == 0).all() and (shift(x, -15) == 0).all()
    torch.testing.assert_close(shift(x, 1.5), (shift(x, 1) + shift(x, 2)) / 2, atol=1e-7, rtol=0)


def test_scale_about_the_centre():
    scale = TRANSFORMS["image/scale"]
    h, w = 9, 12
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(h) - cy, torch.arange(w) - cx, indexing="ij")
    ramp = torch.stack([0.5 + 0.03 * xx, 0.5 - 0.04 * yy])[None].float()
    doubled = scale(ramp, 1.0)  # s = 2: out(p) = x(p / 2), inside the image everywhere
    expected = torch.stack([0.5 + 0.03 * xx / 2, 0.5 - 0.04 * yy / 2])[None].float()
    torch.testing.assert_close(doubled, expected, atol=1e-5, rtol=0)
    halved = scale(ramp, -0.5)  # s = 1/2: the border comes from outside the image, zero
    assert (halved[..., 0, 0] == 0).all() and (halved[..., -1, -1] == 0).all()
    # The pixels either side of the centre (offsets ±½) sample the ramp at offsets ±1.
    expected = torch.tensor([[0.47, 0.53], [0.5, 0.5]])
    torch.testing.assert_close(halved[0, :, 4, 5:7], expected, atol=1e-5, rtol=0)


def test_flips():
    x = images(h=7, w=10)
    hflip, vflip = TRANSFORMS["image/hflip"], TRANSFORMS["image/vflip"]
    assert torch.equal(hflip(x, 1), x.flip(-1)) and torch.equal(hflip(hflip(x, 1), 1), x)
    assert torch.equal(vflip(x, 1), x.flip(-2)) and torch.equal(vflip(vflip(x, 1), 1), x)
    with pytest.raises(InputError, match="one of 0, 1"):
        hflip(x, 0.5)


# --------------------------------------------------------------------------------------------
# Intensity families


def test_brightness_and_contrast_are_the_documented_affine_maps():
    x = images()
    assert torch.equal(TRANSFORMS["image/brightness"](x, 0.2), x + 0.2)
    assert torch.equal(TRANSFORMS["image/brightness"](x, -0.3), x - 0.3)
    for t in [0.5, -0.4, -1.0, 2.0]:
        out = TRANSFORMS["image/contrast"](x, t)
        mean = x.double().mean(dim=(1, 2, 3), keepdim=True)
        torch.testing.assert_close(
            out.double(), mean + (1 + t) * (x.double() - mean), atol=1e-6, rtol=0
        )
        torch.testing.assert_close(
            out.double().mean(dim=(1, 2, 3)), mean.flatten(), atol=1e-6, rtol=0
        )


def test_noise_is_gaussian_of_standard_deviation_t():
    noise = TRANSFORMS["image/noise"]
    x = images(n=200, h=8, w=8)
    d = noise(x, 0.3, seed=5) - x
    assert abs(d.mean().item()) < 0.01 and d.std().item() == pytest.approx(0.3, rel=0.02)
    # Common random numbers: the same z at every t.
    torch.testing.assert_close(noise(x, 0.6, seed=5) - x, 2 * d, atol=1e-5, rtol=0)


def test_blur():
    blur = TRANSFORMS["image/blur"]
    constant = torch.full((2, 3, 9, 13), 0.37)
    for sigma in [0.3, 1.0, 2.5, 20.0]:  # 20: the kernel is wider than the image
        torch.testing.assert_close(blur(constant, sigma), constant, atol=1e-6, rtol=0)
    # An impulse far from the edges: the response is the outer product of the normalised 1-D
    # Gaussian, symmetric, and its mass is kept.
    impulse = torch.zeros(1, 1, 21, 21, dtype=torch.float64)
    impulse[..., 10, 10] = 1
    sigma = 1.5
    out = blur(impulse, sigma)
    k = torch.arange(-5, 6, dtype=torch.float64)
    g = torch.exp(-(k**2) / (2 * sigma**2))
    g /= g.sum()
    expected = torch.zeros(21, 21, dtype=torch.float64)
    expected[5:16, 5:16] = g[:, None] * g[None, :]
    torch.testing.assert_close(out[0, 0], expected, atol=1e-12, rtol=0)
    assert torch.equal(out, out.flip(-1)) and torch.equal(out, out.transpose(-1, -2))
    # The image's mean is kept when the content is away from the edges (here by > 3σ).
    x = torch.zeros(2, 3, 24, 24)
    x[..., 6:18, 6:18] = images(2, 3, 12, 12)
    torch.testing.assert_close(
        blur(x, sigma).sum(dim=(-1, -2)), x.sum(dim=(-1, -2)), atol=1e-4, rtol=0
    )
    # Reflect padding is symmetric, so blur commutes with flips and transposes.
    y = images(h=10, w=10)
    torch.testing.assert_close(blur(y.flip(-1), 2.0), blur(y, 2.0).flip(-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        blur(y.transpose(-1, -2), 2.0), blur(y, 2.0).transpose(-1, -2), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("t", [0.1, 0.25, 0.5, 1.0])
def test_occlusion_zeroes_one_square(t):
    occlusion = TRANSFORMS["image/occlusion"]
    x = images(n=6, c=3, h=10, w=14)
    out = occlusion(x, t, seed=2)
    side = math.floor(t * 10 + 0.5)
    zeros = out == 0
    assert (zeros.sum(dim=(-1, -2)) == side * side).all()
    assert (zeros == zeros[:, :1]).all()  # the same square in every channel
    assert torch.equal(out[~zeros], x[~zeros])
    for i in range(len(x)):
        rows = zeros[i, 0].any(dim=1).nonzero().flatten()
        cols = zeros[i, 0].any(dim=0).nonzero().flatten()
        assert len(rows) == side and len(cols) == side  # a contiguous square
        assert rows.max() - rows.min() == side - 1 and cols.max() - cols.min() == side - 1


# --------------------------------------------------------------------------------------------
# Texts


def test_text_families_at_full_strength():
    dropout = TRANSFORMS["text/word-dropout"](TEXTS, 1.0, seed=1)
    case = TRANSFORMS["text/case"](TEXTS, 1.0, seed=1)
    shuffle = TRANSFORMS["text/word-shuffle"](TEXTS, 1.0, seed=1)
    noise = TRANSFORMS["text/char-noise"](TEXTS, 1.0, seed=1)
    for text, dropped, cased, shuffled, noisy in zip(
        TEXTS, dropout, case, shuffle, noise, strict=True
    ):
        words = text.split()
        assert len(dropped.split()) == min(1, len(words)) and set(dropped.split()) <= set(words)
        assert cased.split() == [w.upper() for w in words]
        assert [len(s) for s in cased.split(" ")] == [len(s) for s in text.split(" ")]  # spacing
        assert Counter(shuffled.split()) == Counter(words)
        if len(set(words)) == len(words) and len(words) >= 2:  # every word moved
            assert all(a != b for a, b in zip(shuffled.split(), words, strict=True))
        assert len(noisy) == len(text)
        for a, b in zip(text, noisy, strict=True):
            assert (b in "abcdefghijklmnopqrstuvwxyz") if a.isalpha() else (a == b)
    assert dropout[3] == "" and shuffle[2] == "one"


def test_text_families_partially():
    texts = ["short text", " ".join(f"w{i}" for i in range(40))]
    words = texts[1].split()
    dropped = TRANSFORMS["text/word-dropout"](texts, 0.3, seed=0)[1].split()
    assert 0 < len(dropped) < len(words)
    assert dropped == [w for w in words if w in set(dropped)]  # order kept
    shuffled = TRANSFORMS["text/word-shuffle"](texts, 0.5, seed=0)[1].split()
    assert sum(a != b for a, b in zip(shuffled, words, strict=True)) == 20
    cased = TRANSFORMS["text/case"](texts, 0.5, seed=0)[1].split()
    assert 5 < sum(w.isupper() for w in cased) < 35
    # Masks grow with t: what is dropped at 0.2 is dropped at 0.5.
    low = set(TRANSFORMS["text/word-dropout"](texts, 0.2, seed=0)[1].split())
    high = set(TRANSFORMS["text/word-dropout"](texts, 0.5, seed=0)[1].split())
    assert high <= low


# --------------------------------------------------------------------------------------------
# Vectors


def test_vector_permutation_is_one_column_permutation():
    family = TRANSFORMS["vector/permutation"]
    x = vectors(n=5, d=12)
    for t in [0.25, 0.5, 1.0]:
        order = permutation_indices(12, t, seed=4)
        assert sorted(order) == list(range(12))
        assert torch.equal(family(x, t, seed=4), x[:, order])
        moved = int((order != np.arange(12)).sum())
        assert moved == math.floor(t * 12 + 0.5)
    assert (permutation_indices(12, 1.0, seed=4) != np.arange(12)).all()
    assert (permutation_indices(12, 0.0) == np.arange(12)).all()
    assert torch.equal(family(x, 0.0), x)
    # As a linear map: x ↦ x P with P a permutation matrix, the same for every sample.
    p = torch.eye(12)[:, permutation_indices(12, 0.5, seed=4)]
    torch.testing.assert_close(family(x, 0.5, seed=4), x @ p)
    with pytest.raises(InputError, match="number of features"):
        permutation_indices(-1, 0.5)


def test_vector_noise_dropout_and_scale():
    x = vectors(n=200, d=50) + 3.0
    noise = TRANSFORMS["vector/noise"](x, 0.2, seed=1) - x
    assert noise.std().item() == pytest.approx(0.2, rel=0.03)
    out = TRANSFORMS["vector/dropout"](x, 0.3, seed=1)
    zeroed = out == 0
    assert torch.equal(out[~zeroed], x[~zeroed])  # not rescaled
    assert zeroed.float().mean().item() == pytest.approx(0.3, abs=0.02)
    more = TRANSFORMS["vector/dropout"](x, 0.6, seed=1) == 0
    assert (more | ~zeroed).all()  # nested masks
    torch.testing.assert_close(TRANSFORMS["vector/scale"](x, 0.5), x * 1.5)
    assert torch.equal(TRANSFORMS["vector/scale"](x, -1.0), torch.zeros_like(x))


# --------------------------------------------------------------------------------------------
# Induced actions on feature maps


def conv(stride: int = 1, padding_mode: str = "circular", symmetric: str = "") -> nn.Conv2d:
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 4, 3, stride=stride, padding=1, padding_mode=padding_mode)
    with torch.no_grad():
        w = layer.weight
        if symmetric == "rot90":
            layer.weight.copy_(sum(torch.rot90(w, k, dims=(-2, -1)) for k in range(4)) / 4)
        elif symmetric == "hflip":
            layer.weight.copy_((w + w.flip(-1)) / 2)
        elif symmetric == "vflip":
            layer.weight.copy_((w + w.flip(-2)) / 2)
    return layer


@torch.no_grad()
def test_circular_conv_commutes_with_circular_shifts():
    family = TRANSFORMS["image/translate-circular"]
    f = conv()
    x = images(n=2, h=8, w=10)
    for t in [1, 2, 3, -5, 10]:
        expected = induced_action(family, t, f(x))
        torch.testing.assert_close(f(family(x, t)), expected, atol=1e-6, rtol=0)
    # Known answer: global average pooling after it is exactly invariant.
    torch.testing.assert_close(
        f(family(x, 3)).mean(dim=(-1, -2)), f(x).mean(dim=(-1, -2)), atol=1e-6, rtol=0
    )
    strided = conv(stride=2)
    fmap = strided(x)
    assert fmap.shape[-1] == 5
    torch.testing.assert_close(
        strided(family(x, 2)), induced_action(family, 2, fmap, stride=2), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        induced_action(family, 2, fmap, stride=2), torch.roll(fmap, 1, dims=-1)
    )
    torch.testing.assert_close(
        strided(family(x, -4)), induced_action(family, -4, fmap, stride=2), atol=1e-6, rtol=0
    )
    assert induced_action(family, 1, fmap, stride=2) is None
    assert induced_action(family, 1.5, f(x)) is None


@torch.no_grad()
@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_symmetric_conv_commutes_with_quarter_turns_and_flips(padding_mode):
    x = images(n=2, h=9, w=9)
    rotation = TRANSFORMS["image/rotation"]
    f = conv(padding_mode=padding_mode, symmetric="rot90")
    for t in [90, 180, 270, -90, 360]:
        torch.testing.assert_close(
            f(rotation(x, t)), induced_action(rotation, t, f(x)), atol=1e-6, rtol=0
        )
    plain = conv(padding_mode=padding_mode)  # a generic kernel does not commute
    assert not torch.allclose(
        plain(rotation(x, 90)), induced_action(rotation, 90, plain(x)), atol=1e-3
    )
    for key in ["image/hflip", "image/vflip"]:
        family = TRANSFORMS[key]
        f = conv(padding_mode=padding_mode, symmetric=key.split("/")[1])
        torch.testing.assert_close(
            f(family(x, 1)), induced_action(family, 1, f(x)), atol=1e-6, rtol=0
        )


def test_induced_action_is_none_where_undefined():
    square, wide = torch.rand(2, 4, 6, 6), torch.rand(2, 4, 6, 8)
    rotation = TRANSFORMS["image/rotation"]
    assert induced_action(rotation, 45, square) is None
    assert induced_action(rotation, 90, wide) is None
    assert torch.equal(induced_action(rotation, 180, wide), wide.flip(-1).flip(-2))
    for key in ["image/translate-zero", "image/brightness", "image/scale", "image/noise"]:
        assert induced_action(key, TRANSFORMS[key].magnitudes[1], square) is None
    out = induced_action("image/hflip", 0, square)
    assert torch.equal(out, square) and out is not square
    assert torch.equal(induced_action("image/translate-circular", 0, square), square)
    with pytest.raises(InputError, match="N×C×H×W"):
        induced_action(rotation, 90, torch.rand(6, 6))
    with pytest.raises(InputError, match="stride"):
        induced_action("image/translate-circular", 2, square, stride=0)


# --------------------------------------------------------------------------------------------
# Validation


def test_check_magnitudes():
    rotation = TRANSFORMS["image/rotation"]
    assert check_magnitudes(rotation, [90, 0, -45, 15.5]) == (-45.0, 0.0, 15.5, 90.0)
    assert check_magnitudes("image/hflip", (1, 0)) == (0.0, 1.0)
    assert check_magnitudes("vector/scale", np.array([0.0, 0.5])) == (0.0, 0.5)
    cases = [
        (rotation, [], "at least one"),
        (rotation, list(range(MAX_MAGNITUDES + 1)), f"at most {MAX_MAGNITUDES}"),
        (rotation, [0, float("nan")], "finite"),
        (rotation, [0, math.inf], "finite"),
        (rotation, [0, 400], "between -360 and 360 degrees"),
        (rotation, [0, 15, 15], "repeat 15"),
        (rotation, [15, 30], "include 0"),
        (rotation, [0, "ten"], "must be a number"),
        (rotation, [0, True], "must be a number"),
        (rotation, "0, 15", "list of numbers"),
        (rotation, 15, "list of numbers"),
        ("image/scale", [0, -1], "between -0.9 and 9"),
        ("image/hflip", [0, 0.5], "one of 0, 1"),
        ("text/word-dropout", [0, 1.5], "between 0 and 1"),
        ("image/noise", [0, -0.1], "between 0 and 10"),
        ("image/nope", [0], "unknown transformation family"),
    ]
    for family, magnitudes, message in cases:
        with pytest.raises(InputError, match=message):
            check_magnitudes(family, magnitudes)


def test_bad_calls_are_refused():
    rotation = TRANSFORMS["image/rotation"]
    x = images(n=2)
    with pytest.raises(InputError, match="torch tensor"):
        rotation(x.numpy(), 15)
    with pytest.raises(InputError, match="N×C×H×W"):
        rotation(x[0], 15)
    with pytest.raises(InputError, match="floating-point"):
        rotation((x * 255).to(torch.uint8), 15)
    with pytest.raises(InputError, match="between -360 and 360"):
        rotation(x, 720)
    with pytest.raises(InputError, match="list of strings"):
        TRANSFORMS["text/case"]("a single string", 0.5)
    with pytest.raises(InputError, match="item 1"):
        TRANSFORMS["text/case"](["ok", 3], 0.5)
    with pytest.raises(InputError, match="N×d"):
        TRANSFORMS["vector/noise"](x, 0.1)
    with pytest.raises(InputError, match="seed"):
        TRANSFORMS["image/noise"](x, 0.1, seed=-1)
    with pytest.raises(InputError, match="one dataset index per sample"):
        TRANSFORMS["image/noise"](x, 0.1, indices=[0])
    with pytest.raises(InputError, match="non-negative integers"):
        TRANSFORMS["image/noise"](x, 0.1, indices=[0, -1])
    empty = torch.zeros(0, 3, 8, 8)
    assert TRANSFORMS["image/noise"](empty, 0.1).shape == empty.shape
