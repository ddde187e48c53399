"""Weight space (analysis/weights/): permutation specs, weight matching against brute force,
linear mode connectivity and singular-vector alignment."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate

from analysis.errors import InputError
from analysis.models.architectures import build_from_state_dict, mlp, small_cnn
from analysis.weights.chance import alignment_chance, mean_abs_cosine
from analysis.weights.connectivity import (
    barrier,
    classifier_evaluator,
    evaluate_classifier,
    interpolate,
    linear_path,
)
from analysis.weights.matching import l2_distance, weight_matching
from analysis.weights.specs import (
    Permutations,
    PermutationSpec,
    apply_permutation,
    cnn_spec,
    mlp_spec,
    spec_for,
)
from analysis.weights.spectra import compare_spectra, layer_spectra, weight_matrix
from analysis.weights.unrelated import (
    DRAWS,
    draws_for,
    haar_frame,
    matched_chance,
    singular_values,
    unrelated_state,
)

SEEDS = [0, 1, 2, 3, 4]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: a second intra-op thread only adds synchronisation, which costs up to
    100 ms a call on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mlp_state(seed: int, hidden=(6, 5, 4), in_features=7, n_classes=3) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return dict(mlp(in_features, list(hidden), n_classes).state_dict())


def cnn_state(seed: int, widths=(4, 6, 5)) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return dict(small_cnn(2, list(widths), 3).state_dict())


def outputs(architecture: str, state: dict[str, torch.Tensor], x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return build_from_state_dict(architecture, state)(x).double().numpy()


# --- specs ----------------------------------------------------------------------------------


def test_mlp_spec_declares_each_hidden_layer():
    spec = mlp_spec(mlp_state(0, hidden=(6, 5)))
    assert dict(spec.perm_to_axes) == {
        "block1": (("block1.0.weight", 0), ("block1.0.bias", 0), ("block2.0.weight", 1)),
        "block2": (("block2.0.weight", 0), ("block2.0.bias", 0), ("head.weight", 1)),
    }
    assert spec.axes_to_perm["block2.0.weight"] == ("block2", "block1")
    assert spec.axes_to_perm["head.weight"] == (None, "block2")
    assert "head.bias" not in spec.axes_to_perm
    assert (spec.size("block1"), spec.size("block2")) == (6, 5)


def test_cnn_spec_permutes_channels_and_leaves_kernel_axes():
    spec = spec_for("small-cnn", cnn_state(0))
    assert list(spec.perm_to_axes) == ["conv1", "conv2", "conv3"]
    assert spec.axes_to_perm["conv2.0.weight"] == ("conv2", "conv1", None, None)
    assert spec.axes_to_perm["head.weight"] == (None, "conv3")


def test_unknown_architecture_and_foreign_weights_are_refused():
    with pytest.raises(InputError, match="no permutation spec is declared for architecture 'vit'"):
        spec_for("vit", mlp_state(0))
    with pytest.raises(InputError, match="architecture 'mlp'"):
        spec_for("mlp", cnn_state(0))
    state = mlp_state(0)
    state["extra.weight"] = torch.zeros(2, 2)
    with pytest.raises(InputError, match="architecture 'mlp'"):
        mlp_spec(state)
    state = mlp_state(0)
    state["block2.0.weight"] = torch.zeros(5, 3)  # block1 has 6 outputs
    with pytest.raises(InputError, match="shapes disagree"):
        mlp_spec(state)


def test_a_spec_naming_a_missing_axis_is_refused():
    with pytest.raises(InputError, match="missing axis 1 of 'b'"):
        PermutationSpec({"p": (("w", 0), ("b", 1))}, {"w": (3, 2), "b": (3,)})
    with pytest.raises(InputError, match="different sizes"):
        PermutationSpec({"p": (("w", 0), ("w", 1))}, {"w": (3, 2)})


def test_state_of_another_shape_or_bad_permutation_is_refused():
    spec = mlp_spec(mlp_state(0))
    with pytest.raises(InputError, match=r"'block1.0.bias' has shape \(7,\), expected \(6,\)"):
        spec.check(mlp_state(0, hidden=(7, 5, 4)))
    perms = spec.identity()
    perms["block1"] = np.array([0, 0, 1, 2, 3, 4])
    with pytest.raises(InputError, match="not a permutation of 6 units"):
        apply_permutation(spec, perms, mlp_state(0))
    del perms["block1"]
    with pytest.raises(InputError, match="expected permutations"):
        apply_permutation(spec, perms, mlp_state(0))


@pytest.mark.parametrize("seed", SEEDS)
def test_permuted_mlp_and_cnn_compute_the_same_function(seed):
    rng = np.random.default_rng(seed)
    for architecture, state, x in [
        ("mlp", mlp_state(seed), torch.randn(20, 7)),
        ("small-cnn", cnn_state(seed), torch.randn(6, 2, 9, 9)),
    ]:
        spec = spec_for(architecture, state)
        perms = spec.random(rng)
        permuted = apply_permutation(spec, perms, state)
        assert l2_distance(state, permuted) > 0  # the weights moved …
        np.testing.assert_allclose(  # … the function did not
            outputs(architecture, permuted, x), outputs(architecture, state, x), atol=1e-6
        )


# --- weight matching ------------------------------------------------------------------------


def all_permutations(spec: PermutationSpec) -> list[Permutations]:
    names = list(spec.perm_to_axes)
    choices = [[np.array(p) for p in itertools.permutations(range(spec.size(n)))] for n in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]


def distance_after(spec, perms, a, b) -> float:
    return l2_distance(a, apply_permutation(spec, perms, b))


@pytest.mark.parametrize("seed", SEEDS)
def test_one_hidden_layer_matching_is_the_brute_force_optimum(seed):
    a, b = mlp_state(seed, hidden=(4,)), mlp_state(seed + 100, hidden=(4,))
    spec = mlp_spec(a)
    perms = weight_matching(spec, a, b, seed=seed)
    best = min(all_permutations(spec), key=lambda p: distance_after(spec, p, a, b))
    np.testing.assert_array_equal(perms["block1"], best["block1"])


@pytest.mark.parametrize("seed", SEEDS)
def test_two_hidden_layers_matching_is_optimal_in_each_permutation(seed):
    """Coordinate descent: no change of one permutation, the other fixed, improves the result
    (checked over all 3! and 4! alternatives), and the global optimum of all 3!·4! is at least as
    good."""
    a, b = mlp_state(seed, hidden=(3, 4)), mlp_state(seed + 100, hidden=(3, 4))
    spec = mlp_spec(a)
    perms = weight_matching(spec, a, b, seed=seed)
    found = distance_after(spec, perms, a, b)
    for name in perms:
        for alternative in itertools.permutations(range(spec.size(name))):
            other = {**perms, name: np.array(alternative)}
            assert distance_after(spec, other, a, b) >= found - 1e-12
    candidates = all_permutations(spec)
    assert len(candidates) == 144
    assert min(distance_after(spec, p, a, b) for p in candidates) <= found + 1e-12
    assert found <= l2_distance(a, b) + 1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_matching_a_permuted_copy_recovers_the_permutation_exactly(seed):
    """Not a theorem: coordinate descent may stop at a local optimum. On layers of 3 and 4
    units it does for about 1 seed in 15; on these widths it recovered the copy for all of 300
    seeds tried."""
    rng = np.random.default_rng(seed)
    for a, spec_of in ((mlp_state(seed, (32, 16, 8)), mlp_spec), (cnn_state(seed), cnn_spec)):
        spec = spec_of(a)
        sigma = spec.random(rng)
        b = apply_permutation(spec, sigma, a)
        perms = weight_matching(spec, a, b, seed=seed)
        for name in perms:  # B's unit i is A's unit sigma[i]: undone by sigma's inverse
            np.testing.assert_array_equal(perms[name], np.argsort(sigma[name]))
        assert l2_distance(a, b) > 0
        assert distance_after(spec, perms, a, b) == 0.0


def test_matching_is_seeded_and_never_increases_the_distance():
    a, b = mlp_state(0, hidden=(24, 24, 24)), mlp_state(1, hidden=(24, 24, 24))
    spec = mlp_spec(a)
    first = weight_matching(spec, a, b, seed=3)
    again = weight_matching(spec, a, b, seed=3)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert distance_after(spec, first, a, b) < l2_distance(a, b)


def test_l2_distance_is_the_norm_of_the_difference():
    a, b = mlp_state(0), mlp_state(1)
    expected = np.sqrt(sum(float(((a[k].double() - b[k].double()) ** 2).sum()) for k in a))
    assert l2_distance(a, b) == pytest.approx(expected, rel=1e-12)
    assert l2_distance(a, a) == 0.0
    with pytest.raises(InputError, match="different parameters"):
        l2_distance(a, cnn_state(0))


# --- linear mode connectivity ---------------------------------------------------------------


def test_barrier_of_a_bump_over_a_chord_is_its_height():
    lambdas = np.linspace(0, 1, 11)
    chord = 2.0 - 0.5 * lambdas
    bump = 4 * lambdas * (1 - lambdas)  # 1 at λ = ½
    assert barrier(lambdas, chord + 0.3 * bump) == pytest.approx(0.3, abs=1e-12)
    assert barrier(lambdas, chord - 0.3 * bump) == 0.0  # a loss below its chord: no barrier
    assert barrier(lambdas, chord) == pytest.approx(0.0, abs=1e-12)
    accuracy = 0.9 + 0.05 * lambdas - 0.2 * bump  # dips 0.2 below its chord
    assert barrier(lambdas, accuracy, higher_is_better=True) == pytest.approx(0.2, abs=1e-12)
    assert barrier(lambdas, accuracy) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_barrier_is_non_negative_and_ignores_a_linear_trend(seed):
    """The barrier is measured from the chord, so adding α + βλ to the curve changes nothing."""
    rng = np.random.default_rng(seed)
    lambdas = np.linspace(0, 1, 11)
    curve = rng.standard_normal(11)
    trend = rng.standard_normal() + rng.standard_normal() * lambdas
    for higher_is_better in (False, True):
        value = barrier(lambdas, curve, higher_is_better)
        assert value >= 0
        assert barrier(lambdas, curve + trend, higher_is_better) == pytest.approx(value, abs=1e-12)
    assert barrier(lambdas, curve) == pytest.approx(barrier(lambdas, -curve, True), abs=1e-15)


def test_barrier_refuses_bad_lambdas_and_non_finite_curves():
    with pytest.raises(InputError, match="increase from 0 to 1"):
        barrier(np.array([0.0, 0.5]), np.zeros(2))
    with pytest.raises(InputError, match="increase from 0 to 1"):
        barrier(np.array([0.0, 0.6, 0.5, 1.0]), np.zeros(4))
    with pytest.raises(InputError, match="not finite at λ = 0.5"):
        barrier(np.array([0.0, 0.5, 1.0]), np.array([1.0, np.nan, 1.0]))


def test_interpolate_endpoints_are_the_models_bit_for_bit():
    a, b = mlp_state(0), mlp_state(1)
    for lam, expected in ((0.0, a), (1.0, b)):
        for name, w in interpolate(a, b, lam).items():
            assert torch.equal(w, expected[name])
    mid = interpolate(a, b, 0.25)
    assert torch.equal(mid["head.bias"], 0.75 * a["head.bias"] + 0.25 * b["head.bias"])
    with pytest.raises(InputError, match="different parameters"):
        interpolate(a, cnn_state(0), 0.5)


def test_evaluate_classifier_is_cross_entropy_and_accuracy_in_any_batch_size():
    torch.manual_seed(0)
    model = mlp(7, [6], 3).double().eval()  # float64: logits independent of the batching
    x, y = torch.randn(50, 7, dtype=torch.float64), torch.randint(0, 3, (50,))
    with torch.no_grad():
        logits = model(x)
    loss, accuracy = evaluate_classifier(model, x, y, batch_size=7)
    assert loss == pytest.approx(float(F.cross_entropy(logits.double(), y)), rel=1e-12)
    assert accuracy == int((logits.argmax(1) == y).sum()) / 50
    assert evaluate_classifier(model, x.numpy(), y.numpy(), batch_size=1024) == pytest.approx(
        (loss, accuracy), rel=1e-12
    )
    with pytest.raises(InputError, match="not logits"):
        evaluate_classifier(model, x, torch.full((50,), 3))


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_path_endpoints_reproduce_each_models_own_loss_exactly(seed):
    a, b = mlp_state(seed), mlp_state(seed + 10)
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((40, 7)).astype(np.float32), rng.integers(0, 3, 40)
    evaluate = classifier_evaluator("mlp", x, y)
    curve = linear_path(a, b, evaluate)
    assert len(curve.lambdas) == 11
    assert (curve.loss[0], curve.accuracy[0]) == evaluate(a)
    assert (curve.loss[-1], curve.accuracy[-1]) == evaluate(b)
    assert curve.loss_barrier >= 0 and curve.accuracy_barrier >= 0


def test_barrier_is_zero_between_a_model_and_itself_or_its_permuted_copy():
    a = mlp_state(0)
    spec = mlp_spec(a)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 7)).astype(np.float32), rng.integers(0, 3, 40)
    evaluate = classifier_evaluator("mlp", x, y)
    same = linear_path(a, a, evaluate)
    assert same.loss_barrier == pytest.approx(0.0, abs=1e-6)  # (1−λ)θ + λθ rounds in float32
    assert same.accuracy_barrier == 0.0
    b = apply_permutation(spec, spec.random(rng), a)
    matched = apply_permutation(spec, weight_matching(spec, a, b), b)
    rebased = linear_path(a, matched, evaluate)
    assert rebased.loss_barrier == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(rebased.loss, same.loss, atol=1e-6)


# --- spectra --------------------------------------------------------------------------------


def test_conv_kernels_are_out_by_in_times_kernel():
    w = cnn_state(0)["conv2.0.weight"]
    np.testing.assert_array_equal(weight_matrix(w), w.double().numpy().reshape(6, 4 * 9))
    with pytest.raises(InputError, match="not a matrix"):
        weight_matrix(torch.zeros(3))


@pytest.mark.parametrize("seed", SEEDS)
def test_cosines_are_the_inner_products_of_rank_one_components(seed):
    rng = np.random.default_rng(seed)
    wa, wb = rng.standard_normal((5, 8)), rng.standard_normal((5, 8))
    layer = compare_spectra("l", torch.from_numpy(wa), torch.from_numpy(wb))
    ua, sa, vta = np.linalg.svd(wa)
    ub, sb, vtb = np.linalg.svd(wb)
    for i in range(5):
        expected = np.sum(np.outer(ua[:, i], vta[i]) * np.outer(ub[:, i], vtb[i]))
        assert layer.cosines[i] == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(layer.singular_a, sa, rtol=1e-12)
    weights = sa * sb
    expected = np.sum(weights * np.clip(layer.cosines, 0, None)) / np.sum(weights)
    assert layer.alignment == pytest.approx(expected, rel=1e-12)
    assert 0.0 <= layer.alignment <= 1.0
    flipped = compare_spectra("l", torch.from_numpy(wb), torch.from_numpy(wa))
    assert flipped.alignment == pytest.approx(layer.alignment, rel=1e-12)  # symmetric


def test_alignment_is_one_with_itself_and_zero_with_its_negation():
    w = torch.from_numpy(np.random.default_rng(0).standard_normal((6, 9)))
    assert compare_spectra("l", w, w).alignment == pytest.approx(1.0, abs=1e-12)
    assert compare_spectra("l", w, -w).alignment == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(InputError, match="all zero"):
        compare_spectra("l", w, torch.zeros(6, 9))


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_permutation_keeps_singular_values_and_matching_restores_alignment(seed):
    rng = np.random.default_rng(seed)
    a = cnn_state(seed, widths=(8, 16, 12))
    spec = cnn_spec(a)
    b = apply_permutation(spec, spec.random(rng), a)
    before = layer_spectra(a, b)
    assert [layer.name for layer in before] == ["conv1.0", "conv2.0", "conv3.0", "head"]
    for layer in before:
        np.testing.assert_allclose(layer.singular_b, layer.singular_a, rtol=1e-10)
    assert min(layer.alignment for layer in before) < 0.9
    after = layer_spectra(a, apply_permutation(spec, weight_matching(spec, a, b), b))
    for layer in after:
        assert layer.alignment == pytest.approx(1.0, abs=1e-9)


# --- what unrelated weights score -----------------------------------------------------------


def test_mean_abs_cosine_is_the_mean_of_a_unit_vector_s_coordinate():
    """m(p) in closed form where it is known, and against a numerical integral of |x| over the
    density of one coordinate of a uniform unit vector of R^p, ∝ (1 − x²)^((p−3)/2)."""
    assert mean_abs_cosine(1) == pytest.approx(1.0, rel=1e-14)
    assert mean_abs_cosine(2) == pytest.approx(2 / np.pi, rel=1e-14)
    assert mean_abs_cosine(3) == pytest.approx(0.5, rel=1e-14)
    for p in (4, 7, 30, 200):
        density = lambda x, p=p: (1 - x * x) ** ((p - 3) / 2)  # noqa: E731
        mass, _ = integrate.quad(density, 0, 1)
        moment, _ = integrate.quad(lambda x, d=density: x * d(x), 0, 1)
        assert mean_abs_cosine(p) == pytest.approx(moment / mass, rel=1e-9)
    assert mean_abs_cosine(10**6) == pytest.approx(np.sqrt(2 / (np.pi * 10**6)), rel=1e-6)
    with pytest.raises(ValueError):
        mean_abs_cosine(0)


def haar(rng: np.random.Generator, n: int) -> np.ndarray:
    """A uniformly random (Haar) n × n orthogonal matrix: QR of a Gaussian matrix with the
    signs of R's diagonal moved into Q (Mezzadri 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def random_orientation(rng: np.random.Generator, rows: int, columns: int) -> torch.Tensor:
    """U S Vᵀ with U, V Haar and a spectrum S of its own (decaying at a random rate), not a
    Gaussian's: the chance level must not depend on the singular values."""
    k = min(rows, columns)
    s = rng.uniform(0.5, 2.0) * np.exp(-rng.uniform(0.3, 1.5) * np.arange(k))
    u, v = haar(rng, rows)[:, :k], haar(rng, columns)[:, :k]
    return torch.from_numpy((u * s) @ v.T)


SHAPES = [(1, 6), (2, 7), (3, 3), (4, 9), (12, 5), (16, 24)]


def test_chance_is_the_mean_alignment_of_unrelated_weights():
    """Monte Carlo: the mean alignment of independent random matrices of uniformly random
    orientation is m(out) m(in) / 2 within four standard errors at every shape, and each
    plausible wrong formula (no halving for the positive part, the large-layer approximation
    1 / (π √(pq)), the smaller side twice) is more than four standard errors off at some
    shape, so the tolerance tells them apart."""
    rng = np.random.default_rng(0)
    wrong = {
        "no halving": lambda p, q: mean_abs_cosine(p) * mean_abs_cosine(q),
        "asymptotic": lambda p, q: 1 / (np.pi * np.sqrt(p * q)),
        "smaller side": lambda p, q: mean_abs_cosine(min(p, q)) ** 2 / 2,
    }
    rejected = dict.fromkeys(wrong, False)
    for rows, columns in SHAPES:
        scores = np.array(
            [
                compare_spectra(
                    "l",
                    random_orientation(rng, rows, columns),
                    random_orientation(rng, rows, columns),
                ).alignment
                for _ in range(3000)
            ]
        )
        mean, error = scores.mean(), scores.std(ddof=1) / np.sqrt(len(scores))
        layer = compare_spectra(
            "l", random_orientation(rng, rows, columns), random_orientation(rng, rows, columns)
        )
        assert layer.shape == (rows, columns)
        assert layer.chance == alignment_chance(rows, columns)
        assert abs(mean - alignment_chance(rows, columns)) < 4 * error, (rows, columns)
        for name, formula in wrong.items():
            rejected[name] |= abs(mean - formula(rows, columns)) > 4 * error
    assert all(rejected.values()), rejected


def test_a_conv_layer_s_chance_is_that_of_its_out_by_in_times_kernel_matrix():
    a, b = cnn_state(0), cnn_state(1)
    layers = {layer.name: layer for layer in layer_spectra(a, b)}
    assert layers["conv2.0"].shape == (6, 4 * 9)
    assert layers["conv2.0"].chance == alignment_chance(6, 36)
    assert layers["head"].shape == tuple(a["head.weight"].shape)


# --- what unrelated weights score after matching --------------------------------------------


def matcher(spec: PermutationSpec, seed: int = 0):
    """Weight matching as the run does it: (A, B) → π(B)."""
    return lambda a, b: apply_permutation(spec, weight_matching(spec, a, b, seed=seed), b)


def test_unrelated_weights_keep_each_parameter_s_shape_and_singular_values():
    rng = np.random.default_rng(0)
    state = cnn_state(0) | {"steps": torch.tensor([3, 4])}
    spectra = singular_values(state)
    assert "steps" not in spectra  # not floating point: kept as it is
    drawn = unrelated_state(rng, state, spectra)
    assert drawn["steps"] is state["steps"]
    for name, w in state.items():
        assert drawn[name].shape == w.shape, name
        if name in spectra:
            np.testing.assert_allclose(singular_values({name: drawn[name]})[name], spectra[name])
            assert not torch.allclose(drawn[name].double(), w.double())
    frame = haar_frame(rng, 9, 4)
    np.testing.assert_allclose(frame.T @ frame, np.eye(4), atol=1e-12)


def test_unrelated_weights_score_the_closed_form_before_matching():
    """Before matching, the draws are chance.py's reference: each run's 95 % interval of the
    mean covers m(out) m(in) / 2 about 95 % of the time (at least 80 % of 48 intervals, four
    layers in 12 runs), and the mean of all their draws is within four standard errors of it."""
    a, b = mlp_state(0, hidden=(12, 10, 8), in_features=9), mlp_state(1, (12, 10, 8), 9)
    align = matcher(mlp_spec(a))
    runs = [matched_chance(a, b, align, seed=seed) for seed in range(12)]
    shapes = {layer.name: layer.shape for layer in layer_spectra(a, b)}
    covered = [
        level["low"] <= alignment_chance(*shapes[name]) <= level["high"]
        for run in runs
        for name, level in run.before_matching().items()
    ]
    assert len(covered) == 48 and np.mean(covered) >= 0.8, np.mean(covered)
    pooled = np.concatenate([run.before for run in runs])
    for i, name in enumerate(runs[0].layers):
        values = pooled[:, i]
        error = values.std(ddof=1) / np.sqrt(len(values))
        assert abs(values.mean() - alignment_chance(*shapes[name])) < 4 * error, name


@pytest.mark.parametrize("architecture", ["mlp", "small-cnn"])
def test_matching_raises_unrelated_weights_alignment(architecture):
    """After matching, unrelated weights score above their level before it at every layer
    (in the mean of 24 draws, enough for the rise to stand out of the draws' scatter at these
    small widths), and the reported level is the mean of the draws after it."""
    a, b = (
        (mlp_state(0, (12, 10, 8), 9), mlp_state(1, (12, 10, 8), 9))
        if architecture == "mlp"
        else (cnn_state(0), cnn_state(1))
    )
    found = matched_chance(a, b, matcher(spec_for(architecture, a)), draws=24, seed=3)
    assert found.draws == 24 and found.after.shape == (24, 4)
    for i, (name, level) in enumerate(found.after_matching().items()):
        assert level["mean"] == pytest.approx(found.after[:, i].mean(), rel=1e-12)
        assert level["low"] < level["mean"] < level["high"]
        assert level["mean"] > found.before_matching()[name]["mean"], name
        shape = next(layer.shape for layer in layer_spectra(a, b) if layer.name == name)
        assert level["mean"] > alignment_chance(*shape), name


def test_a_permuted_copy_aligns_far_above_what_matching_gives_unrelated_weights():
    a = cnn_state(0, widths=(8, 16, 12))
    spec = cnn_spec(a)
    b = apply_permutation(spec, spec.random(np.random.default_rng(1)), a)
    after = layer_spectra(a, apply_permutation(spec, weight_matching(spec, a, b), b))
    levels = matched_chance(a, b, matcher(spec)).after_matching()
    for layer in after:
        assert layer.alignment == pytest.approx(1.0, abs=1e-9)
        assert levels[layer.name]["high"] < 0.5, (layer.name, levels[layer.name])


def test_matched_chance_is_reproducible_with_a_seed():
    a, b = mlp_state(0), mlp_state(1)
    align = matcher(mlp_spec(a))
    first, again = matched_chance(a, b, align, seed=5), matched_chance(a, b, align, seed=5)
    assert first.draws == DRAWS
    np.testing.assert_array_equal(first.after, again.after)
    np.testing.assert_array_equal(first.before, again.before)
    assert first.after_matching() == again.after_matching() and first.seed == 5
    seen: list[float] = []
    other = matched_chance(a, b, align, draws=3, seed=6, progress=seen.append)
    assert not np.array_equal(first.after[:3], other.after)
    assert len(seen) == 9 and seen == sorted(seen) and seen[-1] == 1.0  # after every step
    with pytest.raises(ValueError, match="two draws"):
        matched_chance(a, b, align, draws=1)


def test_large_networks_draw_fewer_unrelated_pairs_and_never_fewer_than_two():
    """Each draw is one weight matching of networks of A's size: the demo's MLP gets all the
    draws, a MiniLM- or BERT-sized state two (their matchings take minutes)."""
    assert draws_for(mlp_state(0)) == DRAWS

    def sized(parameters: int) -> dict[str, torch.Tensor]:  # views of one element: no memory
        return {
            "w": torch.zeros(1, 1).expand(parameters // 1000, 1000),
            "steps": torch.zeros(1, dtype=torch.int8).expand(10**8),
        }

    assert draws_for(sized(5_000_000)) == DRAWS  # integer buffers are not weights
    assert draws_for(sized(10_000_000)) == 4
    assert draws_for(sized(22_700_000)) == 2
    assert draws_for(sized(110_000_000)) == 2
