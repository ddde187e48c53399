"""Small upload files, good and bad, built in memory for the web-app tests."""

from __future__ import annotations

import csv
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from analysis.models.architectures import mlp

MLP_PARAMETERS = 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10  # 2778
MLP_DEFAULT_LAYERS = ["flatten", "block1", "block2", "head"]


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def labelled_npz(n: int = 12, labels=("cat", "dog", "emu")) -> bytes:
    """A vector dataset with string labels and a ``group`` metadata column."""
    rng = np.random.default_rng(0)
    return npz_bytes(
        x=rng.normal(size=(n, 5)).astype(np.float32),
        y=np.array([labels[i % len(labels)] for i in range(n)]),
        ids=np.array([f"s{i}" for i in range(n)]),
        group=np.array(["train" if i % 2 else "test" for i in range(n)]),
    )


def png_bytes(colour: int, size=(6, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, color=colour).save(buffer, format="PNG")
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def image_zip(per_class: int = 3) -> bytes:
    members = {}
    for k, label in enumerate(["circle", "square"]):
        for i in range(per_class):
            members[f"{label}/{i:03d}.png"] = png_bytes(40 * k + 10 * i + 5)
    return zip_bytes(members)


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


def tabular_csv() -> bytes:
    rows = [["id", "label", "height", "weight", "colour"]]
    for i in range(8):
        rows.append(
            [
                f"r{i}",
                "tall" if i % 2 else "short",
                str(1.5 + i / 10),
                str(60 + i),
                ["red", "blue"][i % 2],
            ]
        )
    return csv_bytes(rows)


def torchscript_bytes(module: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def mlp_safetensors(seed: int = 0, tmp_dir: Path | None = None) -> bytes:
    torch.manual_seed(seed)
    model = mlp(64, [32, 16], 10)
    path = Path(tmp_dir or ".") / f"mlp-{seed}.safetensors"
    save_file(model.state_dict(), str(path))
    data = path.read_bytes()
    path.unlink()
    return data


def torch_save_state_dict(seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    buffer = io.BytesIO()
    torch.save(mlp(64, [32, 16], 10).state_dict(), buffer)
    return buffer.getvalue()


class _Marker:
    """Unpickling this creates a file: proof that a pickle was loaded."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def malicious_pickle(marker: Path) -> bytes:
    return pickle.dumps(_Marker(marker))


def malicious_torchscript_lookalike(marker: Path) -> bytes:
    """A zip laid out like a TorchScript archive whose pickles would create ``marker``."""
    payload = malicious_pickle(marker)
    return zip_bytes(
        {
            "archive/data.pkl": payload,
            "archive/constants.pkl": payload,
            "archive/code/__torch__.py": b"",
            "archive/version": b"3\n",
        }
    )


def media_files(root: Path) -> set[Path]:
    return {p for p in Path(root).rglob("*") if p.is_file()} if Path(root).exists() else set()
