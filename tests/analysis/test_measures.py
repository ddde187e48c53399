"""The layer × layer engine shared by every measure: baselines and bootstrap intervals."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from analysis.errors import InputError
from analysis.measures.cka import DebiasedCKA, LinearCKA
from analysis.measures.engine import compare_layers
from analysis.measures.gram import linear_cka
from analysis.measures.registry import MEASURES


def related(n: int, seed: int, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20))
    return x, x @ rng.normal(size=(20, 30)) + noise * rng.normal(size=(n, 30))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_interval_brackets_the_value_and_shrinks_with_n(seed):
    widths = []
    for n in (60, 600):
        x, y = related(n, seed)
        r = compare_layers(LinearCKA(), [("x", x)], [("y", y)], n_bootstrap=200, seed=seed)[
            ("x", "y")
        ]
        assert r.ci_low <= r.value <= r.ci_high
        assert 0.0 <= r.ci_low < r.ci_high <= 1.0
        widths.append(r.ci_high - r.ci_low)
    assert widths[1] < widths[0] / 1.5


def test_bootstrap_is_seeded_and_off_by_default():
    x, y = related(100, 0)
    first = compare_layers(LinearCKA(), [("x", x)], [("y", y)], n_bootstrap=30, seed=7)
    again = compare_layers(LinearCKA(), [("x", x)], [("y", y)], n_bootstrap=30, seed=7)
    assert first[("x", "y")].ci_low == again[("x", "y")].ci_low
    plain = compare_layers(LinearCKA(), [("x", x)], [("y", y)])[("x", "y")]
    assert plain.ci_low is None and plain.ci_high is None


def test_progress_counts_pairs_permutations_and_resamples():
    x, y = related(50, 0)
    seen: list[float] = []
    compare_layers(
        DebiasedCKA(),
        [("x", x), ("y", y)],
        [("y", y)],
        n_permutations=4,
        n_bootstrap=3,
        progress=seen.append,
    )
    # 2 pairs, then each of the 4 permutations of the one B layer, then 3 resamples
    assert len(seen) == 2 + 4 + 3 and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    seen.clear()
    compare_layers(LinearCKA(), [("x", x)], [("y", y)], n_bootstrap=3, progress=seen.append)
    assert len(seen) == 1 + 3  # the exact baseline draws no permutation


def test_measures_without_bootstrap_get_no_interval():
    from analysis.measures.knn import MutualKNN

    x, y = related(60, 1)
    r = compare_layers(MutualKNN(k=5), [("x", x)], [("y", y)], n_bootstrap=10)[("x", "y")]
    assert r.ci_low is None and r.ci_high is None


def test_permuted_prepared_layer_scores_like_permuted_data():
    x, y = related(80, 3)
    perm = np.random.default_rng(0).permutation(80)
    measure = LinearCKA()
    b = measure.prepare(y)
    b.normalised_gram()  # the cached Gram must be permuted too
    assert measure.score(measure.prepare(x), measure.permute(b, perm)) == pytest.approx(
        linear_cka(x, y[perm]), abs=1e-12
    )


def test_engine_refuses_mismatched_sizes_and_no_layers():
    x, y = related(50, 0)
    with pytest.raises(InputError, match="different numbers of samples"):
        compare_layers(LinearCKA(), [("x", x)], [("y", y[:40])])
    with pytest.raises(InputError, match="at least one layer"):
        compare_layers(LinearCKA(), [], [("y", y)])


def test_registry_ids_are_stable_and_described():
    for measure_id, measure in MEASURES.items():
        described = measure.describe()
        assert described["id"] == measure_id
        low, high = described["range"]
        assert low < high
        assert isinstance(described["larger_is_more_similar"], bool)


def test_interval_is_clipped_to_true_bounds_not_the_display_range():
    from analysis.measures.regression import RidgePredictivity

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 5)), rng.normal(size=(120, 3))  # unrelated: R² ≤ 0 likely
    r = compare_layers(RidgePredictivity(), [("x", x)], [("y", y)], n_bootstrap=40)[("x", "y")]
    assert r.value < 0.05
    assert r.ci_low <= r.value <= r.ci_high


def test_distances_warn_when_unrelated_data_is_already_close():
    from analysis.measures.procrustes import ProcrustesAngular

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 512)), rng.normal(size=(32, 512))
    small_n = compare_layers(ProcrustesAngular(), [("x", x)], [("y", y)])[("x", "y")]
    assert small_n.baseline < ProcrustesAngular().baseline_warning_at()
    assert small_n.warnings and "n=32" in small_n.warnings[0]
    x, y = rng.normal(size=(500, 5)), rng.normal(size=(500, 5))
    large_n = compare_layers(ProcrustesAngular(), [("x", x)], [("y", y)])[("x", "y")]
    assert large_n.warnings == []


@pytest.mark.parametrize("measure_id", ["cka/linear", "cca/mean"])
def test_a_refused_layer_leaves_its_cells_empty_and_the_rest_scored(measure_id):
    """A dead layer (every unit constant, as after ReLUs that never fire) cannot be compared by
    CKA or CCA: its cells carry the reason, every other pair is scored as usual (mean CCA's
    layers are prepared side by side, as its draws are)."""
    x, y = related(200, 0)
    dead = np.zeros((200, 4))
    results = compare_layers(
        MEASURES[measure_id], [("x", x), ("dead", dead)], [("y", y), ("x", x)], n_bootstrap=5
    )
    assert list(results) == [("x", "y"), ("x", "x"), ("dead", "y"), ("dead", "x")]
    assert results[("x", "x")].value == pytest.approx(1.0)
    assert results[("x", "y")].ci_low is not None
    for key in [("dead", "y"), ("dead", "x")]:
        refused = results[key]
        assert refused.value is None and refused.baseline is None and refused.ci_low is None
        assert refused.warnings == [refused.refusal] and "dead: every column is constant" in (
            refused.refusal
        )
        assert (refused.n, refused.d_a) == (200, 4)


def test_comparison_fails_with_the_reason_when_no_pair_can_be_scored():
    x, _ = related(50, 0)
    with pytest.raises(InputError, match="dead: every column is constant"):
        compare_layers(LinearCKA(), [("dead", np.ones((50, 3)))], [("x", x)])


PARALLEL = [m for m in MEASURES.values() if m.draws_in_parallel()]


def test_the_cca_family_and_procrustes_draw_in_parallel_on_the_cpu():
    assert {"cca/mean", "cca/svcca", "cca/pwcca", "procrustes/angular"} <= {m.id for m in PARALLEL}
    assert not MEASURES["cca/mean"].on("cuda").draws_in_parallel()


@pytest.mark.parametrize("measure", PARALLEL, ids=lambda m: m.id)
def test_draws_side_by_side_give_the_values_of_draws_in_turn(measure):
    """The engine scores these measures' permutations and resamples on several threads, each
    with one BLAS thread: the same values, baselines and intervals as one by one."""
    x, y = related(300, 3)
    layers = [("x", x), ("y", y)]
    in_turn = copy.copy(measure)
    in_turn.draws_in_parallel = lambda: False  # type: ignore[method-assign]
    side_by_side = compare_layers(measure, layers, layers, 6, 8, seed=2)
    one_by_one = compare_layers(in_turn, layers, layers, 6, 8, seed=2)
    fields = ("value", "baseline", "baseline_std", "ci_low", "ci_high")
    for key, r in side_by_side.items():
        q = one_by_one[key]
        assert r.ci_low is not None and q.ci_low is not None
        np.testing.assert_allclose(
            [getattr(r, f) for f in fields], [getattr(q, f) for f in fields], rtol=0, atol=1e-12
        )
