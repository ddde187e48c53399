"""Relative representations (analysis/measures/relative.py): anchors, definition, invariances, the
engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from analysis.errors import InputError
from analysis.measures.engine import compare_layers
from analysis.measures.relative import (
    MAX_ANCHORS,
    RelativeSimilarity,
    choose_anchors,
    relative_representation,
    relative_similarity,
)

SEEDS = [0, 1, 2, 3, 4]


def related(rng: np.random.Generator, n: int, p: int, q: int, noise: float = 1.0):
    x = rng.standard_normal((n, p))
    return x, x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))


# --- anchors and the relative representation ------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_anchors_are_seeded_distinct_indices(seed):
    anchors = choose_anchors(100, 30, seed)
    assert len(set(anchors)) == 30 and (np.diff(anchors) > 0).all()
    assert 0 <= anchors.min() and anchors.max() < 100
    assert (choose_anchors(100, 30, seed) == anchors).all()
    assert (choose_anchors(100, 30, seed + 1) != anchors).any()


@pytest.mark.parametrize("m", [0, 10, 11])
def test_anchor_count_out_of_range_is_refused(m):
    with pytest.raises(InputError, match="anchors"):
        choose_anchors(10, m, 0)


@pytest.mark.parametrize(("n", "m"), [(4, 2), (101, 50), (1000, MAX_ANCHORS)])
def test_default_anchor_count(n, m):
    assert len(RelativeSimilarity().anchors(n)) == m == min(300, n // 2)


@pytest.mark.parametrize("seed", SEEDS)
def test_relative_representation_agrees_with_reference_implementation(seed):
    """Cross-check against ``relative_projection`` of the authors' demo (lucmos/relreps,
    experiments/demo/relreps_demo.ipynb), re-typed here in torch: rows and anchors
    L2-normalised with ``F.normalize``, then their inner products; no centring (our
    convention too)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 7)) + 0.5
    anchors = choose_anchors(40, 9, seed)
    t = torch.nn.functional.normalize(torch.from_numpy(x), p=2, dim=-1)
    peer = (t @ t[torch.from_numpy(anchors)].T).numpy()
    ours = relative_representation(x, anchors)
    assert ours.shape == (40, 9)
    np.testing.assert_allclose(ours, peer, atol=1e-12)
    np.testing.assert_allclose(ours[anchors, np.arange(9)], 1.0, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_mean_agrees_with_reference_over_non_anchor_samples(seed):
    """The demo's score is ``cosine_similarity(rel_x, rel_y).mean()`` over *all* samples,
    anchors included; an anchor's relative vector holds its cosine 1 with itself in both spaces,
    which inflates the score of unrelated spaces, so ours averages over the other samples."""
    rng = np.random.default_rng(seed)
    x, y = related(rng, 60, 8, 5)
    anchors = choose_anchors(60, 30, seed=3)
    rel_x = torch.from_numpy(relative_representation(x, anchors))
    rel_y = torch.from_numpy(relative_representation(y, anchors))
    per_sample = torch.nn.functional.cosine_similarity(rel_x, rel_y).numpy()
    others = np.setdiff1d(np.arange(60), anchors)
    value = relative_similarity(x, y, n_anchors=30, seed=3)
    assert value == pytest.approx(per_sample[others].mean(), abs=1e-12)
    assert value != pytest.approx(per_sample.mean(), abs=1e-6)


def test_zero_vectors_give_zero_cosines_never_nan():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 4))
    x[[0, 5]] = 0.0
    anchors = np.array([0, 1, 2])
    rel = relative_representation(x, anchors)
    assert np.isfinite(rel).all()
    assert (rel[:, 0] == 0).all() and (rel[5] == 0).all()
    measure = RelativeSimilarity(n_anchors=3)
    a = measure.prepare(x)
    b = measure.prepare(rng.standard_normal((12, 6)))
    assert np.isfinite(measure.score(a, b))
    assert "2 samples without direction in X" in measure.estimator(a, b)
    with pytest.raises(InputError, match="zero vector"):
        measure.prepare(np.zeros((12, 4)))


# --- the measure ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_self_similarity_is_one_and_symmetric(seed):
    rng = np.random.default_rng(seed)
    x, y = related(rng, 50, 6, 9)
    assert relative_similarity(x, x, seed=seed) == pytest.approx(1.0, abs=1e-12)
    assert relative_similarity(x, y, seed=seed) == pytest.approx(
        relative_similarity(y, x, seed=seed), abs=1e-12
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_invariant_to_orthogonal_transforms_and_scaling_of_either_space(seed):
    rng = np.random.default_rng(seed)
    x, y = related(rng, 80, 6, 9, noise=2.0)
    base = relative_similarity(x, y, seed=seed)
    assert 0.05 < base < 0.99  # a non-trivial value, so the checks below can fail
    q_x = ortho_group.rvs(6, random_state=seed)
    q_y = ortho_group.rvs(9, random_state=seed + 100)
    assert relative_similarity(x, x @ q_x, seed=seed) == pytest.approx(1.0, abs=1e-12)
    for x2, y2 in [(x @ q_x, y), (x, y @ q_y), (x * 1e3, y * 1e-3), (3 * x @ q_x, y @ q_y)]:
        assert relative_similarity(x2, y2, seed=seed) == pytest.approx(base, abs=1e-10)
    per_sample = rng.uniform(0.1, 10, size=(80, 1))  # cosines ignore every sample's norm
    assert relative_similarity(x * per_sample, y, seed=seed) == pytest.approx(base, abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_not_invariant_to_translation(seed):
    rng = np.random.default_rng(seed)
    x, y = related(rng, 80, 6, 9, noise=2.0)
    shifted = x + 3.0 * rng.standard_normal(6)
    base = relative_similarity(x, y, seed=seed)
    assert abs(relative_similarity(shifted, y, seed=seed) - base) > 0.01
    assert "translation" not in RelativeSimilarity.invariant_to


@pytest.mark.parametrize("seed", SEEDS)
def test_per_sample_scores_the_non_anchor_samples(seed):
    rng = np.random.default_rng(seed)
    x, y = related(rng, 40, 5, 5)
    measure = RelativeSimilarity(n_anchors=10, seed=seed)
    a, b = measure.prepare(x), measure.prepare(y)
    samples, values = measure.per_sample(a, b)
    assert len(samples) == 30 and np.intersect1d(samples, a.anchors).size == 0
    assert (-1.0 <= values).all() and (values <= 1.0).all()
    assert measure.score(a, b) == pytest.approx(values.mean(), abs=1e-15)


def test_spaces_with_different_anchors_are_refused():
    rng = np.random.default_rng(0)
    a = RelativeSimilarity(seed=0).prepare(rng.standard_normal((40, 3)))
    b = RelativeSimilarity(seed=1).prepare(rng.standard_normal((40, 3)))
    with pytest.raises(InputError, match="different anchors"):
        RelativeSimilarity().score(a, b)


# --- the engine -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_permuted_layer_scores_like_permuted_data(seed):
    """Permuting Y's rows keeps the anchors at the same row indices: Y's anchors become other
    samples while X keeps its own, exactly as if ``y[perm]`` had been prepared."""
    rng = np.random.default_rng(seed)
    x, y = related(rng, 30, 4, 6)
    perm = rng.permutation(30)
    measure = RelativeSimilarity(seed=seed)
    b = measure.permute(measure.prepare(y), perm)
    assert (b.anchors == measure.prepare(x).anchors).all()
    assert measure.score(measure.prepare(x), b) == pytest.approx(
        relative_similarity(x, y[perm], seed=seed), abs=1e-12
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_baseline_low_for_large_n(seed):
    rng = np.random.default_rng(seed)
    x, y = related(rng, 600, 10, 20, noise=0.3)
    pair = compare_layers(
        RelativeSimilarity(seed=seed), [("x", x)], [("y", y)], n_permutations=3, seed=seed
    )[("x", "y")]
    assert pair.value > 0.8
    assert abs(pair.baseline) < 0.05 and pair.warnings == []
    assert pair.estimator.startswith("300 anchors")


def test_degenerate_input():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="different numbers of samples"):
        relative_similarity(rng.standard_normal((10, 2)), rng.standard_normal((11, 2)))
    with pytest.raises(InputError, match="different numbers of samples"):
        compare_layers(
            RelativeSimilarity(),
            [("a", rng.standard_normal((10, 2)))],
            [("b", rng.standard_normal((12, 2)))],
        )
    bad = rng.standard_normal((10, 3))
    bad[1, 1] = np.nan
    with pytest.raises(InputError, match="fc1.*NaN or Inf"):
        compare_layers(RelativeSimilarity(), [("fc1", bad)], [("b", rng.standard_normal((10, 2)))])
    with pytest.raises(InputError, match="at least 4 samples"):
        relative_similarity(rng.standard_normal((3, 2)), rng.standard_normal((3, 2)))
