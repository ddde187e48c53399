"""Weight space: the cost of weight matching, and the barrier on the digits.

Run: ``python -m tests.benchmarks.bench_weights`` (1 to 3 minutes on 2 shared cores, mostly the
4 × 1,024 matching, each repeat 20 to 40 s there). Prints figures; asserts nothing about speed.

- Weight matching (Git Re-Basin algorithm 2, :func:`analysis.weights.matching.weight_matching`)
  of two randomly initialised MLPs 784 → 4 × 1,024 → 10 (4 permutations of 1,024 units), and of
  two randomly initialised demo CNNs (3×3 convs 16, 32, 64 → pool → head): seconds (best of
  ``--repeats``), L2 distance before and after, and the largest change in the outputs of B
  once permuted (it computes the same function).
- Two digits MLPs (64 → 128, 64, 32 → 10, as the demo's, seeds 0 and 1) trained for a few
  seconds on scikit-learn's ``load_digits`` (a stratified 75 / 25 split, ``random_state=0``);
  loss and accuracy on the test split at 11 values of λ along (1−λ)θ_A + λθ_B and along
  (1−λ)θ_A + λπ(θ_B) after weight matching, the barriers, the seconds the 11 evaluations take,
  and each layer's singular-vector alignment before and after matching, beside what unrelated
  weights score before matching (:func:`analysis.weights.chance.alignment_chance`) and after
  it (:func:`analysis.weights.unrelated.matched_chance`, with the seconds it takes) and the
  mean over 10 untrained pairs built alike, before and after matching. This part runs on one
  thread (the tensors are tiny).
- The built-in transformer (:func:`analysis.models.architectures.transformer`, pre-LN
  encoder blocks whose residual stream, heads, q/k and v coordinates and MLP units are
  permuted): weight matching of two randomly initialised 4-block transformers of width 256
  (8 heads of 32, MLP 1,024) on 8 tokens of 8 features; then two tiny digit transformers
  (each digit's 8 rows as 8 tokens, width 32, 4 heads of 8, MLP 64, 2 blocks) trained from
  seeds 0 and 1 on the same split, with the same barrier figures as the MLPs'.
- Hugging Face encoders (:func:`analysis.weights.bert.encoder_spec`): weight matching of two
  randomly initialised BERT-base-sized models (transformers' ``BertConfig()`` defaults: 12
  layers of width 768, 12 heads of 64, MLP 3,072; per-head q/k and v coordinates), seconds and
  L2 before and after (``--no-bert`` leaves it out: about two minutes on 2 shared cores).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.models.architectures import TransformerConfig, mlp, small_cnn, transformer
from analysis.weights.connectivity import ConnectivityCurve, classifier_evaluator, linear_path
from analysis.weights.matching import l2_distance, weight_matching
from analysis.weights.specs import apply_permutation, spec_for
from analysis.weights.spectra import layer_spectra
from analysis.weights.unrelated import matched_chance

T = TypeVar("T")


def best_of(repeats: int, fn: Callable[[], T]) -> tuple[float, T]:
    """The fastest of ``repeats`` calls in seconds, and the last call's result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def bench_matching(
    label: str, architecture: str, build: Callable[[], nn.Module], x: torch.Tensor, repeats: int
) -> None:
    torch.manual_seed(0)
    a = build()
    torch.manual_seed(1)
    b = build()
    state_a, state_b = state_of(a), state_of(b)
    spec = spec_for(architecture, state_a)
    seconds, perms = best_of(repeats, lambda: weight_matching(spec, state_a, state_b, seed=0))
    permuted = apply_permutation(spec, perms, state_b)
    b_permuted = build()
    b_permuted.load_state_dict(permuted)
    with torch.no_grad():
        change = float((b_permuted(x) - b(x)).abs().max())
    sizes = " + ".join(
        " × ".join(str(n) for n in spec.shape(p)) for p in spec.perm_to_axes
    )  # a per-head permutation: heads × coordinates
    print(f"weight matching, {label} ({sizes} units)")
    print(f"  seconds (best of {repeats}):  {seconds:.3f}")
    print(
        f"  L2 distance before / after:   {l2_distance(state_a, state_b):.4f} / "
        f"{l2_distance(state_a, permuted):.4f}"
    )
    print(f"  max |B(x) − π(B)(x)|:         {change:.2e}")


DIGIT_TRANSFORMER = TransformerConfig(
    n_tokens=8, token_features=8, width=32, n_heads=4, head_width=8, mlp_width=64, n_blocks=2,
    n_classes=10,
)  # fmt: skip


def train_digits_mlp(
    seed: int,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    build: Callable[[], nn.Module] = lambda: mlp(64, [128, 64, 32], 10),
) -> nn.Module:
    torch.manual_seed(seed)
    model = build()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=order).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def print_curve(label: str, curve: ConnectivityCurve, seconds: float) -> None:
    print(f"  {label}: {len(curve.lambdas)} λ evaluated in {seconds:.3f} s")
    print("    λ         " + " ".join(f"{v:6.2f}" for v in curve.lambdas))
    print("    loss      " + " ".join(f"{v:6.3f}" for v in curve.loss))
    print("    accuracy  " + " ".join(f"{v:6.3f}" for v in curve.accuracy))
    print(
        f"    loss barrier {curve.loss_barrier:.4f} nats, "
        f"accuracy barrier {curve.accuracy_barrier:.4f}"
    )


def bench_barrier(
    epochs: int,
    architecture: str = "mlp",
    build: Callable[[], nn.Module] = lambda: mlp(64, [128, 64, 32], 10),
    label: str = "two MLPs 64 → 128, 64, 32 → 10",
) -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        (digits.data / 16.0).astype(np.float32),
        digits.target.astype(np.int64),
        test_size=0.25,
        stratify=digits.target,
        random_state=0,
    )
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    start = time.perf_counter()
    models = [train_digits_mlp(seed, xt, yt, epochs, build) for seed in (0, 1)]
    trained_s = time.perf_counter() - start
    state_a, state_b = (state_of(m) for m in models)
    evaluate = classifier_evaluator(architecture, x_test, y_test)
    print(
        f"\nbarrier on the digits test split ({len(y_test)} samples), "
        f"{label} trained {epochs} epochs ({trained_s:.1f} s both)"
    )
    for name, state in (("A", state_a), ("B", state_b)):
        loss, accuracy = evaluate(state)
        print(f"  model {name}: test loss {loss:.4f}, accuracy {accuracy:.4f}")
    seconds, naive = best_of(1, lambda: linear_path(state_a, state_b, evaluate))
    print_curve("(1−λ)θ_A + λθ_B", naive, seconds)
    spec = spec_for(architecture, state_a)
    match_s, perms = best_of(1, lambda: weight_matching(spec, state_a, state_b, seed=0))
    matched = apply_permutation(spec, perms, state_b)
    seconds, rebased = best_of(1, lambda: linear_path(state_a, matched, evaluate))
    print_curve(f"(1−λ)θ_A + λπ(θ_B), matched in {match_s:.3f} s", rebased, seconds)
    print(
        f"  L2 distance before / after matching: {l2_distance(state_a, state_b):.4f} / "
        f"{l2_distance(state_a, matched):.4f}"
    )
    spectra_s, _ = best_of(
        1, lambda: (layer_spectra(state_a, state_b), layer_spectra(state_a, matched))
    )
    chance_s, unrelated = best_of(
        1,
        lambda: matched_chance(
            state_a,
            state_b,
            lambda a, b: apply_permutation(spec, weight_matching(spec, a, b, seed=0), b),
        ),
    )
    levels = unrelated.after_matching()
    print(
        f"  singular-vector alignment per layer, before → after matching (unrelated weights: "
        f"the chance level before matching, m(out) m(in) / 2, and after it, the mean of "
        f"{unrelated.draws} pairs with A's and B's spectra [95 % interval], drawn in "
        f"{chance_s:.2f} s beside {match_s:.3f} s for the matching and {spectra_s:.3f} s for "
        "the spectra):"
    )
    for before, after in zip(
        layer_spectra(state_a, state_b), layer_spectra(state_a, matched), strict=True
    ):
        top = min(5, len(before.cosines))
        level = levels[before.name]
        print(
            f"    {before.name:14s} {before.alignment:.4f} → {after.alignment:.4f} "
            f"(unrelated weights {before.chance:.4f} → {level['mean']:.4f} "
            f"[{level['low']:.4f}, {level['high']:.4f}])   c_1…c_{top}: "
            + " ".join(f"{c:+.2f}" for c in before.cosines[:top])
            + "  →  "
            + " ".join(f"{c:+.2f}" for c in after.cosines[:top])
        )
    untrained_alignment(architecture, build)


def untrained_alignment(architecture: str, build: Callable[[], nn.Module], pairs: int = 10) -> None:
    """Each layer's alignment before and after matching between untrained pairs built like
    the trained ones (seeds 100 + 2k and 101 + 2k): what matching does to unrelated weights,
    which the chance level m(out) m(in) / 2 (before matching only) does not say."""
    scores = []
    for k in range(pairs):
        states = []
        for seed in (100 + 2 * k, 101 + 2 * k):
            torch.manual_seed(seed)
            states.append(state_of(build()))
        state_a, state_b = states
        spec = spec_for(architecture, state_a)
        matched = apply_permutation(spec, weight_matching(spec, state_a, state_b), state_b)
        scores.append(
            [
                (before.alignment, after.alignment)
                for before, after in zip(
                    layer_spectra(state_a, state_b), layer_spectra(state_a, matched), strict=True
                )
            ]
        )
    mean = np.mean(scores, axis=0)
    print(f"  the same between untrained pairs, mean of {pairs}:")
    for layer, (before, after) in zip(layer_spectra(*states), mean, strict=True):
        print(f"    {layer.name:14s} {before:.4f} → {after:.4f}")


def bench_bert() -> None:
    """Weight matching of two random BERT-base-sized encoders, once (it takes minutes)."""
    import transformers

    from analysis.weights.bert import encoder_spec

    states = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        states.append(transformers.BertModel(transformers.BertConfig()).state_dict())
    a, b = states
    spec = encoder_spec(a, 12, "bert")
    start = time.perf_counter()
    perms = spec.match(a, b)
    seconds = time.perf_counter() - start
    before, after = l2_distance(a, b), l2_distance(a, spec.apply(perms, b))
    print(
        f"BERT-base-sized encoders (12 layers, width 768, 12 heads of 64), random init: matching "
        f"{seconds:.1f} s, L2 {before:.2f} → {after:.2f}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--no-bert", action="store_true", help="leave out the BERT-base pair")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    bench_matching(
        "MLPs 784 → 4 × 1,024 → 10",
        "mlp",
        lambda: mlp(784, [1024] * 4, 10),
        torch.randn(64, 784),
        args.repeats,
    )
    bench_matching(
        "demo CNNs 16, 32, 64",
        "small-cnn",
        lambda: small_cnn(1, [16, 32, 64], 10),
        torch.randn(64, 1, 8, 8),
        args.repeats,
    )
    # Tiny tensors from here on: a second intra-op thread only adds synchronisation, which
    # costs tens of seconds of training on a busy machine.
    bench_matching(
        "transformers, 4 blocks of width 256, 8 heads of 32, MLP 1,024",
        "transformer",
        lambda: transformer(TransformerConfig(8, 8, 256, 8, 32, 1024, 4, 10)),
        torch.randn(64, 64),
        args.repeats,
    )
    if not args.no_bert:
        bench_bert()
    torch.set_num_threads(1)
    bench_barrier(args.epochs)
    bench_barrier(
        args.epochs,
        "transformer",
        lambda: transformer(DIGIT_TRANSFORMER),
        "two transformers (8 row tokens, width 32, 4 heads of 8, MLP 64, 2 blocks)",
    )


if __name__ == "__main__":
    main()
