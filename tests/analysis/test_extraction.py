"""Activation extraction (analysis/models/extraction.py): batching, pooling, hooks and failures."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from analysis.errors import InputError
from analysis.models import checkpoints, extraction
from analysis.models.architectures import mlp, small_cnn
from analysis.models.choices import POOLINGS

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

SEEDS = [0, 1, 2]
CNN_LAYERS = ["conv1", "conv2", "pool", "head", "output"]


def cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return small_cnn(3, [4, 6], 5).eval()


def images(seed: int, n: int = 23) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 9, 7)).astype(np.float32)


def scripted(model: nn.Module, tmp_path: Path) -> torch.jit.ScriptModule:
    path = tmp_path / "model.pt"
    torch.jit.script(model).save(str(path))
    return checkpoints.load_torchscript(path)


def by_hand(model: nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run the small CNN's blocks one after another; conv maps averaged over H × W."""
    with torch.no_grad():
        t = torch.from_numpy(x)
        c1 = model.conv1(t)
        c2 = model.conv2(c1)
        p = model.pool(c2)
        h = model.head(p)
    return {
        "conv1": c1.mean(dim=(2, 3)).numpy(),
        "conv2": c2.mean(dim=(2, 3)).numpy(),
        "pool": p.numpy(),
        "head": h.numpy(),
        "output": h.numpy(),
    }


def extract(model, x, layers, **kwargs):
    return extraction.extract_activations(model, x, layers, device="cpu", **kwargs)


# --- agreement with running the blocks by hand ----------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("script", [False, True])
def test_matches_blocks_run_by_hand(seed, script, tmp_path):
    eager = cnn(seed)
    x = images(seed)
    expected = by_hand(eager, x)
    model = scripted(eager, tmp_path) if script else eager
    got = extract(model, x, CNN_LAYERS, pooling="mean", batch_size=8)
    assert set(got) == set(CNN_LAYERS)
    for name in CNN_LAYERS:
        assert got[name].dtype == np.float32
        assert got[name].shape == expected[name].shape
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_eager_and_torchscript_agree(seed, tmp_path):
    eager = cnn(seed)
    x = images(seed, n=17)
    a = extract(eager, x, CNN_LAYERS, pooling="flatten")
    b = extract(scripted(eager, tmp_path), x, CNN_LAYERS, pooling="flatten")
    for name in CNN_LAYERS:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-6)


def test_nested_submodule_of_eager_model():
    torch.manual_seed(0)
    model = mlp(6, [5, 4], 3).eval()
    x = np.random.default_rng(0).standard_normal((10, 6)).astype(np.float32)
    got = extract(model, x, ["block1.0", "block1"])
    with torch.no_grad():
        pre = model.block1[0](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got["block1.0"], pre, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got["block1"], np.maximum(pre, 0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("script", [False, True])
def test_batch_size_does_not_change_result(seed, script, tmp_path):
    eager = cnn(seed)
    model = scripted(eager, tmp_path) if script else eager
    x = images(seed, n=30)
    small = extract(model, x, CNN_LAYERS, batch_size=7)
    large = extract(model, x, CNN_LAYERS, batch_size=1000)
    single = extract(model, x, ["conv2"], batch_size=1)
    for name in CNN_LAYERS:
        np.testing.assert_allclose(small[name], large[name], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(single["conv2"], large["conv2"], rtol=1e-5, atol=1e-6)


def test_torchscript_output_after_extra_op(tmp_path):
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 3)

        def forward(self, x):
            return self.a(x) * 3.0

    model = scripted(Scaled().eval(), tmp_path)
    x = np.random.default_rng(0).standard_normal((9, 4)).astype(np.float32)
    got = extract(model, x, ["a", "output"], batch_size=4)
    np.testing.assert_allclose(got["output"], 3.0 * got["a"], rtol=1e-6, atol=1e-6)


# --- pooling --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_pool_conv_maps(seed):
    t = torch.randn(5, 4, 6, 3, generator=torch.Generator().manual_seed(seed))
    mean = extraction.pool(t, "mean")
    assert mean.shape == (5, 4)
    torch.testing.assert_close(mean, t.mean(dim=(2, 3)))
    flat = extraction.pool(t, "flatten")
    assert flat.shape == (5, 4 * 6 * 3)
    torch.testing.assert_close(flat, t.reshape(5, -1))
    for token_only in ("cls", "last"):
        with pytest.raises(InputError, match="token sequences"):
            extraction.pool(t, token_only)


@pytest.mark.parametrize("seed", SEEDS)
def test_pool_token_sequences(seed):
    t = torch.randn(5, 7, 3, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(extraction.pool(t, "mean"), t.mean(dim=1))
    torch.testing.assert_close(extraction.pool(t, "cls"), t[:, 0])
    torch.testing.assert_close(extraction.pool(t, "last"), t[:, 6])
    assert extraction.pool(t, "flatten").shape == (5, 21)


def test_pool_low_dimensional_outputs():
    t = torch.arange(12.0).reshape(4, 3)
    for pooling in POOLINGS:
        assert torch.equal(extraction.pool(t, pooling), t)
    v = torch.arange(4.0)
    assert extraction.pool(v, "mean").shape == (4, 1)


def test_unknown_pooling():
    with pytest.raises(InputError, match="unknown pooling 'max'"):
        extraction.pool(torch.zeros(2, 3, 4, 4), "max")
    with pytest.raises(InputError, match="unknown pooling"):
        extract(cnn(0), images(0), ["conv1"], pooling="max")


def test_pooling_through_extraction_shapes():
    x = images(0, n=6)
    model = cnn(0)
    flat = extract(model, x, ["conv1", "conv2"], pooling="flatten")
    assert flat["conv1"].shape == (6, 4 * 9 * 7)
    assert flat["conv2"].shape == (6, 6 * 5 * 4)  # stride 2, padding 1
    with pytest.raises(InputError, match="token sequences"):
        extract(model, x, ["conv1"], pooling="cls")


class TokenModel(nn.Module):
    """n × T × d_in → n × T × d."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(5, 3)

    def forward(self, x):
        return self.proj(x)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("script", [False, True])
def test_token_sequence_pooling_through_extraction(seed, script, tmp_path):
    torch.manual_seed(seed)
    eager = TokenModel().eval()
    model = scripted(eager, tmp_path) if script else eager
    x = np.random.default_rng(seed).standard_normal((8, 6, 5)).astype(np.float32)
    with torch.no_grad():
        full = eager.proj(torch.from_numpy(x)).numpy()
    expected = {"mean": full.mean(1), "cls": full[:, 0], "last": full[:, -1]}
    for pooling, want in expected.items():
        got = extract(model, x, ["proj"], pooling=pooling, batch_size=3)["proj"]
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("script", [False, True])
def test_unknown_layer(script, tmp_path):
    eager = cnn(0)
    model = scripted(eager, tmp_path) if script else eager
    with pytest.raises(InputError, match="conv9"):
        extract(model, images(0), ["conv1", "conv9"])


def test_no_layers():
    with pytest.raises(InputError, match="at least one layer"):
        extract(cnn(0), images(0), [])


class DivideByZero(nn.Module):
    def __init__(self, numerator_zero: bool):
        super().__init__()
        self.numerator_zero = numerator_zero

    def forward(self, x):
        return (x * 0 if self.numerator_zero else x.abs() + 1) / torch.zeros_like(x)


@pytest.mark.parametrize("numerator_zero", [True, False])  # NaN, Inf
@pytest.mark.parametrize("script", [False, True])
def test_non_finite_activations_name_the_layer(numerator_zero, script, tmp_path):
    torch.manual_seed(0)
    eager = nn.Sequential(
        OrderedDict(
            fine=nn.Linear(4, 4),
            broken_layer=DivideByZero(numerator_zero),
            after=nn.Linear(4, 2),
        )
    ).eval()
    model = scripted(eager, tmp_path) if script else eager
    x = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    with pytest.raises(InputError, match="'broken_layer' produced NaN or Inf"):
        extract(model, x, ["fine", "broken_layer"])
    assert extract(model, x, ["fine"])["fine"].shape == (10, 4)


@pytest.mark.parametrize("script", [False, True])
def test_model_failing_on_input_shape(script, tmp_path):
    torch.manual_seed(0)
    eager = mlp(6, [5], 3).eval()
    model = scripted(eager, tmp_path) if script else eager
    x = np.zeros((4, 7), dtype=np.float32)
    with pytest.raises(InputError, match=r"failed on input of shape \(4, 7\)"):
        extract(model, x, ["block1"])


def test_non_tensor_output():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)

        def forward(self, x):
            y = self.a(x)
            return y, y

    x = np.zeros((5, 3), dtype=np.float32)
    with pytest.raises(InputError, match="'output' did not return a tensor"):
        extract(Pair(), x, ["a", "output"])


# --- progress and hooks ---------------------------------------------------------------------


@pytest.mark.parametrize(("n", "batch_size"), [(23, 7), (21, 7), (5, 1000), (1, 1)])
def test_progress_is_monotone_and_reaches_one(n, batch_size):
    seen: list[float] = []
    extract(cnn(0), images(0, n=n), ["conv1"], batch_size=batch_size, progress=seen.append)
    assert len(seen) == -(-n // batch_size)
    assert seen == sorted(seen)
    assert all(0 < v <= 1 for v in seen)
    assert seen[-1] == 1.0


def _hook_counts(model: nn.Module) -> list[int]:
    return [len(m._forward_hooks) for m in model.modules()]


def test_forward_hooks_are_removed():
    model = cnn(0)
    x = images(0)
    extract(model, x, ["conv1", "conv1.0", "pool", "output"])
    assert sum(_hook_counts(model)) == 0
    # also when extraction fails half-way (here: non-finite output of a hooked layer)
    broken = nn.Sequential(OrderedDict(a=nn.Linear(4, 4), bad=DivideByZero(True)))
    with pytest.raises(InputError):
        extract(broken, np.ones((3, 4), np.float32), ["a", "bad"])
    assert sum(_hook_counts(broken)) == 0
    # and when the model raises
    with pytest.raises(InputError):
        extract(model, np.zeros((3, 2, 9, 7), np.float32), ["conv1"])
    assert sum(_hook_counts(model)) == 0


def test_existing_user_hooks_are_kept():
    model = cnn(0)
    handle = model.conv1.register_forward_hook(lambda *args: None)
    extract(model, images(0), ["conv1"])
    assert len(model.conv1._forward_hooks) == 1
    handle.remove()
