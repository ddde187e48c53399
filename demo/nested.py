"""The demo's nested (Matryoshka) embedding: the digit MLP 64→128→64→10 trained twice from the
same initial weights on the same batches, once with a Matryoshka loss on its 64-d last hidden
layer (``block2``) and once without, so that the nested-embedding page has a model whose
prefixes serve beside one whose do not (Kusupati et al. 2022).

The Matryoshka loss is the sum over the prefixes m = 8, 16, 32, 64 of the cross-entropy of
the shared linear head restricted to the first m coordinates, ``head.weight[:, :m] @ z[:m] +
head.bias``; the model saved is the plain MLP (its head reads the whole embedding), so both
files have the same layers and the same forward pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.models.architectures import mlp
from demo.vision import accuracy, initialize, load_digits_arrays, torch_threads

MATRYOSHKA, PLAIN = "mlp-digits-matryoshka", "mlp-digits-plain"
LAYER = "block2"  # the 64-d embedding whose prefixes are measured
WIDTHS = (128, 64)
PREFIXES = (8, 16, 32, 64)
HELD_OUT = 397  # the last digits, never trained on
EPOCHS, BATCH_SIZE, LR = 30, 64, 2e-3


@dataclass(frozen=True)
class NestedModel:
    """One of the two trained MLPs, saved as TorchScript."""

    name: str
    path: Path
    description: str
    train_accuracy: float
    held_out_accuracy: float
    seconds: float


def matryoshka_loss(
    embedding: torch.Tensor,
    head: nn.Linear,
    y: torch.Tensor,
    prefixes: tuple[int, ...] = PREFIXES,
) -> torch.Tensor:
    """Σ over m in ``prefixes`` of the cross-entropy of ``head`` on the first m coordinates
    of ``embedding`` (the head's first m input weights, its whole bias)."""
    losses = [
        F.cross_entropy(F.linear(embedding[:, :m], head.weight[:, :m], head.bias), y)
        for m in prefixes
    ]
    return torch.stack(losses).sum()


def train_nested_pair(
    out_dir: str | Path, seed: int = 0, num_threads: int = 1
) -> list[NestedModel]:
    """Train the MLP with and without the Matryoshka loss (Adam, ``EPOCHS`` epochs over the
    first 1,400 digits in batches of ``BATCH_SIZE``, the same initial weights and batch
    order for both) and save each as ``out_dir/<name>.pt``; a few seconds in all."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    digits = load_digits_arrays()
    x = np.asarray(digits["x"], dtype=np.float32).reshape(len(digits["x"]), -1)
    y = np.asarray(digits["y"], dtype=np.int64)
    train_x, train_y = x[:-HELD_OUT], y[:-HELD_OUT]
    xs, ys = torch.from_numpy(train_x), torch.from_numpy(train_y)
    trained = []
    with torch_threads(num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        start = mlp(64, WIDTHS, 10)
        initialize(start)
        for name in (MATRYOSHKA, PLAIN):
            started = time.perf_counter()
            model = mlp(64, WIDTHS, 10)
            model.load_state_dict(start.state_dict())
            body, head = model[:-1], model[-1]
            assert isinstance(head, nn.Linear)
            optimizer = torch.optim.Adam(model.parameters(), lr=LR)
            generator = torch.Generator().manual_seed(seed)
            model.train()
            for _ in range(EPOCHS):
                order = torch.randperm(len(xs), generator=generator)
                for first in range(0, len(xs), BATCH_SIZE):
                    index = order[first : first + BATCH_SIZE]
                    embedding = body(xs[index])
                    loss = (
                        matryoshka_loss(embedding, head, ys[index])
                        if name == MATRYOSHKA
                        else F.cross_entropy(head(embedding), ys[index])
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            path = out / f"{name}.pt"
            torch.jit.script(model).save(str(path))
            trained.append(
                NestedModel(
                    name=name,
                    path=path,
                    description=_DESCRIPTIONS[name],
                    train_accuracy=accuracy(model, train_x, train_y),
                    held_out_accuracy=accuracy(model, x[-HELD_OUT:], y[-HELD_OUT:]),
                    seconds=time.perf_counter() - started,
                )
            )
    return trained


_DESCRIPTIONS = {
    MATRYOSHKA: "MLP 64→128→64→10 on the first 1,400 digits with a Matryoshka loss: the "
    "cross-entropy of its head on the first 8, 16, 32 and 64 coordinates of block2, summed. "
    f"Same initial weights and batches as {PLAIN}.",
    PLAIN: "MLP 64→128→64→10 on the first 1,400 digits with the plain cross-entropy: the "
    f"baseline of {MATRYOSHKA} (same initial weights and batches).",
}
