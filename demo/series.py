"""The demo's training run as a series: the digit MLP trained while a checkpoint and its
metrics are logged at regular steps, with a change of regime half way (a small learning rate,
then a large one), so that the dynamics views have phases to show.

The training loop hands each checkpoint to ``log(path, step, metrics)``. The demo build
passes :func:`log_through`, which does what a training script of one's own does with the
Python client: each checkpoint goes up with ``log_checkpoint`` (a chunked upload to the demo's
running site, checked by its worker in a model host, appended to the series with its
metrics), and once the series is long enough the dynamics are asked for with ``follow``,
again after each later checkpoint, which then computes only its new cells.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from replens_client import Client

from analysis.models.architectures import mlp
from demo.vision import accuracy, initialize, load_digits_arrays, torch_threads

SERIES_NAME = "mlp-digits-run"
CHECKPOINTS = 14  # step 0 (the initial weights) and 13 more
STEPS_BETWEEN = 40  # optimiser steps between two checkpoints
SLOW_UNTIL = 6 * STEPS_BETWEEN  # the learning rate switches here
SLOW_LR, FAST_LR = 0.002, 0.1  # SGD with momentum 0.9
HELD_OUT = 397  # the last digits, never trained on
LAYERS = ["block1", "block2", "head"]  # its hidden layers and output (not the flat input)
FOLLOW_FROM = CHECKPOINTS - 1  # the dynamics are asked for from this many checkpoints on
DESCRIPTION = (
    "The digit MLP 64→64→32→10 during training (SGD, learning rate "
    f"{SLOW_LR}, then {FAST_LR} from step {SLOW_UNTIL})."
)

Log = Callable[[Path, int, dict[str, float]], object]


def train_series(out_dir: str | Path, log: Log, seed: int = 0, num_threads: int = 1) -> None:
    """Train the MLP 64→64→32→10 with SGD on the first 1,400 digits, in batches of 32, for
    (CHECKPOINTS − 1) × STEPS_BETWEEN steps; save it as TorchScript at step 0 and every
    STEPS_BETWEEN steps and call ``log`` with its path, step and metrics: the mean training
    loss since the last checkpoint, the accuracy on the training digits and on the 397
    held-out ones, the learning rate and the epoch."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    digits = load_digits_arrays()
    x = np.asarray(digits["x"], dtype=np.float32).reshape(len(digits["x"]), -1)
    y = np.asarray(digits["y"], dtype=np.int64)
    train_x, train_y = x[:-HELD_OUT], y[:-HELD_OUT]
    xs, ys = torch.from_numpy(train_x), torch.from_numpy(train_y)
    generator = torch.Generator().manual_seed(seed)
    with torch_threads(num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = mlp(64, [64, 32], 10)
        initialize(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=SLOW_LR, momentum=0.9)
        losses: list[float] = []
        order = torch.randperm(len(xs), generator=generator)
        position = 0
        for step in range((CHECKPOINTS - 1) * STEPS_BETWEEN + 1):
            if step % STEPS_BETWEEN == 0:
                metrics = {
                    "loss": float(np.mean(losses)) if losses else _loss(model, xs, ys),
                    "train_accuracy": accuracy(model, train_x, train_y),
                    "held_out_accuracy": accuracy(model, x[-HELD_OUT:], y[-HELD_OUT:]),
                    "lr": optimizer.param_groups[0]["lr"],
                    "epoch": step * 32 / len(xs),
                }
                path = out / f"{SERIES_NAME}-step{step}.pt"
                torch.jit.script(model).save(str(path))
                log(path, step, metrics)
                losses = []
            if step == SLOW_UNTIL:
                optimizer.param_groups[0]["lr"] = FAST_LR
            if position + 32 > len(xs):
                order, position = torch.randperm(len(xs), generator=generator), 0
            index = order[position : position + 32]
            position += 32
            model.train()
            loss = F.cross_entropy(model(xs[index]), ys[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))


def log_through(client: Client, workspace: str, dataset: int) -> tuple[Log, list[dict]]:
    """A ``log`` for :func:`train_series` that logs each checkpoint to ``workspace`` through
    ``client`` (``log_checkpoint`` with its step and metrics, waiting while a worker checks
    it), and, once the series has :data:`FOLLOW_FROM` checkpoints, asks after each for the
    dynamics of :data:`LAYERS` on ``dataset`` (``follow``): the request after the last
    checkpoint extends the one before by a row of cells. Returns the ``log`` and the list the
    dynamics runs asked for are appended to."""
    runs: list[dict] = []
    logged = 0

    def log(path: Path, step: int, metrics: dict[str, float]) -> None:
        nonlocal logged
        client.log_checkpoint(
            path,
            workspace,
            step,
            name=path.stem,
            seed_group=SERIES_NAME,
            description=DESCRIPTION,
            metrics=metrics,
        )
        logged += 1
        if logged >= FOLLOW_FROM:
            runs.append(client.follow(workspace, SERIES_NAME, dataset, layers=LAYERS))

    return log, runs


def _loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))
