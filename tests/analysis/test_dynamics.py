"""The series views' computations (analysis.dynamics.series): the step × step matrix equals
the measure on each pair, only missing cells are computed, refusals stay per cell, and the
statistics are the geometry's."""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest

from analysis.dynamics.series import (
    chance_level,
    is_probed,
    matrix_of,
    missing_cells,
    series_matrix,
    step_statistics,
)
from analysis.explorer.geometry import STATISTICS, Geometry, geometry, linear_probe_accuracy
from analysis.measures.registry import MEASURES


class Counting:
    """A measure wrapper that counts prepare and score calls."""

    def __init__(self, measure_id: str) -> None:
        self.inner = MEASURES[measure_id]
        self.symmetric = self.inner.symmetric
        self.prepared: list[str] = []
        self.scored = 0

    def prepare(self, x: np.ndarray, name: str = "activations") -> typing.Any:
        self.prepared.append(name)
        return self.inner.prepare(x, name)

    def score(self, a: typing.Any, b: typing.Any) -> float:
        self.scored += 1
        return self.inner.score(a, b)


def drifting_series(k: int = 5, n: int = 60, d: int = 8, seed: int = 0) -> list[np.ndarray]:
    """A layer that drifts step by step away from its start."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    steps = [x]
    for _ in range(k - 1):
        steps.append(steps[-1] + 0.6 * rng.normal(size=(n, d)))
    return steps


@pytest.mark.parametrize("measure_id", ["cka/linear", "regression/ridge-r2", "knn/jaccard"])
def test_every_cell_is_the_measure_on_that_pair(measure_id: str) -> None:
    layers = drifting_series()
    measure = MEASURES[measure_id]
    cells = series_matrix(measure, layers)
    for i, a in enumerate(layers):
        for j, b in enumerate(layers):
            expected = measure.score(measure.prepare(a), measure.prepare(b))
            assert cells[(i, j)] == pytest.approx(expected, abs=1e-12)


def test_a_drifting_layer_is_less_similar_to_the_final_step_the_earlier_it_is() -> None:
    matrix = matrix_of(series_matrix(MEASURES["cka/linear"], drifting_series(6)), 6)
    to_final = [row[-1] for row in matrix]
    assert to_final[-1] == pytest.approx(1.0)
    assert to_final == sorted(to_final)  # strictly growing towards the final step


def test_one_new_step_computes_only_its_cells_and_prepares_only_the_layers_they_need() -> None:
    layers = drifting_series(5)
    first = series_matrix(MEASURES["cka/linear"], layers[:4])
    counting = Counting("cka/linear")
    grown = series_matrix(counting, layers, first)  # type: ignore[arg-type]
    assert counting.scored == 5  # (0,4) … (4,4): symmetric
    assert len(counting.prepared) == 5  # the new step and each partner once
    assert grown == series_matrix(MEASURES["cka/linear"], layers)
    assert missing_cells(5, True, first) == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert len(missing_cells(5, False, {})) == 25


def test_known_cells_are_taken_as_given() -> None:
    layers = drifting_series(3)
    cells = series_matrix(MEASURES["cka/linear"], layers, {(0, 2): 0.123})
    assert cells[(0, 2)] == cells[(2, 0)] == 0.123


def test_a_refused_layer_refuses_its_row_and_column_only() -> None:
    layers = drifting_series(3)
    layers[1] = np.zeros_like(layers[1])  # a dead layer: CKA is undefined
    cells = series_matrix(MEASURES["cka/linear"], layers)
    assert isinstance(cells[(1, 2)], str) and isinstance(cells[(0, 1)], str)
    assert cells[(0, 2)] == pytest.approx(
        MEASURES["cka/linear"].score(
            MEASURES["cka/linear"].prepare(layers[0]), MEASURES["cka/linear"].prepare(layers[2])
        )
    )
    matrix = matrix_of(cells, 3)
    assert matrix[1] == [None, None, None]


def test_statistics_are_the_geometry_and_probes_of_each_column() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 20)
    colour = np.tile([0, 1], 30)
    x = rng.normal(size=(60, 6)) + labels[:, None] + 4.0 * colour[:, None] * np.eye(6)[0]
    stats = step_statistics(x, labels, {"colour": colour})
    g = geometry(x, labels)
    for name in STATISTICS:
        assert stats.statistics[name] == getattr(g, name)
    assert stats.probes["colour"] == linear_probe_accuracy(x, colour)
    assert stats.probes["colour"] > 0.9


def test_every_single_number_of_the_geometry_is_drawn_over_steps() -> None:
    """A statistic added to Geometry reaches the dynamics views once it has a definition."""
    hints = typing.get_type_hints(Geometry)
    numbers = {
        f.name
        for f in dataclasses.fields(Geometry)
        if hints[f.name] in (float, float | None) and f.name not in ("n", "d")
    }
    assert numbers == set(STATISTICS)


def test_chance_level_and_probed_columns() -> None:
    assert chance_level(np.array([0, 0, 0, 1])) == 0.75
    assert is_probed(np.array(["a", "b", "a"]))
    assert not is_probed(np.zeros(5))
    assert not is_probed(np.arange(500))


def test_a_kept_knn_graph_restores_the_prepared_layer_and_is_not_searched_again() -> None:
    layers = drifting_series(4)
    measure = MEASURES["knn/jaccard"]
    first: dict = {}
    known = series_matrix(measure, layers[:3], prepared=first)
    restored = {i: measure.restored(layers[i], measure.kept(p)) for i, p in first.items()}
    counting = Counting("knn/jaccard")
    grown = series_matrix(counting, layers, known, prepared=restored)  # type: ignore[arg-type]
    assert counting.prepared == ["step 4"]  # the three earlier steps came back restored
    assert grown == series_matrix(measure, layers)
    assert MEASURES["cka/linear"].kept(first[0]) is None  # CKA keeps nothing: cheap to prepare
