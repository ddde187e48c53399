"""A series is the checkpoints of one training run, oldest first. Per layer, this module
computes what the dynamics views draw:

- the **step × step matrix** of any registered measure (:mod:`analysis.measures.registry`):
  cell (i, j) is ``measure.score(step i, step j)``, exactly the value a comparison of the two
  checkpoints reports (no permutation baseline or interval: those belong to one pair's
  comparison). A symmetric measure computes i ≤ j and mirrors; others every cell;
- the **similarity of every step to the final checkpoint**: the last column of that matrix;
- the **statistics of each step's layer** over steps: every number of
  :class:`analysis.explorer.geometry.Geometry` (effective rank, intrinsic dimension, NC1,
  linear-probe accuracy of the label …) and the linear-probe accuracy of each other label
  column ("when does it become decodable"), each with its chance level.

Incremental: the caller passes the cells it already has (from a run on a shorter series) and
gets the rest computed; each step's layer is prepared at most once, and only when a missing cell
needs it, so one new checkpoint of a series of k costs k (symmetric) or 2k − 1 new cells. Where
a measure keeps the costly part of a prepared layer (:meth:`Measure.kept`: the kNN graph), the
caller may store it and pass it back restored, so that the old steps are not prepared again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.errors import InputError
from analysis.explorer.geometry import STATISTICS, geometry, linear_probe_accuracy
from analysis.measures.engine import Measure

Cell = tuple[int, int]
Outcome = float | str
"""A cell's value, or the reason the measure refused the pair (a dead layer for CKA …)."""

MAX_CLASSES = 100
"""A label column with more distinct values than this is not probed (an id, a continuous
value): a linear probe's accuracy over hundreds of classes says little."""


def steps_needed(cells: Sequence[Cell]) -> set[int]:
    """The steps whose prepared layer computing ``cells`` takes."""
    return {i for cell in cells for i in cell}


def missing_cells(k: int, symmetric: bool, known: Mapping[Cell, Outcome]) -> list[Cell]:
    """The cells of a k × k matrix still to compute: for a symmetric measure, (i, j) with
    i ≤ j whose value is known neither at (i, j) nor at (j, i)."""
    return [
        (i, j)
        for i in range(k)
        for j in range(i if symmetric else 0, k)
        if (i, j) not in known and not (symmetric and (j, i) in known)
    ]


def series_matrix(
    measure: Measure,
    layers: Sequence[np.ndarray],
    known: Mapping[Cell, Outcome] | None = None,
    progress: Callable[[float], None] | None = None,
    prepared: dict[int, Any] | None = None,
) -> dict[Cell, Outcome]:
    """Every cell (i, j) of the step × step matrix of ``layers`` (one n × d array per step,
    oldest first, the same samples in the same order): the ``known`` ones as given, the others
    computed. A layer the measure refuses makes every cell of its row and column a refusal.
    ``prepared``: layers already prepared, by step (restored from what an earlier run kept);
    the ones prepared here are added to it."""
    known = dict(known or {})
    k = len(layers)
    if k == 0:
        raise InputError("a series needs at least one checkpoint")
    if len({len(x) for x in layers}) != 1:
        raise InputError("the checkpoints' activations have different numbers of samples")
    todo = missing_cells(k, measure.symmetric, known)
    prepared = {} if prepared is None else prepared
    refused: dict[int, str] = {}

    def prepare(i: int) -> Any:
        if i not in prepared and i not in refused:
            try:
                prepared[i] = measure.prepare(layers[i], f"step {i + 1}")
            except InputError as err:
                refused[i] = str(err)
        return prepared.get(i)

    cells = dict(known)
    for done, (i, j) in enumerate(todo, start=1):
        a, b = prepare(i), prepare(j)
        if a is None or b is None:
            cells[(i, j)] = refused.get(i) or refused[j]
        else:
            try:
                cells[(i, j)] = float(measure.score(a, b))
            except InputError as err:
                cells[(i, j)] = str(err)
        if progress:
            progress(done / len(todo))
    if measure.symmetric:
        for (i, j), outcome in list(cells.items()):
            cells.setdefault((j, i), outcome)
    return cells


def matrix_of(cells: Mapping[Cell, Outcome], k: int) -> list[list[float | None]]:
    """The k × k values of ``cells`` (None where refused)."""
    return [[_value(cells[(i, j)]) for j in range(k)] for i in range(k)]


def _value(outcome: Outcome) -> float | None:
    return outcome if isinstance(outcome, float) else None


def is_probed(values: np.ndarray) -> bool:
    """Whether a label column is probed: 2 to :data:`MAX_CLASSES` distinct values."""
    return 2 <= len(np.unique(values)) <= MAX_CLASSES


def chance_level(labels: np.ndarray) -> float:
    """What always answering the most frequent class scores: the chance level of an
    accuracy on these labels."""
    _, counts = np.unique(labels, return_counts=True)
    return float(counts.max() / counts.sum())


@dataclass
class StepStatistics:
    """One step's layer: every geometry statistic (``None`` where it does not apply) and the
    linear-probe accuracy of each probed label column."""

    statistics: dict[str, float | None]
    probes: dict[str, float]

    def to_json(self) -> dict:
        return {"statistics": self.statistics, "probes": self.probes}


def step_statistics(
    x: np.ndarray, labels: np.ndarray | None, columns: Mapping[str, np.ndarray]
) -> StepStatistics:
    """The statistics of one step's layer ``x``: its geometry with ``labels`` (the dataset's
    label, or None), and the probe accuracy of each of ``columns`` (other label columns)."""
    g = geometry(x, labels).to_json()
    probes = {name: linear_probe_accuracy(x, values) for name, values in columns.items()}
    return StepStatistics({name: g[name] for name in STATISTICS}, probes)
