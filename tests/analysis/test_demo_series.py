"""The demo's training run (demo/series.py): a checkpoint and metrics at every logged step,
and a change of regime where the learning rate switches."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.models.checkpoints import load_checkpoint
from demo.series import CHECKPOINTS, SLOW_UNTIL, STEPS_BETWEEN, train_series
from demo.vision import accuracy, load_digits_arrays


def test_the_training_run_logs_every_checkpoint_with_its_metrics(tmp_path: Path) -> None:
    logged: list[tuple[Path, int, dict[str, float]]] = []
    train_series(tmp_path, lambda path, step, metrics: logged.append((path, step, metrics)))
    assert [step for _, step, _ in logged] == [i * STEPS_BETWEEN for i in range(CHECKPOINTS)]
    assert all(
        set(m) == {"loss", "train_accuracy", "held_out_accuracy", "lr", "epoch"}
        for _, _, m in logged
    )
    # each file holds the weights its metrics were measured on
    digits = load_digits_arrays()
    x = np.asarray(digits["x"], dtype=np.float32).reshape(len(digits["x"]), -1)
    path, _, metrics = logged[-1]
    model = load_checkpoint(path, "torchscript")
    assert accuracy(model, x[:-397], digits["y"][:-397]) == metrics["train_accuracy"]
    # a regime change: the loss falls faster after the learning rate switches
    loss = {step: m["loss"] for _, step, m in logged}
    before = loss[SLOW_UNTIL - STEPS_BETWEEN] - loss[SLOW_UNTIL]
    after = loss[SLOW_UNTIL] - loss[SLOW_UNTIL + STEPS_BETWEEN]
    assert after > 2 * before
    assert logged[-1][2]["held_out_accuracy"] > 0.8
