"""Model stitching at feature maps: the cost of the 1×1 convolution's fit (issue 18).

:func:`analysis.stitching.fit_position_map` fits one affine map of the channels, shared by every
position, over all n·H·W positions of the training samples, accumulating the R factor of the
centred [X | Y] block by block so that the rows are never held at once. It is timed against
the same least squares on all rows at once (:func:`analysis.stitching.fit_linear_map` on
:func:`analysis.stitching.positions` of both maps: one SVD), with the peak memory each traces
and the largest difference between the two maps' weights.

The maps are random: n samples of C_A channels over an H × W grid, and a linear image of them
in C_B channels plus noise. Run: ``make benchmark`` (or ``python -m
tests.benchmarks.bench_stitching``; ``--quick`` for a smoke run). Prints figures; asserts
nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from analysis.stitching import fit_linear_map, fit_position_map, positions

T = TypeVar("T")


def measured(action: Callable[[], T]) -> tuple[T, float, float]:
    """``action()``, its seconds and its traced peak in MiB."""
    tracemalloc.start()
    start = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    n, channels, grid = (30, 16, 16) if args.quick else (300, 64, 32)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, channels, grid, grid)).astype(np.float32)
    mixing = rng.standard_normal((channels, channels)).astype(np.float32)
    y = np.einsum("nchw,cd->ndhw", x, mixing) + rng.standard_normal(x.shape).astype(np.float32)
    data_mib = (x.nbytes + y.nbytes) / 2**20
    print(
        f"1×1 convolution fit: {n:,} samples of {channels} → {channels} channels on a "
        f"{grid} × {grid} grid ({n * grid * grid:,} positions; {data_mib:,.0f} MiB of float32 "
        f"maps); load average before {os.getloadavg()[0]:.1f}"
    )
    blocked, blocked_s, blocked_peak = measured(lambda: fit_position_map(x, y))
    whole, whole_s, whole_peak = measured(lambda: fit_linear_map(positions(x), positions(y)))
    difference = float(np.abs(blocked.weight - whole.weight).max())
    print(
        f"  blocked QR (ours)      {blocked_s:6.1f} s, traced peak {blocked_peak:6.0f} MiB\n"
        f"  SVD of all rows        {whole_s:6.1f} s, traced peak {whole_peak:6.0f} MiB\n"
        f"  blocked / all rows: time {blocked_s / whole_s:.2f}, memory "
        f"{blocked_peak / whole_peak:.2f}; largest weight difference {difference:.1e}"
    )


if __name__ == "__main__":
    main()
