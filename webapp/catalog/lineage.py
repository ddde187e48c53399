"""A checkpoint's lineage: the seed group of its recipe, its training step and its parent
checkpoint, set at upload (the CLI) or later on its page."""

from __future__ import annotations

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
