"""A checkpoint's lineage: the seed group of its recipe, its training step and its parent
checkpoint, set at upload (the CLI) or later on its page."""

from __future__ import annotations

import math

from analysis.errors import InputError
from webapp.catalog.models import Checkpoint


def set_lineage(
    checkpoint: Checkpoint, seed_group: str, step: int | None, parent: Checkpoint | None
) -> None:
    """Set the three together; the parent must be another checkpoint of the same workspace
    that does not descend from this one."""
    seed_group = seed_group.strip()
    if len(seed_group) > 200:
        raise InputError("a seed group has at most 200 characters")
    if step is not None and step < 0:
        raise InputError("a training step cannot be negative")
    ancestor = parent
    while ancestor is not None:
        if ancestor.pk == checkpoint.pk:
            raise InputError(f"{parent} descends from {checkpoint}: it cannot be its parent")
        if ancestor.workspace_id != checkpoint.workspace_id:
            raise InputError("the parent must be a checkpoint of the same workspace")
        ancestor = ancestor.parent
    checkpoint.seed_group, checkpoint.step, checkpoint.parent = seed_group, step, parent
    checkpoint.save(update_fields=["seed_group", "step", "parent"])


MAX_METRICS = 50


def check_metrics(metrics: object) -> dict[str, float]:
    """Training metrics as logged with a checkpoint: at most 50 names of at most 100
    characters, each with a finite number (``{"loss": 0.31, "accuracy": 0.92, "epoch": 3}``)."""
    if metrics is None:
        return {}
    if not isinstance(metrics, dict):
        raise InputError("metrics must be an object of names and numbers")
    if len(metrics) > MAX_METRICS:
        raise InputError(f"a checkpoint has at most {MAX_METRICS} metrics")
    checked = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
            raise InputError("a metric's name has 1 to 100 characters")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"metric {name!r} must be a number")
        if not math.isfinite(value):
            raise InputError(f"metric {name!r} must be a finite number")
        checked[name.strip()] = float(value)
    return checked
