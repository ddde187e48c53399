"""Model stitching in the model host: both checkpoints loaded there (a TorchScript CNN as A, a
.safetensors MLP as B) give the library's matrices, and a TorchScript B is rebuilt as its
eager built-in architecture, checked to compute the same outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from analysis.errors import InputError
from analysis.host import Limits, run_in_host
from analysis.host.tasks import eager_module
from analysis.models.architectures import mlp, small_cnn
from analysis.models.modules import is_torchscript
from analysis.stitching import stitching_matrix
from tests.analysis.test_weight_space import _described, close

LIMITS = Limits(wall_s=120, stall_s=120, memory_bytes=3 * 1024**3)


def data(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, n)


def test_a_host_stitches_a_torchscript_cnn_into_a_safetensors_mlp(tmp_path):
    x, y = data()
    torch.manual_seed(0)
    a, b = small_cnn(1, [4, 8], 10).eval(), mlp(64, [16, 8], 10).eval()
    path_a, path_b = tmp_path / "a.pt", tmp_path / "b.safetensors"
    torch.jit.script(a).save(str(path_a))
    save_file({k: v.contiguous() for k, v in b.state_dict().items()}, str(path_b))
    params = {
        **_described(path_a, "torchscript"),
        "model_b": _described(path_b, "safetensors", "mlp"),
        "architecture_b": "mlp",
        "layers_a": ["pool", "head"],
        "layers_b": [],
        "test_fraction": 0.25,
        "seed": 2,
        "map": "affine",
        "ridge": 0.0,
        "n_anchors": 0,
        "device": "cpu",
    }
    result, arrays = run_in_host(
        "analysis.host.tasks:stitch",
        params,
        {"model": path_a, "model_b": path_b, "x": x, "y": y},
        LIMITS,
    )
    assert arrays == {}
    expected = stitching_matrix(a, b, x, y, ["pool", "head"], test_fraction=0.25, seed=2)
    assert close(result, expected.to_json())
    assert result["layers_b"] == ["flatten", "block1", "block2", "head"]


def test_a_torchscript_b_is_rebuilt_as_its_eager_architecture():
    x, _ = data(20)
    torch.manual_seed(1)
    built = mlp(64, [16, 8], 10).eval()
    scripted = torch.jit.script(built)
    rebuilt = eager_module(scripted, "mlp", x)
    assert isinstance(rebuilt, nn.Module) and not is_torchscript(rebuilt)
    with torch.no_grad():
        inputs = torch.as_tensor(x)
        assert torch.equal(rebuilt(inputs), built(inputs))
    assert eager_module(built, "mlp", x) is built  # an eager module stays as it is

    class Scaled(nn.Module):  # the MLP's names, another function
        def __init__(self) -> None:
            super().__init__()
            self.flatten, self.block1 = nn.Flatten(), nn.Sequential(nn.Linear(64, 16), nn.ReLU())
            self.head = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.block1(self.flatten(x))) * 3.0

    with pytest.raises(InputError, match="does not compute B's outputs"):
        eager_module(torch.jit.script(Scaled()), "mlp", x)
