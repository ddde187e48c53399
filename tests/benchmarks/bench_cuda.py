"""The CUDA path, checked and timed on a machine with a GPU (exits early without one).

Run as ``python -m tests.benchmarks.bench_cuda``. It needs only torch, numpy and the analysis
library (no Django), so it runs on a bare GPU machine:

- linear and debiased CKA on CUDA equal the CPU values (and the exact baseline) to 1e-10;
- every measure that is matrix algebra (CKA, the CCA family, Procrustes, RSA, kNN, ridge) gives
  on CUDA the CPU's values, permutation baselines and bootstrap intervals to 1e-12 (float64),
  kNN the same neighbour lists; and the seconds of one pair on each, with the device's share;
- the chunked, overlapped host-to-device copy (analysis.measures.transfer.to_device) against a
  plain ``.to("cuda")`` of the same float32 activations;
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
from analysis.measures.knn import knn_indices
from analysis.measures.registry import MEASURES
from analysis.measures.transfer import to_device
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


GPU_MEASURES = [
    "cka/linear",
    "cka/linear-debiased",
    "cca/mean",
    "cca/svcca",
    "cca/pwcca",
    "procrustes/angular",
    "procrustes/euclidean",
    "rsa/correlation-spearman",
    "rsa/correlation-pearson",
    "rsa/euclidean-pearson",
    "knn/mutual",
    "knn/jaccard",
    "regression/ridge-r2",
]
TOLERANCE = 1e-12


def check_every_measure(rng: np.random.Generator) -> None:
    """Each GPU measure through the whole engine on the CPU and on CUDA: values, baselines
    and intervals to TOLERANCE. Layers of 1,500 samples, one narrower than the other."""
    n = 1500
    x = rng.standard_normal((n, 120)).astype(np.float32) + 3
    y = (x[:, :80] @ rng.standard_normal((80, 90)) + rng.standard_normal((n, 90))).astype(
        np.float32
    )
    w = (y + 2 * rng.standard_normal(y.shape)).astype(np.float32)
    layers_a, layers_b = [("x", x), ("y", y)], [("w", w), ("x2", x**2)]
    failures = []
    for measure_id in GPU_MEASURES:
        measure = MEASURES[measure_id]
        runs = {}
        for device in ("cpu", "cuda"):
            start = time.perf_counter()
            runs[device] = compare_layers(measure.on(device), layers_a, layers_b, 3, 2, seed=2)
            torch.cuda.synchronize()
            runs[device + " s"] = time.perf_counter() - start
        worst = 0.0
        for key, cpu in runs["cpu"].items():
            gpu = runs["cuda"][key]
            for field in ("value", "baseline", "baseline_std", "ci_low", "ci_high"):
                a, b = getattr(cpu, field), getattr(gpu, field)
                if (a is None) != (b is None):
                    worst = float("inf")
                elif a is not None:
                    worst = max(worst, abs(a - b))
        print(
            f"{measure_id:<26} cpu {runs['cpu s']:7.2f} s  cuda {runs['cuda s']:7.2f} s  "
            f"max |cpu − cuda| {worst:.1e}  estimator on cuda: "
            f"{runs['cuda'][('x', 'w')].estimator!r}"
        )
        if not worst <= TOLERANCE:
            failures.append(f"{measure_id}: {worst:.1e}")
    for metric in ("cosine", "euclidean"):
        same = np.array_equal(knn_indices(x, 10, metric), knn_indices(x, 10, metric, device="cuda"))
        print(f"kNN neighbour lists, {metric}: {'identical' if same else 'DIFFERENT'}")
        if not same:
            failures.append(f"knn lists {metric}")
    assert not failures, failures


def time_pairs(rng: np.random.Generator, rate: float) -> None:
    """One pair of each GPU measure at n = 20,000, d = 1,024 (float32 in): prepare both layers
    and score, on the CPU and on CUDA, with the device's float64 matmul bound for XᵀY."""
    n, d = 20_000, 1024
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = (x @ (rng.standard_normal((d, d)) / np.sqrt(d)) + rng.standard_normal((n, d))).astype(
        np.float32
    )
    print(
        f"\none pair, n={n:,}, d={d}: seconds (prepare both + score); XᵀY alone at the "
        f"device's rate {2 * n * d * d / rate:.3f} s"
    )
    for measure_id in GPU_MEASURES:
        measure = MEASURES[measure_id]
        row = []
        for device in ("cpu", "cuda"):
            on = measure.on(device)
            start = time.perf_counter()
            value = on.score(on.prepare(x, "x"), on.prepare(y, "y"))
            torch.cuda.synchronize()
            row.append((time.perf_counter() - start, value))
        (cpu_s, cpu_v), (gpu_s, gpu_v) = row
        print(
            f"{measure_id:<26} cpu {cpu_s:8.3f} s  cuda {gpu_s:8.3f} s  "
            f"speed-up {cpu_s / gpu_s:6.1f}×  |diff| {abs(cpu_v - gpu_v):.1e}"
        )


def time_transfer(rng: np.random.Generator) -> None:
    """50,000 × 4,096 float32 (800 MiB) to float64 on the GPU: chunked through pinned buffers
    and overlapped with the conversion, against a plain copy then a conversion."""
    x = rng.standard_normal((50_000, 4096), dtype=np.float32)
    for label, move in (
        ("plain .to(cuda) then .double()", lambda: torch.from_numpy(x).to("cuda").double()),
        ("to_device (chunked, overlapped)", lambda: to_device(x, "cuda", torch.float64)),
    ):
        best = float("inf")
        for _ in range(3):
            torch.cuda.synchronize()
            start = time.perf_counter()
            moved = move()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        assert torch.equal(moved.cpu(), torch.from_numpy(x).double())
        print(f"{label:<34} {best:.3f} s ({x.nbytes / best / 2**30:.1f} GiB/s of float32)")
        del moved


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
    check_every_measure(rng)
    check_extraction(rng)
    time_transfer(rng)
    time_pairs(rng, rate)
    time_cka(rng, rate)


if __name__ == "__main__":
    main()
