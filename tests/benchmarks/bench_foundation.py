"""Foundation benchmarks: layer × layer CKA against repsim, and extraction throughput.

Run: ``make benchmark`` (or ``python -m tests.benchmarks.bench_foundation``). Prints figures
and ratios; asserts nothing about speed.
"""

from __future__ import annotations

import os

# repsim's OpenMP threads otherwise keep spinning after each call and slow what runs next.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import time  # noqa: E402

import numpy as np  # noqa: E402
import repsim  # noqa: E402
import torch  # noqa: E402

from analysis.measures.cka import cka_matrix
from analysis.models.architectures import mlp, small_cnn
from analysis.models.extraction import extract_activations
from demo.vision import load_digits_arrays, make_shapes


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_cka_matrix(n: int, dims: list[int], peer_pairs: int | None = None) -> None:
    """Our whole matrix vs repsim pair by pair; repsim is slow at large n, so ``peer_pairs``
    times only that many pairs and scales its time to the full matrix (said in the output)."""
    rng = np.random.default_rng(0)
    layers = [(f"l{i}", rng.normal(size=(n, d)).astype(np.float32)) for i, d in enumerate(dims)]
    ours_s, ours = timed(lambda: cka_matrix(layers, layers, n_permutations=10))

    pairs = [(a, x, b, y) for a, x in layers for b, y in layers][:peer_pairs]

    def peer():
        return {
            (a, b): repsim.cka([x, y], kernel_type="linear", estimator="gretton")[0, 1]
            for a, x, b, y in pairs
        }

    peer_s, theirs = timed(peer, repeat=1)
    total = len(dims) ** 2
    peer_full = peer_s * total / len(pairs)
    worst = max(abs(ours[k].value - theirs[k]) for k in theirs)
    scaled = "" if len(pairs) == total else f" (timed {len(pairs)} pairs, scaled to {total})"
    print(
        f"CKA {len(dims)}×{len(dims)} layers, n={n}, d={dims}: RepLens {ours_s:.3f} s "
        f"(values + 10-permutation baselines) vs repsim {peer_full:.1f} s{scaled}: "
        f"{peer_full / ours_s:.0f}× faster; max |diff| {worst:.1e} over {len(pairs)} pairs"
    )


def bench_extraction() -> None:
    torch.manual_seed(0)
    digits = load_digits_arrays()["x"]
    model = torch.jit.script(mlp(64, [128, 64, 32], 10).eval())
    layers = ["flatten", "block1", "block2", "block3", "head"]
    seconds, _ = timed(lambda: extract_activations(model, digits, layers, device="cpu"))
    rate = len(digits) / seconds
    print(f"extraction MLP on digits (n={len(digits)}, 5 layers): {rate:,.0f} samples/s")
    shapes = make_shapes(n=3000)["x"]
    cnn = torch.jit.script(small_cnn(1, [16, 32, 64], 3).eval())
    layers = ["conv1", "conv2", "conv3", "pool", "head"]
    seconds, _ = timed(lambda: extract_activations(cnn, shapes, layers, device="cpu"))
    with torch.inference_mode():
        bare, _ = timed(
            lambda: [cnn(torch.from_numpy(shapes[i : i + 256])) for i in range(0, 3000, 256)]
        )
    print(
        f"extraction CNN on shapes 32×32 (n=3000, 5 layers, mean pooling): "
        f"{3000 / seconds:,.0f} samples/s; bare forward {3000 / bare:,.0f} samples/s "
        f"(overhead ×{seconds / bare:.2f})"
    )


if __name__ == "__main__":
    print(f"torch threads: {torch.get_num_threads()}")
    bench_cka_matrix(500, [64, 128, 64, 32, 10])
    bench_cka_matrix(1797, [64, 128, 64, 32, 10], peer_pairs=1)
    bench_cka_matrix(4000, [512, 256, 128, 64], peer_pairs=1)
    bench_extraction()
