"""Weight space between two models as a run reports it (analysis.weights.space), and the model
host that loads both checkpoints of such a run (analysis.host.tasks:weights)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from analysis.errors import InputError
from analysis.host import HostFailure, Limits, run_in_host
from analysis.models.architectures import mlp, small_cnn
from analysis.models.checkpoints import describe
from analysis.weights.connectivity import evaluate_classifier
from analysis.weights.formats import WEIGHT_FORMATS, declared_architecture
from analysis.weights.space import weight_space

LIMITS = Limits(wall_s=120, stall_s=120, memory_bytes=3 * 1024**3)


def data(n: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, n)


def model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return mlp(64, [16, 8], 10).eval()


def tree(module: nn.Module) -> list[dict]:
    return describe(torch.jit.script(module))["layer_tree"]


def test_the_architecture_is_the_declared_one_or_the_one_a_torchscript_model_is_named_after():
    assert declared_architecture("safetensors", "mlp", []) == "mlp"
    assert declared_architecture("torchscript", "", tree(model(0))) == "mlp"
    assert declared_architecture("torchscript", "", tree(small_cnn(1, [4, 8], 10))) == "small-cnn"
    other = nn.Sequential(OrderedDict(body=nn.Linear(64, 10), head=nn.Linear(10, 10)))
    assert declared_architecture("torchscript", "", tree(other)) is None
    for fmt in ("onnx", "huggingface", "precomputed"):
        assert declared_architecture(fmt, "", tree(model(0))) is None
    assert "safetensors" in WEIGHT_FORMATS and "TorchScript" in WEIGHT_FORMATS


def test_the_ends_of_each_path_are_the_two_models_and_matching_keeps_b_s_function():
    x, y = data()
    a, b = model(0), model(1)
    result = weight_space(a, b, "mlp", x, y, seed=0)
    own_a = evaluate_classifier(a, x, y)
    own_b = evaluate_classifier(b, x, y)
    assert result["naive"]["loss"][0] == own_a[0] and result["naive"]["accuracy"][0] == own_a[1]
    assert result["naive"]["loss"][-1] == own_b[0]
    assert result["matched"]["loss"][0] == own_a[0]
    assert result["matched"]["loss"][-1] == pytest.approx(own_b[0], abs=1e-6)
    assert result["models"]["a"] == {"loss": own_a[0], "accuracy": own_a[1]}
    assert result["function_check"]["passed"]
    assert result["function_check"]["max_difference"] < 1e-6
    assert result["l2"]["after"] < result["l2"]["before"]
    assert result["units"] == {"block1": 16, "block2": 8}
    assert [layer["layer"] for layer in result["layers"]] == ["block1.0", "block2.0", "head"]
    assert len(result["lambdas"]) == 11


class Impostor(nn.Module):
    """Named as the built-in mlp, but its forward mixes units across the hidden layer."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.block1 = nn.Sequential(nn.Linear(64, 16), nn.ReLU())
        self.block2 = nn.Sequential(nn.Linear(16, 8), nn.ReLU())
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block1(self.flatten(x))
        return self.head(self.block2(h + h.mean(dim=1, keepdim=True) * torch.arange(16.0)))


def test_a_model_whose_forward_is_not_the_architecture_s_is_refused():
    x, y = data()
    torch.manual_seed(3)
    with pytest.raises(InputError, match="does not compute the same function"):
        weight_space(model(0), Impostor().eval(), "mlp", x, y)


def test_a_dataset_without_integer_labels_is_refused():
    x, _ = data()
    with pytest.raises(InputError, match="integer class label"):
        weight_space(model(0), model(1), "mlp", x, np.zeros(len(x), dtype=np.float32))


def _described(path, fmt: str, architecture: str = "") -> dict:
    return {
        "format": fmt,
        "architecture": architecture,
        "filename": path.name,
        "archive_limits": [100, 10**9],
    }


def test_a_host_loads_both_checkpoints_torchscript_and_safetensors(tmp_path):
    x, y = data()
    a, b = model(0), model(1)
    path_a = tmp_path / "a.pt"
    torch.jit.script(a).save(str(path_a))
    path_b = tmp_path / "b.safetensors"
    save_file({k: v.contiguous() for k, v in b.state_dict().items()}, str(path_b))
    params = {
        **_described(path_a, "torchscript"),
        "model_b": _described(path_b, "safetensors", "mlp"),
        "spec": "mlp",
        "seed": 0,
    }
    result, arrays = run_in_host(
        "analysis.host.tasks:weights",
        params,
        {"model": path_a, "model_b": path_b, "x": x, "y": y},
        LIMITS,
    )
    assert arrays == {}
    expected = weight_space(a, b, "mlp", x, y, seed=0)
    assert close(result, expected)


def close(found: object, expected: object) -> bool:
    """Equal JSON documents, numbers to 1e-9."""
    if isinstance(expected, dict):
        return (
            isinstance(found, dict)
            and found.keys() == expected.keys()
            and all(close(found[k], v) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(found, list)
            and len(found) == len(expected)
            and all(close(f, e) for f, e in zip(found, expected, strict=True))
        )
    if isinstance(expected, float):
        return found == pytest.approx(expected, rel=1e-9, abs=1e-12)
    return found == expected


def test_a_host_refuses_a_second_file_that_is_not_what_it_claims(tmp_path):
    x, y = data()
    path_a = tmp_path / "a.pt"
    torch.jit.script(model(0)).save(str(path_a))
    path_b = tmp_path / "b.pt"
    path_b.write_bytes(b"not a model")
    params = {
        **_described(path_a, "torchscript"),
        "model_b": _described(path_b, "torchscript"),
        "spec": "mlp",
        "seed": 0,
    }
    with pytest.raises(HostFailure, match="not a TorchScript archive"):
        run_in_host(
            "analysis.host.tasks:weights",
            params,
            {"model": path_a, "model_b": path_b, "x": x, "y": y},
            LIMITS,
        )
