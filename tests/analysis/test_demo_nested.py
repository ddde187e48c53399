"""The demo's nested-embedding pair (demo/nested.py): trained on the spot in seconds, the
Matryoshka-trained MLP's short prefixes serve better than the plain MLP's, at the same full
width quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from analysis.explorer.nested import nested_quality
from analysis.models.checkpoints import load_checkpoint
from demo.nested import HELD_OUT, LAYER, MATRYOSHKA, PLAIN, matryoshka_loss, train_nested_pair
from demo.vision import load_digits_arrays


def test_the_loss_of_the_full_prefix_alone_is_the_plain_cross_entropy() -> None:
    generator = torch.Generator().manual_seed(0)
    embedding = torch.randn(16, 64, generator=generator)
    head = torch.nn.Linear(64, 10).requires_grad_(False)
    y = torch.arange(16) % 10
    assert float(matryoshka_loss(embedding, head, y, (64,))) == pytest.approx(
        float(F.cross_entropy(head(embedding), y))
    )
    parts = [
        F.cross_entropy(embedding[:, :m] @ head.weight[:, :m].T + head.bias, y) for m in (8, 64)
    ]
    assert float(matryoshka_loss(embedding, head, y, (8, 64))) == pytest.approx(float(sum(parts)))


def test_the_matryoshka_models_short_prefixes_serve_better(tmp_path: Path) -> None:
    models = {m.name: m for m in train_nested_pair(tmp_path)}
    assert set(models) == {MATRYOSHKA, PLAIN}
    digits = load_digits_arrays()
    x = np.asarray(digits["x"], dtype=np.float32).reshape(len(digits["x"]), -1)[-HELD_OUT:]
    y = np.asarray(digits["y"])[-HELD_OUT:]
    quality = {}
    for name, trained in models.items():
        assert trained.held_out_accuracy > 0.85 and trained.seconds < 10
        model = load_checkpoint(trained.path, "torchscript")
        with torch.no_grad():
            embedding = model.block2(model.block1(model.flatten(torch.from_numpy(x)))).numpy()
        assert embedding.shape[1] == 64 and LAYER == "block2"
        quality[name] = nested_quality(embedding, y)
    nested, plain = quality[MATRYOSHKA], quality[PLAIN]
    assert nested.dims == plain.dims == [8, 16, 32, 64]
    # at 8 dimensions the Matryoshka prefix retrieves, classifies and keeps the geometry better
    assert nested.mean_ap[0] > plain.mean_ap[0] + 0.05
    assert nested.probe_accuracy[0] > plain.probe_accuracy[0] + 0.03
    assert nested.cka[0] > plain.cka[0]
    # and gives up little of it between 8 dimensions and the full 64
    assert nested.mean_ap[-1] - nested.mean_ap[0] < plain.mean_ap[-1] - plain.mean_ap[0]
