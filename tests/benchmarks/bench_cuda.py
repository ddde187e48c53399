"""The CUDA path, checked and timed on a machine with a GPU (exits early without one).

Run as ``python -m tests.benchmarks.bench_cuda``. It needs only torch, numpy and the analysis
library (no Django), so it runs on a bare GPU machine:

- linear and debiased CKA on CUDA equal the CPU values (and the exact baseline) to 1e-10;
- extraction of every layer of a small CNN on CUDA equals the CPU activations to 1e-5;
- seconds for one linear-CKA pair at n = 50,000, d = 4,096 (float64, streamed) and a
  12 × 12 layer matrix at n = 50,000, d = 1,024, against the device's float64 matmul rate.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from analysis.measures.cka import DebiasedCKA, LinearCKA
from analysis.measures.engine import compare_layers
from analysis.models.architectures import small_cnn
from analysis.models.extraction import extract_activations


def gemm_rate(device: torch.device, n: int = 8192) -> float:
    """float64 FLOP/s of an n × n × n matrix product (best of 5 after a warm-up)."""
    a = torch.randn(n, n, dtype=torch.float64, device=device)
    b = torch.randn(n, n, dtype=torch.float64, device=device)
    a @ b
    best = float("inf")
    for _ in range(5):
        torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def check_values(rng: np.random.Generator) -> None:
    x = rng.standard_normal((3000, 300)).astype(np.float32)
    y = (x[:, :200] @ rng.standard_normal((200, 250)) + rng.standard_normal((3000, 250))).astype(
        np.float32
    )
    for measure in (LinearCKA(), DebiasedCKA()):
        cpu = compare_layers(measure.on("cpu"), [("x", x)], [("y", y)], n_permutations=2)
        gpu = compare_layers(measure.on("cuda"), [("x", x)], [("y", y)], n_permutations=2)
        a, b = cpu[("x", "y")], gpu[("x", "y")]
        diff = max(abs(a.value - b.value), abs(a.baseline - b.baseline))
        print(f"{measure.id}: cpu {a.value:.12f} cuda {b.value:.12f} |diff| {diff:.1e}")
        print(f"  estimator on cuda: {b.estimator!r}")
        assert diff < 1e-10, diff


def check_extraction(rng: np.random.Generator) -> None:
    torch.manual_seed(0)
    model = small_cnn(1, (16, 32, 64), 10)
    images = rng.random((512, 1, 32, 32), dtype=np.float32)
    layers = ["conv1", "conv2", "conv3", "pool", "head"]
    cpu = extract_activations(model, images, layers, device="cpu")
    gpu = extract_activations(model, images, layers, device="cuda")
    worst = max(
        float(np.abs(cpu[k] - gpu[k]).max() / (np.abs(cpu[k]).max() + 1e-12)) for k in layers
    )
    print(f"extraction small-cnn, 5 layers, 512 images: max relative |cpu − cuda| {worst:.1e}")
    assert worst < 1e-5, worst


def time_cka(rng: np.random.Generator, rate: float) -> None:
    n, d = 50_000, 4096
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = x[:, ::-1] + rng.standard_normal((n, d), dtype=np.float32)
    measure = LinearCKA().on("cuda")
    start = time.perf_counter()
    result = compare_layers(measure, [("x", x)], [("y", y)])[("x", "y")]
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    flops = 2 * n * d * d * 3  # two self-products and the cross-product
    print(
        f"linear CKA pair n={n} d={d}: {seconds:.2f} s (value {result.value:.4f}, baseline "
        f"{result.baseline:.4f}); flops-bound {flops / rate:.2f} s → "
        f"ratio {seconds * rate / flops:.1f}"
    )
    start = time.perf_counter()
    a, b = measure.prepare(x), measure.prepare(y)
    torch.cuda.synchronize()
    prepared = time.perf_counter()
    measure.score(a, b)
    torch.cuda.synchronize()
    scored = time.perf_counter()
    copy = time.perf_counter()
    host = np.array(x)
    copied = time.perf_counter()
    torch.from_numpy(host).to("cuda")
    torch.cuda.synchronize()
    moved = time.perf_counter()
    print(
        f"  of which: prepare both {prepared - start:.2f} s (host copy of one layer "
        f"{copied - copy:.2f} s, its transfer {moved - copied:.2f} s), "
        f"score {scored - prepared:.2f} s"
    )
    d = 1024
    layers = [(f"L{i}", rng.standard_normal((n, d), dtype=np.float32)) for i in range(12)]
    start = time.perf_counter()
    compare_layers(measure, layers, layers)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    flops = 2 * n * d * d * (12 + 12 + 144)
    print(
        f"linear CKA 12×12 layers n={n} d={d}: {seconds:.2f} s; flops-bound "
        f"{flops / rate:.2f} s → ratio {seconds * rate / flops:.1f}"
    )


def main() -> None:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        sys.exit(0)
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    rate = gemm_rate(device)
    print(f"float64 matmul: {rate / 1e12:.1f} TFLOP/s")
    rng = np.random.default_rng(0)
    check_values(rng)
    check_extraction(rng)
    time_cka(rng, rate)


if __name__ == "__main__":
    main()
