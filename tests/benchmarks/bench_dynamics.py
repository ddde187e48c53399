"""The incremental cost of a series: one new checkpoint in a series of 20 (every layer, one
measure, and the statistics of each step) against computing the whole series again, on the
same layers in the same process.

Run: ``make benchmark`` (or ``python -m tests.benchmarks.bench_dynamics``; ``--quick`` for a
smoke run). Prints figures and ratios; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from analysis.dynamics.series import series_matrix, step_statistics
from analysis.measures.registry import MEASURES


def drifting(k: int, n: int, widths: list[int], seed: int = 0) -> list[list[np.ndarray]]:
    """``k`` steps of layers of the given widths, each step a small move from the last."""
    rng = np.random.default_rng(seed)
    layers = []
    for d in widths:
        x = rng.normal(size=(n, d)).astype(np.float32)
        steps = [x]
        for _ in range(k - 1):
            steps.append(steps[-1] + 0.2 * rng.normal(size=(n, d)).astype(np.float32))
        layers.append(steps)
    return layers


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def bench(k: int, n: int, widths: list[int], measure_id: str) -> None:
    measure = MEASURES[measure_id]
    layers = drifting(k, n, widths)
    labels = np.arange(n) % 10
    preparations: list[dict] = [{} for _ in layers]
    known = [
        series_matrix(measure, s[:-1], prepared=p)
        for s, p in zip(layers, preparations, strict=True)
    ]
    kept = [{i: measure.kept(p) for i, p in prepared.items()} for prepared in preparations]
    keeps = all(v is not None for k in kept for v in k.values())

    def restored_cells() -> None:
        for steps, cells, stored in zip(layers, known, kept, strict=True):
            prepared = {i: measure.restored(steps[i], v) for i, v in stored.items()}
            series_matrix(measure, steps, cells, prepared=prepared)

    def statistics(steps: list[np.ndarray]) -> None:
        for x in steps:
            step_statistics(x, labels, {})

    cells_all = timed(lambda: [series_matrix(measure, steps) for steps in layers])
    cells_new = timed(
        lambda: [series_matrix(measure, s, c) for s, c in zip(layers, known, strict=True)]
    )
    cells_kept = timed(restored_cells) if keeps else None
    stats_all = timed(lambda: [statistics(steps) for steps in layers])
    stats_new = timed(lambda: [statistics(steps[-1:]) for steps in layers])
    kept_line = (
        f"  the new cells with the earlier steps' preparations restored from what the measure "
        f"keeps (what a run does): {cells_kept:.2f} s ({cells_all / cells_kept:.1f}×)"
        if cells_kept is not None
        else f"  ({measure_id} keeps nothing of a prepared layer: preparing it costs little)"
    )
    grown = (cells_new if cells_kept is None else cells_kept) + stats_new
    print(
        f"{measure_id}, {len(widths)} layers (d = {', '.join(map(str, widths))}), n = {n}, "
        f"step {k} added to a series of {k - 1}:\n"
        f"  cells: all {k * (k + 1) // 2} per layer {cells_all:.2f} s; the {k} new ones, every "
        f"step prepared again, {cells_new:.2f} s ({cells_all / cells_new:.1f}×)\n"
        f"{kept_line}\n"
        f"  statistics: all {k} steps {stats_all:.2f} s, the new step {stats_new:.2f} s "
        f"({stats_all / stats_new:.1f}×)\n"
        f"  in all: {cells_all + stats_all:.2f} s against {grown:.2f} s "
        f"({(cells_all + stats_all) / grown:.1f}× less time)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    if args.quick:
        bench(5, 300, [16, 32], "cka/linear")
        return
    for measure_id in ("cka/linear", "knn/jaccard"):
        bench(20, 1797, [64, 32, 10], measure_id)


if __name__ == "__main__":
    main()
