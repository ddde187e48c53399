"""RSA above the exact limit (issue 19, part 7): Spearman over a sample of pairs of samples,
its time, peak memory and sampling spread, beside the exact all-pairs computation where that
fits; Pearson RSA, exact at any n, streamed in row blocks above the dense limit, beside plain
numpy where that fits.

Spearman: for each case, on two seeded correlated layers (n × d, float32 as stored activations
are), it prints the time to prepare both layers and score them (the value only), the peak of
traced memory during that (numpy's buffers included), the value, and for the sampled form the
sampling sd it states. At n = 10,000 both forms run, so the sampled value's distance from the
exact one can be read against its stated sd; at n = 50,000 the exact form would need 10 GB of
ranks per layer and is not run. One permutation of the baseline at n = 50,000 is timed as well
(the permuted layer is prepared afresh on the same pairs).

Pearson (correlation and Euclidean distance, d = 64 and 384): at n = 5,000 plain numpy (both
n × n RDMs from one matrix product each, their upper triangles, ``np.corrcoef``), ours dense
(the prepared RDMs' dot product) and ours streamed (forced) side by side, with the largest
difference between the three values; at n = 50,000 ours streamed, where plain numpy would hold
two 20 GB matrices and is not run.

Run: ``python -m tests.benchmarks.bench_rsa`` (``--quick`` for a smoke run at small n;
``--only spearman`` or ``--only pearson`` for one part). Prints figures; asserts nothing about
speed.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from analysis.measures.placement import torch_device
from analysis.measures.rsa import RSA, EuclideanPearsonRSA, PearsonRSA

MIB = 1 << 20


def layers(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = x @ rng.standard_normal((d, d)) / np.sqrt(d) + 1.5 * rng.standard_normal((n, d))
    return x.astype(np.float32), y.astype(np.float32)


def run(measure: RSA, x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """(seconds, peak MiB, value, stated sampling sd) of prepare both + score."""
    tracemalloc.start()
    started = time.perf_counter()
    a, b = measure.prepare(x, "x"), measure.prepare(y, "y")
    value = measure.score(a, b)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / MIB
    tracemalloc.stop()
    return seconds, peak, value, measure.sampling_sd(a, b)


def plain_numpy(x: np.ndarray, y: np.ndarray, metric: str) -> float:
    """Pearson RSA the plain way: each n × n RDM from one matrix product (float64), its upper
    triangle (k = 1), ``np.corrcoef``."""

    def upper_triangle(z: np.ndarray) -> np.ndarray:
        z = z.astype(np.float64)
        if metric == "correlation":
            z = z - z.mean(axis=1, keepdims=True)
            z /= np.linalg.norm(z, axis=1, keepdims=True)
            rdm = 1.0 - z @ z.T
        else:
            squares = np.einsum("ij,ij->i", z, z)
            rdm = np.sqrt(np.maximum(squares[:, None] + squares[None, :] - 2.0 * z @ z.T, 0.0))
        return rdm[np.triu_indices(len(z), 1)]

    return float(np.corrcoef(upper_triangle(x), upper_triangle(y))[0, 1])


def timed(compute: Callable[..., float], *args: Any) -> tuple[float, float, float]:
    """(seconds, peak traced MiB, value) of ``compute(*args)``."""
    tracemalloc.start()
    started = time.perf_counter()
    value = compute(*args)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / MIB
    tracemalloc.stop()
    return seconds, peak, value


def pearson(small: int, large: int) -> None:
    torch_device(None)  # imports torch (to look for a GPU) before anything is timed
    print(
        f"# RSA (Pearson): plain numpy and ours at n = {small:,}, ours streamed at n = "
        f"{large:,}; {os.cpu_count()} cores, other work on the machine slows every figure; "
        "peak MiB: traced numpy memory, the float64 copies of both layers included"
    )
    print(f"{'n':>7} {'d':>4} {'RDM':<12} {'form':<30} {'seconds':>8} {'peak MiB':>9} {'value':>8}")
    for measure in (PearsonRSA, EuclideanPearsonRSA):
        metric = measure.rdm_metric
        for d in (64, 384):
            x, y = layers(small, d)
            forced = measure(max_samples=small - 1)
            rows = [
                ("plain numpy", timed(plain_numpy, x, y, metric)),
                ("ours, dense", timed(score, measure(), x, y)),
                (f"ours, streamed ({forced.block_rows(small)} rows)", timed(score, forced, x, y)),
            ]
            for form, (seconds, mib, value) in rows:
                print(
                    f"{small:>7,} {d:>4} {metric:<12} {form:<30} {seconds:>8.1f} {mib:>9.0f} "
                    f"{value:>8.4f}"
                )
            values = [value for _, (_, _, value) in rows]
            print(f"{'':>26}largest difference between the three values: {np.ptp(values):.1e}")
            x, y = layers(large, d)
            streamed = measure()
            seconds, mib, value = timed(score, streamed, x, y)
            form = f"ours, streamed ({streamed.block_rows(large)} rows)"
            print(
                f"{large:>7,} {d:>4} {metric:<12} {form:<30} {seconds:>8.1f} {mib:>9.0f} "
                f"{value:>8.4f}",
                flush=True,
            )
    entries = large * (large - 1) // 2
    print(
        f"at n = {large:,}: plain numpy would hold two {large:,} × {large:,} float64 RDMs "
        f"({2 * large**2 * 8 / 2**30:.0f} GiB, not run); ours dense, {entries:,} pairs "
        f"({entries * 8 / 2**30:.1f} GiB per layer)"
    )


def score(measure: PearsonRSA, x: np.ndarray, y: np.ndarray) -> float:
    return measure.score(measure.prepare(x, "x"), measure.prepare(y, "y"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run at small n")
    parser.add_argument("--only", choices=["spearman", "pearson"], help="run one part")
    args = parser.parse_args()
    if args.only != "pearson":
        spearman(args.quick)
    if args.only != "spearman":
        pearson(*((1_000, 25_000) if args.quick else (5_000, 50_000)))


def spearman(quick: bool) -> None:
    small, large, d, pairs = (2_000, 5_000, 64, 200_000) if quick else (10_000, 50_000, 256, None)
    sampled = RSA(max_samples=small - 1) if pairs is None else RSA(small - 1, pairs)
    print(
        f"# RSA (correlation distance, Spearman) above the exact limit; {os.cpu_count()} cores, "
        "other work on the machine slows every figure"
    )
    print(f"{'n':>7} {'d':>5}  {'form':<28} {'seconds':>8} {'peak MiB':>9} {'value':>8} {'sd':>8}")
    x, y = layers(small, d)
    exact_s, exact_mib, exact_value, _ = run(RSA(), x, y)
    print(
        f"{small:>7,} {d:>5}  {'exact, all pairs':<28} {exact_s:>8.1f} {exact_mib:>9.0f} "
        f"{exact_value:>8.4f}"
    )
    s, mib, value, sd = run(sampled, x, y)
    label = f"{sampled.sampled_pairs:,} sampled pairs"
    print(
        f"{small:>7,} {d:>5}  {label:<28} {s:>8.1f} {mib:>9.0f} {value:>8.4f} {sd:>8.1e}"
        f"   |sampled − exact| = {abs(value - exact_value):.1e} = "
        f"{abs(value - exact_value) / sd:.1f} sd"
    )
    x, y = layers(large, d)
    s, mib, value, sd = run(sampled, x, y)
    print(f"{large:>7,} {d:>5}  {label:<28} {s:>8.1f} {mib:>9.0f} {value:>8.4f} {sd:>8.1e}")
    a = sampled.prepare(x, "x")
    started = time.perf_counter()
    sampled.score(
        a, sampled.permute(sampled.prepare(y, "y"), np.random.default_rng(0).permutation(large))
    )
    print(
        f"{large:>7,} {d:>5}  {'one baseline permutation':<28} "
        f"{time.perf_counter() - started:>8.1f}"
    )
    entries = large * (large - 1) // 2
    print(
        f"exact at n = {large:,}: {entries:,} dissimilarities, {entries * 8 / 2**30:.1f} GiB of "
        "ranks per layer (not run)"
    )


if __name__ == "__main__":
    main()
