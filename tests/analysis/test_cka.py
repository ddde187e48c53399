"""Linear CKA (analysis/measures/cka.py): definitions, invariances, bias, numerics, degenerate
input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import repsim
from scipy.stats import ortho_group

import analysis.measures.gram as gram_module
from analysis.errors import InputError
from analysis.measures.cka import BASELINE_WARNING, PairResult, cka_matrix
from analysis.measures.gram import MIN_SAMPLES, linear_cka, prepare, use_gram_form

SEEDS = [0, 1, 2, 3, 4]


def reference_cka(x: np.ndarray, y: np.ndarray) -> float:
    """HSIC(K, L) / √(HSIC(K, K) HSIC(L, L)) with K = XXᵀ, L = YYᵀ and the biased (plug-in)
    estimator HSIC(K, L) = tr(KHLH) / (n − 1)², H = I − 11ᵀ/n (the (n − 1)² cancels)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k = h @ (x @ x.T) @ h
    m = h @ (y @ y.T) @ h
    return float(np.trace(k @ m) / np.sqrt(np.trace(k @ k) * np.trace(m @ m)))


def correlated_pair(rng: np.random.Generator, n: int, p: int, q: int, noise: float = 1.0):
    x = rng.standard_normal((n, p))
    y = x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))
    return x, y


# --- definition and invariances -------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_self_similarity_is_one(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((30, 12)) * rng.uniform(0.1, 10, size=12)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(40, 8), (10, 30)])  # feature form and Gram form
def test_invariant_to_orthogonal_transform(seed, shape):
    rng = np.random.default_rng(seed)
    n, d = shape
    x = rng.standard_normal((n, d))
    q = ortho_group.rvs(d, random_state=seed)
    y = correlated_pair(rng, n, d, 5)[1]
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x @ q, y) == pytest.approx(linear_cka(x, y), abs=1e-10)
    q_y = ortho_group.rvs(5, random_state=seed + 100)
    assert linear_cka(x @ q, y @ q_y) == pytest.approx(linear_cka(x, y), abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_invariant_to_isotropic_scaling_and_translation(seed):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 25, 6, 9)
    base = linear_cka(x, y)
    assert 0.05 < base < 0.999  # a non-trivial value, so the checks below can fail
    assert linear_cka(x * 1e3, y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x, y * 1e-3) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x + rng.normal(0, 50, size=6), y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x, y - 7.5) == pytest.approx(base, abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_not_invariant_to_general_invertible_linear_map(seed):
    """Stretching one direction of X changes CKA (CCA would not change; CKA must)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((60, 5))
    y = x[:, :1] + 0.1 * rng.standard_normal((60, 1))  # Y sees only X's first direction
    a = np.diag([10.0, 1.0, 1.0, 1.0, 1.0])  # invertible, stretches the shared direction
    before, after = linear_cka(x, y), linear_cka(x @ a, y)
    assert after - before > 0.3
    # shrinking it instead lowers the value; rotating first does not rescue invariance
    assert before - linear_cka(x @ np.diag([0.1, 1.0, 1.0, 1.0, 1.0]), y) > 0.1
    q = ortho_group.rvs(5, random_state=seed)
    assert linear_cka(x @ q, y) == pytest.approx(before, abs=1e-10)
    assert linear_cka(x @ a @ q, y) - before > 0.3


@pytest.mark.parametrize("seed", SEEDS)
def test_symmetric(seed):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 20, 7, 13)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(5, 1, 1), (8, 3, 40), (50, 20, 2), (16, 64, 64)])
def test_value_in_unit_interval(seed, shape):
    rng = np.random.default_rng(seed)
    n, p, q = shape
    for noise in (0.0, 0.3, 3.0):
        x, y = correlated_pair(rng, n, p, q, noise)
        value = linear_cka(x, y)
        assert 0.0 <= value <= 1.0 + 1e-12
    assert 0.0 <= linear_cka(rng.standard_normal((n, p)), rng.standard_normal((n, q))) <= 1.0


# --- the forms and the reference formula ----------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("shape", "gram"),
    [((40, 5, 7), False), ((10, 30, 50), True), ((12, 12, 12), False), ((12, 13, 12), True)],
)
def test_feature_and_gram_forms_match_hsic_formula(seed, shape, gram):
    rng = np.random.default_rng(seed)
    n, p, q = shape
    x, y = correlated_pair(rng, n, p, q)
    assert use_gram_form(prepare(x), prepare(y)) is gram
    assert linear_cka(x, y) == pytest.approx(reference_cka(x, y), abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(40, 5, 7), (10, 30, 50)])
def test_forced_forms_give_the_same_values_and_baselines(seed, shape, monkeypatch):
    """Force each form on the same data: value and (permuted) baseline must not depend on it."""
    rng = np.random.default_rng(seed)
    n, p, q = shape
    x, y = correlated_pair(rng, n, p, q)
    results = {}
    for forced in (False, True):
        monkeypatch.setattr(gram_module, "use_gram_form", lambda a, b, f=forced: f)
        results[forced] = cka_matrix([("x", x)], [("y", y)], n_permutations=5, seed=seed)
    feature, gram = results[False][("x", "y")], results[True][("x", "y")]
    assert (feature.estimator, gram.estimator) == ("feature", "gram")
    assert gram.value == pytest.approx(feature.value, abs=1e-10)
    assert gram.baseline == pytest.approx(feature.baseline, abs=1e-10)
    assert gram.baseline_std == pytest.approx(feature.baseline_std, abs=1e-10)
    assert feature.value == pytest.approx(reference_cka(x, y), abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(5, 3, 4), (20, 5, 7), (10, 30, 50), (64, 8, 3), (7, 100, 2)])
def test_agrees_with_repsim(seed, shape):
    """Cross-check against repsim 0.1.5 (independent C++ implementation).

    Peer's convention: ``repsim.cka(..., kernel_type="linear", estimator="gretton")`` uses the
    plug-in (biased) HSIC of Gretton et al. 2005, tr(KHLH)/(n−1)², in numerator and both
    denominator terms — the same estimator as ours ('song' would be the unbiased one, which
    RepLens exposes separately as cka/linear-debiased).
    """
    rng = np.random.default_rng(seed)
    n, p, q = shape
    x, y = correlated_pair(rng, n, p, q)
    peer = repsim.cka([x, y], kernel_type="linear", estimator="gretton")[0, 1]
    assert linear_cka(x, y) == pytest.approx(float(peer), abs=1e-6)


# --- bias of the plug-in estimator ----------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_independent_data_close_to_d_over_n_plus_d(seed):
    rng = np.random.default_rng(seed)
    n, d = 32, 512
    expected = d / (n + d)  # 0.941
    value = linear_cka(rng.standard_normal((n, d)), rng.standard_normal((n, d)))
    assert value == pytest.approx(expected, abs=0.02)
    result = cka_matrix(
        [("a", rng.standard_normal((n, d)))], [("b", rng.standard_normal((n, d)))], seed=seed
    )[("a", "b")]
    assert result.baseline == pytest.approx(expected, abs=0.02)
    assert result.baseline_std < 0.02
    assert result.warnings and "unrelated data" in result.warnings[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_baseline_low_and_no_warning_when_n_large(seed):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 400, 5, 5, noise=0.1)
    result = cka_matrix([("a", x)], [("b", y)], seed=seed)[("a", "b")]
    assert result.value > 0.5
    assert result.baseline < 0.05
    assert result.warnings == []


def test_warning_threshold():
    low = PairResult(0.9, BASELINE_WARNING - 0.01, 0.0, 100, 10, 10, "feature")
    high = PairResult(0.9, BASELINE_WARNING, 0.0, 32, 512, 8, "gram")
    assert low.warnings == []
    assert len(high.warnings) == 1 and "d=512" in high.warnings[0] and "n=32" in high.warnings[0]


# --- numerics -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_float32_uncentred_large_offset(seed):
    rng = np.random.default_rng(seed)
    n = 40
    x = (rng.standard_normal((n, 30)) + 1e4).astype(np.float32)
    y = (x[:, :10] + 0.5 * rng.standard_normal((n, 10))).astype(np.float32)
    value = linear_cka(x, y)
    x64 = x.astype(np.float64)
    y64 = y.astype(np.float64)
    centred = linear_cka(x64 - x64.mean(0), y64 - y64.mean(0))
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(centred, abs=1e-9)
    assert value == pytest.approx(reference_cka(x64, y64), abs=1e-8)
    # The hazard is real: centring the float32 Gram matrices gives a very different number.
    k, m = x @ x.T, y @ y.T
    h = np.eye(n, dtype=np.float32) - np.float32(1 / n)
    kc, mc = h @ k @ h, h @ m @ h
    naive = float((kc * mc).sum() / np.sqrt((kc * kc).sum() * (mc * mc).sum()))
    assert abs(naive - value) > 0.05


# --- cka_matrix -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_cka_matrix_all_pairs_prepared_once(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    n = 30
    layers_a = [(f"a{i}", rng.standard_normal((n, 4 + i))) for i in range(3)]
    layers_b = [(f"b{j}", rng.standard_normal((n, 50 + j))) for j in range(4)]
    calls = []
    real_prepare = gram_module.prepare

    def counting_prepare(x, name="activations", device=None):
        calls.append(name)
        return real_prepare(x, name, device)

    monkeypatch.setattr(gram_module, "prepare", counting_prepare)
    progress = []
    result = cka_matrix(layers_a, layers_b, n_permutations=3, seed=seed, progress=progress.append)
    assert len(calls) == 3 + 4  # L1 + L2, not L1 × L2
    assert sorted(calls) == sorted([name for name, _ in layers_a + layers_b])
    assert set(result) == {(a, b) for a, _ in layers_a for b, _ in layers_b}
    for (name_a, x), (name_b, y) in [(a, b) for a in layers_a for b in layers_b]:
        pair = result[(name_a, name_b)]
        assert pair.value == pytest.approx(linear_cka(x, y), abs=1e-12)
        assert (pair.n, pair.d_a, pair.d_b) == (n, x.shape[1], y.shape[1])
        assert pair.estimator == ("gram" if n * n < x.shape[1] * y.shape[1] else "feature")
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
    assert len(progress) == 12  # pairs only: the exact baseline draws no permutation


@pytest.mark.parametrize("seed", SEEDS)
def test_cka_matrix_symmetric_under_swap(seed):
    rng = np.random.default_rng(seed)
    x, y = correlated_pair(rng, 25, 6, 40)
    ab = cka_matrix([("x", x)], [("y", y)], seed=seed)[("x", "y")]
    ba = cka_matrix([("y", y)], [("x", x)], seed=seed)[("y", "x")]
    assert ab.value == pytest.approx(ba.value, abs=1e-12)


def _all_permutation_scores(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.array([reference_cka(x, y[list(p)]) for p in itertools.permutations(range(len(y)))])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(4, 2, 3), (6, 3, 8), (7, 5, 2)])
def test_baseline_is_the_exact_mean_and_sd_over_all_row_permutations(seed, shape):
    """Enumerate all n! row shuffles of Y: the closed-form moments (Kazi-Aoual et al. 1995)
    must equal their mean and sd, in both forms, for skewed as well as Gaussian data."""
    rng = np.random.default_rng(seed)
    n, p, q = shape
    x = rng.standard_normal((n, p)) ** 3
    y = rng.standard_normal((n, q)) + (x[:, :1] if q else 0)
    scores = _all_permutation_scores(x, y)
    result = cka_matrix([("x", x)], [("y", y)])[("x", "y")]
    assert result.baseline == pytest.approx(scores.mean(), abs=1e-12)
    assert result.baseline_std == pytest.approx(scores.std(), abs=1e-12)


def test_exact_baseline_matches_many_sampled_shuffles():
    rng = np.random.default_rng(0)
    x, y = correlated_pair(rng, 60, 5, 40)
    result = cka_matrix([("x", x)], [("y", y)])[("x", "y")]
    sampled = [reference_cka(x, y[rng.permutation(60)]) for _ in range(3000)]
    assert result.baseline == pytest.approx(np.mean(sampled), rel=0.02)
    assert result.baseline_std == pytest.approx(np.std(sampled), rel=0.1)


def test_exact_baseline_of_isotropic_data_is_finite():
    """β = n − 1 (a regular simplex: K is a multiple of the centring matrix) is where the
    paper's τ divides by zero; every permutation then scores the same, sd 0."""
    simplex = np.eye(6)
    result = cka_matrix([("x", simplex)], [("y", simplex)])[("x", "y")]
    assert result.value == pytest.approx(1.0)
    assert result.baseline == pytest.approx(1.0) and result.baseline_std == pytest.approx(0.0)


def test_streamed_blocks_give_the_same_values(monkeypatch):
    """Blocks of a few rows (as for activations larger than memory) change nothing."""
    rng = np.random.default_rng(3)
    x, y = correlated_pair(rng, 300, 20, 30)
    whole = cka_matrix([("x", x)], [("y", y)])[("x", "y")]
    monkeypatch.setattr(gram_module, "RESIDENT_BYTES", 0)
    monkeypatch.setattr(gram_module, "BLOCK_BYTES", 8 * 50 * 7)
    streamed = cka_matrix([("x", x)], [("y", y)])[("x", "y")]
    assert streamed.value == pytest.approx(whole.value, abs=1e-13)
    assert streamed.baseline == pytest.approx(whole.baseline, abs=1e-13)
    assert streamed.value == pytest.approx(reference_cka(x, y), abs=1e-12)


def test_memory_mapped_activations(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    x, y = correlated_pair(rng, 500, 12, 9)
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    np.save(tmp_path / "y.npy", y.astype(np.float32))
    mapped = [np.load(tmp_path / f"{k}.npy", mmap_mode="r") for k in ("x", "y")]
    expected = linear_cka(x, y)
    assert linear_cka(*mapped) == pytest.approx(expected, abs=1e-6)
    monkeypatch.setattr(gram_module, "RESIDENT_BYTES", 0)  # streamed from the file
    monkeypatch.setattr(gram_module, "BLOCK_BYTES", 8 * 64 * 21)
    assert linear_cka(*mapped) == pytest.approx(expected, abs=1e-6)


def test_cka_matrix_needs_a_permutation():
    x = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(InputError, match="permutation"):
        cka_matrix([("a", x)], [("b", x)], n_permutations=0)


def test_cka_matrix_empty_layer_list_is_an_input_error():
    x = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(InputError):
        cka_matrix([], [("b", x)])


# --- degenerate input -----------------------------------------------------------------------


def test_too_few_samples():
    rng = np.random.default_rng(0)
    assert MIN_SAMPLES == 4
    with pytest.raises(InputError, match="at least 4 samples"):
        linear_cka(rng.standard_normal((3, 5)), rng.standard_normal((3, 5)))
    with pytest.raises(InputError, match="conv1"):
        cka_matrix([("conv1", rng.standard_normal((3, 5)))], [("b", rng.standard_normal((3, 2)))])
    value = linear_cka(rng.standard_normal((4, 5)), rng.standard_normal((4, 5)))
    assert 0.0 <= value <= 1.0


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (0.0, np.float64),
        (1.0, np.float64),
        (0.1, np.float32),
        (7.77, np.float32),
        pytest.param(0.1, np.float64),
        pytest.param(7.77, np.float64),
    ],
)
def test_constant_layer_is_refused(value, dtype):
    rng = np.random.default_rng(0)
    constant = np.full((10, 3), value, dtype=dtype)
    other = rng.standard_normal((10, 4))
    with pytest.raises(InputError, match="constant"):
        linear_cka(constant, other)
    with pytest.raises(InputError, match="constant"):
        linear_cka(other, constant)
    with pytest.raises(InputError, match="dead_layer"):
        cka_matrix([("fine", other)], [("dead_layer", constant)])


def test_constant_column_among_varying_ones_is_fine():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4))
    x_const = np.hstack([x, np.full((20, 1), 3.0)])
    y = rng.standard_normal((20, 6))
    value = linear_cka(x_const, y)
    assert np.isfinite(value)
    assert value == pytest.approx(linear_cka(x, y), abs=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_names_the_layer(bad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 3))
    x[4, 1] = bad
    y = rng.standard_normal((10, 5))
    with pytest.raises(InputError, match="NaN or Inf"):
        linear_cka(x, y)
    with pytest.raises(InputError, match="layer3.conv2"):
        cka_matrix([("layer1", y)], [("layer3.conv2", x)])
    with pytest.raises(InputError, match="layer3.conv2"):
        cka_matrix([("layer3.conv2", x)], [("layer1", y)])


def test_mismatched_sample_counts():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="different numbers of samples"):
        linear_cka(rng.standard_normal((10, 3)), rng.standard_normal((11, 3)))
    with pytest.raises(InputError, match="different numbers of samples"):
        cka_matrix(
            [("a", rng.standard_normal((10, 3)))],
            [("b", rng.standard_normal((10, 3))), ("c", rng.standard_normal((12, 3)))],
        )


@pytest.mark.parametrize("shape", [(10,), (4, 3, 2), ()])
def test_wrong_number_of_dimensions(shape):
    with pytest.raises(InputError, match="n × d"):
        prepare(np.ones(shape))


def test_no_columns_is_refused():
    with pytest.raises(InputError):
        linear_cka(np.zeros((10, 0)), np.ones((10, 2)))


def test_layer_one_ulp_from_constant_is_not_refused():
    """Validation compares values exactly only when the centred total is within the round-off
    of the means; a layer that small but not constant is compared and accepted."""
    x = np.full((10, 3), 1e8)
    x[3, 1] = np.nextafter(1e8, 2e8)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    # (Its other values are the round-off of the float64 means: a value, not a meaningful one.)
    assert 0.0 <= linear_cka(x, np.random.default_rng(0).standard_normal((10, 2))) <= 1.0


def test_finite_values_too_large_to_sum_are_refused_in_their_own_words():
    x = np.random.default_rng(0).standard_normal((10, 3)) * 1e307
    x[:, 0] = 1e308
    with pytest.raises(InputError, match="too large") as refused:
        linear_cka(x, np.ones((10, 2)) + np.arange(10)[:, None])
    assert "NaN" not in str(refused.value)


@pytest.mark.parametrize("shape", [(300, 20), (40, 90)])  # feature form and Gram form
def test_lazy_row_norms_equal_the_centred_rows_norms(shape, monkeypatch):
    """The diagonal of K: computed on first use for a resident layer, while streaming for a
    streamed one."""
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32) + 3
    centred = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    expected = np.einsum("ij,ij->i", centred, centred)
    np.testing.assert_allclose(prepare(x).sq_row_norms, expected, rtol=1e-12)
    monkeypatch.setattr(gram_module, "RESIDENT_BYTES", 0)
    monkeypatch.setattr(gram_module, "BLOCK_BYTES", 8 * 30 * shape[1])
    np.testing.assert_allclose(prepare(x).sq_row_norms, expected, rtol=1e-12)
    assert prepare(x).total == pytest.approx(expected.sum(), rel=1e-12)
