"""The workspace's lists of datasets and checkpoints: found by words of their name or
description, filtered by what they are (a dataset's modality; a checkpoint's format and seed
group), newest first."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from webapp.catalog.models import Checkpoint, Dataset, Workspace


def _with_words(rows: QuerySet, words: str) -> QuerySet:
    """The rows whose name or description holds every word of ``words`` (any case)."""
    for word in words.split():
        rows = rows.filter(Q(name__icontains=word) | Q(description__icontains=word))
    return rows


def datasets(workspace: Workspace, words: str = "", modality: str = "") -> QuerySet[Dataset]:
    """The workspace's datasets with every one of ``words`` and of ``modality`` ("": any)."""
    rows = workspace.datasets.select_related("source")
    if modality:
        rows = rows.filter(modality=modality)
    return _with_words(rows, words)


def checkpoints(
    workspace: Workspace, words: str = "", format: str = "", seed_group: str = ""
) -> QuerySet[Checkpoint]:
    """The workspace's checkpoints with every one of ``words``, of ``format`` and in
    ``seed_group`` ("": any)."""
    rows = workspace.checkpoints.select_related("blob", "parent", "dataset")
    if format:
        rows = rows.filter(format=format)
    if seed_group:
        rows = rows.filter(seed_group=seed_group)
    return _with_words(rows, words)


def modalities(workspace: Workspace) -> list[str]:
    """The modalities the workspace's datasets have, in order."""
    values = workspace.datasets.order_by("modality").values_list("modality", flat=True)
    return list(values.distinct())


def seed_groups(workspace: Workspace) -> list[str]:
    """The seed groups the workspace's checkpoints are in, in order."""
    values = workspace.checkpoints.exclude(seed_group="").order_by("seed_group")
    return list(values.values_list("seed_group", flat=True).distinct())
