"""Checkpoint loading (analysis/models/checkpoints.py): TorchScript and safetensors only, never
unpickle;
layer trees and the layers extraction can record."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from analysis.errors import InputError
from analysis.models import checkpoints, modules
from analysis.models.architectures import mlp, small_cnn
from analysis.models.base import OUTPUT

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

SEEDS = [0, 1, 2]


def make_model(kind: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "mlp":
        return mlp(12, [10, 7], 4).eval()
    return small_cnn(3, [4, 6, 5], 4).eval()


def example_input(kind: str, seed: int, n: int = 9) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1000)
    shape = (n, 12) if kind == "mlp" else (n, 3, 11, 9)
    return torch.randn(shape, generator=g)


def evil_pickle(marker: Path) -> bytes:
    """Protocol-2 pickle whose loading calls ``builtins.open(marker, "w")``: unpickling it
    creates ``marker``. Written as raw opcodes so no Python object with ``__reduce__`` is
    needed at test time."""
    return b"\x80\x02cbuiltins\nopen\n(V" + str(marker).encode() + b"\nVw\ntR."


def zipped_like_torch_save(payload: bytes) -> bytes:
    """The layout ``torch.save`` writes (a zip with ``archive/data.pkl``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/.data/serialization_id", "0")
    return buf.getvalue()


def zipped_like_torchscript(payload: bytes) -> bytes:
    """A zip that passes the name checks for TorchScript but whose pickles are malicious."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/constants.pkl", payload)
        zf.writestr("archive/code/__torch__/model.py", "")
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


def script_and_load(model: nn.Module, tmp_path: Path, name: str = "model.pt"):
    path = tmp_path / name
    torch.jit.script(model).save(str(path))
    return checkpoints.load_torchscript(path)


# --- TorchScript ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["mlp", "small-cnn"])
def test_torchscript_round_trip(kind, seed, tmp_path):
    model = make_model(kind, seed)
    loaded = script_and_load(model, tmp_path)
    assert modules.is_torchscript(loaded)
    assert not loaded.training
    x = example_input(kind, seed)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    again = checkpoints.load_checkpoint(tmp_path / "model.pt", "torchscript")
    with torch.no_grad():
        assert torch.equal(again(x), loaded(x))


@pytest.mark.parametrize("what", ["model", "state_dict"])
def test_pickled_torch_save_is_refused(what, tmp_path):
    model = make_model("mlp", 0)
    path = tmp_path / "ckpt.pt"
    torch.save(model if what == "model" else model.state_dict(), path)
    with pytest.raises(InputError, match="pickled") as info:
        checkpoints.load_torchscript(path)
    assert "TorchScript" in str(info.value)
    with pytest.raises(InputError):
        checkpoints.load_checkpoint(path, "torchscript")
    with pytest.raises(InputError):
        checkpoints.load_checkpoint(path, "safetensors", "mlp")


def test_evil_pickle_canary_is_live(tmp_path):
    """The payload used below really would run code if unpickled (so those tests can fail)."""
    marker = tmp_path / "canary"
    pickle.loads(evil_pickle(marker)).close()
    assert marker.exists()


@pytest.mark.parametrize("layout", ["raw", "torch.save zip", "torchscript-like zip"])
@pytest.mark.parametrize("fmt", ["torchscript", "safetensors"])
def test_malicious_pickle_is_refused_without_running_code(layout, fmt, tmp_path):
    marker = tmp_path / "PWNED"
    payload = evil_pickle(marker)
    data = {
        "raw": payload,
        "torch.save zip": zipped_like_torch_save(payload),
        "torchscript-like zip": zipped_like_torchscript(payload),
    }[layout]
    path = tmp_path / "upload.pt"
    path.write_bytes(data)
    with pytest.raises(InputError) as info:
        checkpoints.load_checkpoint(path, fmt, "mlp")
    message = str(info.value)
    if fmt == "torchscript" and layout != "torchscript-like zip":
        assert "pickled" in message or "TorchScript" in message
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"\x00" * 10, bytes(range(256)) * 7, b"PK\x03\x04junk"])
@pytest.mark.parametrize("fmt", ["torchscript", "safetensors"])
def test_junk_files_are_refused(content, fmt, tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(content)
    with pytest.raises(InputError):
        checkpoints.load_checkpoint(path, fmt, "mlp")


def test_missing_file_is_refused(tmp_path):
    for fmt in checkpoints.FORMATS:
        with pytest.raises(InputError):
            checkpoints.load_checkpoint(tmp_path / "nope", fmt, "mlp")


@pytest.mark.parametrize("damage", ["truncate", "garbage data.pkl"])
def test_damaged_torchscript_is_refused(damage, tmp_path):
    good = tmp_path / "good.pt"
    torch.jit.script(make_model("mlp", 0)).save(str(good))
    bad = tmp_path / "bad.pt"
    if damage == "truncate":
        raw = good.read_bytes()
        bad.write_bytes(raw[: len(raw) // 2])
    else:
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
            for info in src.infolist():
                data = src.read(info.filename)
                if info.filename.endswith("/data.pkl"):
                    data = b"\x80\x02garbage"
                dst.writestr(info, data)
    with pytest.raises(InputError):
        checkpoints.load_torchscript(bad)


def test_format_arguments():
    with pytest.raises(InputError, match="unknown checkpoint format"):
        checkpoints.load_checkpoint("x.pt", "pickle")
    with pytest.raises(InputError, match="architecture"):
        checkpoints.load_checkpoint("x.safetensors", "safetensors")


# --- safetensors ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["mlp", "small-cnn"])
def test_safetensors_round_trip(kind, seed, tmp_path):
    model = make_model(kind, seed)
    path = tmp_path / "weights.safetensors"
    save_file(model.state_dict(), str(path))
    loaded = checkpoints.load_checkpoint(path, "safetensors", kind)
    assert not loaded.training
    assert not modules.is_torchscript(loaded)
    x = example_input(kind, seed)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert checkpoints.parameter_count(loaded) == checkpoints.parameter_count(model)


def _save(state: dict, tmp_path: Path) -> Path:
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_unknown_architecture(tmp_path):
    path = _save(make_model("mlp", 0).state_dict(), tmp_path)
    with pytest.raises(InputError, match="unknown architecture 'resnet50'") as info:
        checkpoints.load_checkpoint(path, "safetensors", "resnet50")
    assert "mlp" in str(info.value) and "small-cnn" in str(info.value)


@pytest.mark.parametrize(("weights", "architecture"), [("mlp", "small-cnn"), ("small-cnn", "mlp")])
def test_weights_of_another_architecture(weights, architecture, tmp_path):
    path = _save(make_model(weights, 0).state_dict(), tmp_path)
    with pytest.raises(InputError, match=architecture):
        checkpoints.load_checkpoint(path, "safetensors", architecture)


@pytest.mark.parametrize(
    "edit",
    ["missing bias", "extra key", "transposed head", "missing head", "conv weight is 2-D"],
)
def test_weights_that_do_not_fit(edit, tmp_path):
    kind = "small-cnn" if edit == "conv weight is 2-D" else "mlp"
    state = dict(make_model(kind, 0).state_dict())
    if edit == "missing bias":
        del state["block1.0.bias"]
    elif edit == "extra key":
        state["block9.extra"] = torch.zeros(3)
    elif edit == "transposed head":
        state["head.weight"] = state["head.weight"].T
    elif edit == "missing head":
        del state["head.weight"]
    else:
        state["conv1.0.weight"] = state["conv1.0.weight"].flatten(1)
    path = _save(state, tmp_path)
    with pytest.raises(InputError):
        checkpoints.load_checkpoint(path, "safetensors", kind)


@pytest.mark.parametrize("key", ["block1.0.weight", "head.weight"])
def test_weights_with_too_few_dimensions(key, tmp_path):
    state = dict(make_model("mlp", 0).state_dict())
    state[key] = torch.zeros(5) if key == "block1.0.weight" else torch.zeros(())
    path = _save(state, tmp_path)
    with pytest.raises(InputError):
        checkpoints.load_checkpoint(path, "safetensors", "mlp")


# --- layer tree and layer choices -----------------------------------------------------------


def _flatten_tree(nodes: list[dict]) -> list[dict]:
    out = []
    for node in nodes:
        out.append(node)
        out.extend(_flatten_tree(node["children"]))
    return out


@pytest.mark.parametrize("scripted", [False, True])
def test_layer_tree_mlp(scripted, tmp_path):
    model = make_model("mlp", 0)  # 12 → 10 → 7 → 4
    if scripted:
        model = script_and_load(model, tmp_path)
    tree = checkpoints.layer_tree(model)
    assert [n["name"] for n in tree] == ["flatten", "block1", "block2", "head"]
    assert [n["type"] for n in tree] == ["Flatten", "Sequential", "Sequential", "Linear"]
    assert [n["parameters"] for n in tree] == [0, 12 * 10 + 10, 10 * 7 + 7, 7 * 4 + 4]
    assert sum(n["parameters"] for n in tree) == checkpoints.parameter_count(model) == 239
    block1 = tree[1]
    assert [c["name"] for c in block1["children"]] == ["block1.0", "block1.1"]
    assert [c["type"] for c in block1["children"]] == ["Linear", "ReLU"]
    assert sum(c["parameters"] for c in block1["children"]) == block1["parameters"]
    names = [n["name"] for n in _flatten_tree(tree)]
    assert names == [name for name, _ in model.named_modules() if name]


@pytest.mark.parametrize("seed", SEEDS)
def test_layer_tree_parameters_sum_at_every_level(seed):
    model = make_model("small-cnn", seed)
    tree = checkpoints.layer_tree(model)
    assert sum(n["parameters"] for n in tree) == sum(p.numel() for p in model.parameters())
    for node in _flatten_tree(tree):
        if node["children"]:
            assert sum(c["parameters"] for c in node["children"]) == node["parameters"]


@pytest.mark.parametrize("scripted", [False, True])
@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("mlp", ["flatten", "block1", "block2", "head"]),
        ("small-cnn", ["conv1", "conv2", "conv3", "pool", "head"]),
    ],
)
def test_default_layers_of_sequential_models(kind, expected, scripted, tmp_path):
    model = make_model(kind, 0)
    if scripted:
        model = script_and_load(model, tmp_path)
    assert checkpoints.default_layers(model) == expected  # the head is the output
    assert checkpoints.capturable_layers(model)[-1] == OUTPUT


class ExtraOpAfterLastBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.b = nn.Linear(5, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x))) * 2.0


class ReturnsLastBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.b = nn.Linear(5, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


class CalledTwiceAndInLoops(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.twice = nn.Linear(4, 4)
        self.looped = nn.Linear(4, 4)
        self.branch = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)
        self.d = nn.Linear(4, 4)

    def forward(self, x):
        x = self.a(x)
        x = self.twice(x)
        x = self.twice(x)
        for _ in range(3):
            x = self.looped(x)
        if bool(x.sum() > 0):
            x = self.branch(x)
        return self.d(x)


class DirectAndInLoop(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.c = nn.Linear(4, 4)

    def forward(self, x):
        x = self.a(x)
        for _ in range(2):
            x = self.a(x)
        return self.c(x)


def test_default_layers_torchscript_with_extra_op_after_last_block(tmp_path):
    loaded = script_and_load(ExtraOpAfterLastBlock(), tmp_path)
    assert checkpoints.capturable_layers(loaded) == ["a", "b", "output"]
    assert checkpoints.default_layers(loaded) == ["a", "b", "output"]
    returns_block = script_and_load(ReturnsLastBlock(), tmp_path, "b.pt")
    assert checkpoints.default_layers(returns_block) == ["a", "b"]


def test_default_layers_eager_non_sequential_includes_output():
    assert checkpoints.default_layers(ExtraOpAfterLastBlock()) == ["a", "b", "output"]


def test_capturable_layers_eager_lists_every_submodule():
    model = make_model("mlp", 0)
    assert checkpoints.capturable_layers(model) == [
        "flatten",
        "block1",
        "block1.0",
        "block1.1",
        "block2",
        "block2.0",
        "block2.1",
        "head",
        "output",
    ]


def test_capturable_layers_torchscript_excludes_repeated_and_nested_calls(tmp_path):
    loaded = script_and_load(CalledTwiceAndInLoops(), tmp_path)
    layers = checkpoints.capturable_layers(loaded)
    assert layers == ["a", "d", "output"]
    assert checkpoints.default_layers(loaded) == ["a", "d"]
    for name in ("twice", "looped", "branch", "unused"):
        with pytest.raises(InputError, match=name) as info:
            modules.ScriptCapture(loaded, [name])
        assert "available: a, d, output" in str(info.value)
    # the eager module can hook every submodule
    assert checkpoints.capturable_layers(CalledTwiceAndInLoops())[:-1] == [
        "a",
        "twice",
        "looped",
        "branch",
        "unused",
        "d",
    ]


def test_capturable_layers_torchscript_excludes_block_also_called_in_loop(tmp_path):
    loaded = script_and_load(DirectAndInLoop(), tmp_path)
    assert checkpoints.capturable_layers(loaded) == ["c", "output"]


@pytest.mark.parametrize("seed", SEEDS)
def test_script_capture_returns_block_outputs(seed, tmp_path):
    torch.manual_seed(seed)
    eager = ExtraOpAfterLastBlock().eval()
    loaded = script_and_load(eager, tmp_path)
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(seed))
    captured = modules.ScriptCapture(loaded, ["b", "a", "output"])(x)
    with torch.no_grad():
        a = eager.a(x)
        b = eager.b(torch.relu(a))
    assert set(captured) == {"a", "b", "output"}
    torch.testing.assert_close(captured["a"], a, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(captured["b"], b, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(captured["output"], 2.0 * b, rtol=1e-6, atol=1e-6)
    only_block = modules.ScriptCapture(loaded, ["a"])(x)
    assert set(only_block) == {"a"}


def test_layer_tree_nested_names():
    model = nn.Sequential(
        OrderedDict(stem=nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), act=nn.ReLU())))
    )
    tree = checkpoints.layer_tree(model)
    assert tree[0]["name"] == "stem"
    assert [c["name"] for c in tree[0]["children"]] == ["stem.conv", "stem.act"]
    assert tree[0]["children"][0]["parameters"] == 2 * 1 * 3 * 3 + 2
