"""RSA above the exact limit (issue 19, part 7): Spearman over a sample of pairs of samples,
its time, peak memory and sampling spread, beside the exact all-pairs computation where that
fits.

For each case, on two seeded correlated layers (n × d, float32 as stored activations are), it
prints the time to prepare both layers and score them (the value only), the peak of traced
memory during that (numpy's buffers included), the value, and for the sampled form the sampling
sd it states. At n = 10,000 both forms run, so the sampled value's distance from the exact one
can be read against its stated sd; at n = 50,000 the exact form would need 10 GB of ranks per
layer and is not run. One permutation of the baseline at n = 50,000 is timed as well (the
permuted layer is prepared afresh on the same pairs).

Run: ``make benchmark`` (or ``python -m tests.benchmarks.bench_rsa``; ``--quick`` for a smoke
run). Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np

from analysis.measures.rsa import RSA

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run at small n")
    args = parser.parse_args()
    small, large, d, pairs = (
        (2_000, 5_000, 64, 200_000) if args.quick else (10_000, 50_000, 256, None)
    )
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
