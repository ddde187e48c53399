"""Probe throughput: transformed samples per second through a whole probe run (transform,
forward pass, every statistic of every layer) against a bare forward pass of the same model on
the same data, and how the time splits between them.

Run: ``make benchmark`` (or ``python -m tests.benchmarks.bench_probes``; ``--quick`` for a
smoke run). Prints figures and ratios; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from analysis.models.architectures import small_cnn
from analysis.models.extraction import extract_activations
from analysis.probes.engine import run_probe
from analysis.probes.families import get_family
from demo.vision import make_shapes

LAYERS = ["conv1", "conv2", "conv3", "pool", "head"]


def bare_forward(model, x: np.ndarray, batch_size: int = 256) -> float:
    """Seconds for one inference pass over ``x``, nothing captured."""
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            model(torch.from_numpy(x[i : i + batch_size]))
    return time.perf_counter() - start


def bench(n: int, families: dict[str, list[float]]) -> None:
    torch.manual_seed(0)
    model = small_cnn(1, [16, 32, 64], 3).eval()
    x = make_shapes(n, seed=0)["x"]
    stored = extract_activations(model, x, LAYERS, device="cpu")
    forward_s = min(bare_forward(model, x) for _ in range(3))
    passes = sum(len(m) + (2 if get_family(k).continuous else 0) for k, m in families.items())
    start = time.perf_counter()
    run_probe(model, x, LAYERS, families, stored, device="cpu")
    probe_s = time.perf_counter() - start
    transformed = n * sum(len(m) for m in families.values())
    print(
        f"probe of {len(LAYERS)} layers, n={n} 32×32 images, {', '.join(families)} "
        f"({transformed:,} transformed samples, {passes + 1} passes over the data): "
        f"{probe_s:.1f} s = {transformed / probe_s:,.0f} transformed samples/s; "
        f"bare forward pass {n / forward_s:,.0f} samples/s; "
        f"the probe takes {probe_s / (forward_s * (passes + 1)):.1f}× the time of its forward "
        "passes alone (the rest: transforms, statistics, structured maps)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.quick:
        bench(300, {"image/rotation": [0, 90], "image/noise": [0, 0.1]})
        return
    grids = {
        "image/rotation": [0, 15, 30, 45, 90, 180],
        "image/translate-circular": [0, 1, 2, 4, 8],
        "image/noise": [0, 0.05, 0.1, 0.2, 0.4],
    }
    for n in (3000, 10000):
        bench(n, grids)


if __name__ == "__main__":
    main()
