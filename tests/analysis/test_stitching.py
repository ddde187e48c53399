"""Model stitching (analysis/stitching.py): the identity map reproduces the model, fitted
maps agree with scikit-learn, self-stitching recovers the model, the relative variant follows its
definition and its invariances, and bad input is refused in plain sentences."""

from __future__ import annotations

import json
import tracemalloc
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group
from sklearn.datasets import load_digits
from sklearn.linear_model import LinearRegression, Ridge
from torch import nn

from analysis.errors import InputError
from analysis.measures.relative import choose_anchors, relative_representation
from analysis.models.architectures import mlp, small_cnn
from analysis.models.base import OUTPUT
from analysis.models.extraction import extract_activations
from analysis.stitching import (
    METHODS,
    fit_linear_map,
    fit_position_map,
    mapped_positions,
    positions,
    stitched_outputs,
    stitching_matrix,
)

SEEDS = [0, 1, 2]


def trained(
    build: Callable[[], nn.Module], x: np.ndarray, y: np.ndarray, seed: int, steps: int
) -> nn.Module:
    """A model built and initialised under ``seed``, after a few full-batch Adam steps: enough
    to lift accuracy well above chance."""
    torch.manual_seed(seed)
    model = build()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimiser.step()
    return model.eval()


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


@pytest.fixture(scope="module")
def mlps(digits) -> list[nn.Module]:
    """Two digits MLPs trained briefly from different seeds."""
    x, y = digits
    return [trained(lambda: mlp(64, [32, 16], 10), x, y, seed, steps=40) for seed in (0, 1)]


def split_of(result) -> tuple[np.ndarray, np.ndarray]:
    return np.flatnonzero(~result.test), np.flatnonzero(result.test)


# --- the hooked forward ---------------------------------------------------------------------


def test_identity_stitch_reproduces_the_model_exactly(digits, mlps):
    """Replacing a layer's output by that layer's own output changes nothing, bit for bit (the
    model run in the same batches: float32 sums may depend on the batch size)."""
    x, y = digits
    model = mlps[0]
    layers = ["flatten", "block1", "block2", "head", "block1.0", OUTPUT]
    acts = extract_activations(model, x, layers, batch_size=100, device="cpu")
    logits = acts[OUTPUT]
    for layer in layers:
        stitched = stitched_outputs(model, layer, x, acts[layer], batch_size=100, device="cpu")
        assert np.array_equal(stitched, logits), layer
        assert np.mean(stitched.argmax(1) == y) == np.mean(logits.argmax(1) == y)


def test_replacement_changes_what_follows(digits, mlps):
    """The rest of B reads the replacement: zeroing block2 gives the head's bias everywhere."""
    x, _ = digits
    model = mlps[0]
    stitched = stitched_outputs(model, "block2", x[:5], np.zeros((5, 16)), device="cpu")
    bias = model.head.bias.detach().numpy()
    np.testing.assert_array_equal(stitched, np.tile(bias, (5, 1)))


# --- fitted maps ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("affine", [True, False])
def test_fitted_map_agrees_with_sklearn(seed, affine):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((120, 7)) * rng.uniform(0.5, 3.0, size=7) + rng.normal(0, 4, size=7)
    y = x @ rng.standard_normal((7, 3)) + rng.normal(0, 2, size=3)
    y += rng.standard_normal(y.shape)
    fitted = fit_linear_map(x, y, affine=affine)
    reference = LinearRegression(fit_intercept=affine).fit(x, y)
    np.testing.assert_allclose(fitted.weight, reference.coef_.T, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fitted.bias, reference.intercept_ + np.zeros(3), rtol=0, atol=1e-8)
    np.testing.assert_allclose(fitted.apply(x), reference.predict(x), rtol=0, atol=1e-8)


def test_fitted_map_agrees_with_sklearn_on_activations(digits, mlps):
    """On real layers (float32, post-ReLU, a few dead units) between two networks."""
    x, _ = digits
    a = extract_activations(mlps[0], x, ["block2"], device="cpu")["block2"]
    b = extract_activations(mlps[1], x, ["block1"], device="cpu")["block1"]
    fitted = fit_linear_map(a, b)
    reference = LinearRegression().fit(a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(fitted.weight, reference.coef_.T, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fitted.bias, reference.intercept_, rtol=0, atol=1e-8)


@pytest.mark.parametrize("seed", SEEDS)
def test_ridge_agrees_with_sklearn(seed):
    """``ridge`` is α in units of ‖X_c‖²_F; the intercept is not penalised."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((50, 9)) + 3.0
    y = rng.standard_normal((50, 4))
    for ridge in (1e-4, 1e-2, 1.0):
        fitted = fit_linear_map(x, y, ridge=ridge)
        alpha = ridge * np.sum((x - x.mean(0)) ** 2)
        reference = Ridge(alpha=alpha, solver="svd").fit(x, y)
        np.testing.assert_allclose(fitted.weight, reference.coef_.T, rtol=0, atol=1e-10)
        np.testing.assert_allclose(fitted.bias, reference.intercept_, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_underdetermined_map_is_the_minimum_norm_solution(seed):
    """Fewer samples than dimensions: the pseudo-inverse solution, which fits exactly."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((6, 20)), rng.standard_normal((6, 3))
    fitted = fit_linear_map(x, y, affine=False)
    np.testing.assert_allclose(fitted.weight, np.linalg.pinv(x) @ y, atol=1e-10)
    np.testing.assert_allclose(fitted.apply(x), y, atol=1e-10)


def test_constant_input_maps_to_the_mean():
    fitted = fit_linear_map(np.ones((10, 3)), np.arange(20.0).reshape(10, 2))
    np.testing.assert_array_equal(fitted.weight, np.zeros((3, 2)))
    np.testing.assert_allclose(fitted.bias, [9.0, 10.0])


# --- the matrix -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_stitching(digits, mlps):
    x, y = digits
    return stitching_matrix(mlps[0], mlps[0], x, y, device="cpu")


@pytest.fixture(scope="module")
def cross_stitching(digits, mlps):
    x, y = digits
    return stitching_matrix(mlps[0], mlps[1], x, y, device="cpu", seed=3)


def test_matrix_shape_and_baselines(digits, mlps, self_stitching):
    x, y = digits
    result = self_stitching
    assert result.layers_a == result.layers_b == ["flatten", "block1", "block2", "head"]
    assert result.dims_a == [64, 32, 16, 10]
    assert list(result.matrices) == list(METHODS)
    for matrix in result.matrices.values():
        assert np.shape(matrix.accuracy) == np.shape(matrix.r2) == (4, 4)
    train, test = split_of(result)
    assert (result.n_train, result.n_test) == (len(train), len(test)) == (1437, 360)
    with torch.inference_mode():
        logits = mlps[0](torch.from_numpy(x[test])).numpy()
    assert result.accuracy_b == result.accuracy_a == np.mean(logits.argmax(1) == y[test])
    assert result.chance == np.bincount(y[test]).max() / len(test)
    assert result.accuracy_b > 3 * result.chance  # trained
    assert result.warnings == []


def test_self_stitching_recovers_the_model(self_stitching):
    """A layer mapped into itself: R² 1 and the model's own accuracy, by the fitted map and by
    the zero-shot one; the fitted map also into a later layer that the earlier one determines
    (a linear head)."""
    result = self_stitching
    fitted = result.matrices["fitted"]
    for i in range(4):
        assert fitted.r2[i][i] == pytest.approx(1.0, abs=1e-6)
        assert fitted.accuracy[i][i] == pytest.approx(result.accuracy_b, abs=0.005)
    # block2 determines the head exactly (a linear layer)
    assert fitted.r2[2][3] == pytest.approx(1.0, abs=1e-6)
    # zero-shot: A's cosines are B's, and 300 anchors span each hidden layer, so B is rebuilt;
    # a few rare pixels are constant over the anchors, so they do not quite span the input
    relative = result.matrices["relative"]
    for i in range(4):
        assert relative.r2[i][i] == pytest.approx(1.0, abs=1e-6 if i else 1e-4)
        assert relative.accuracy[i][i] == pytest.approx(result.accuracy_b, abs=0.005)


def test_fitted_cell_by_hand(digits, mlps, cross_stitching):
    """One cell recomputed with scikit-learn's least squares and the hooked forward."""
    x, y = digits
    result = cross_stitching
    train, test = split_of(result)
    a = extract_activations(mlps[0], x, ["block1"], device="cpu")["block1"].astype(np.float64)
    b = extract_activations(mlps[1], x, ["block2"], device="cpu")["block2"].astype(np.float64)
    mapped = LinearRegression().fit(a[train], b[train]).predict(a[test])
    scores = stitched_outputs(mlps[1], "block2", x[test], mapped, device="cpu")
    i, j = result.layers_a.index("block1"), result.layers_b.index("block2")
    assert result.matrices["fitted"].accuracy[i][j] == np.mean(scores.argmax(1) == y[test])
    sst = np.sum((b[test] - b[train].mean(0)) ** 2)
    r2 = 1 - np.sum((mapped - b[test]) ** 2) / sst
    assert result.matrices["fitted"].r2[i][j] == pytest.approx(r2, abs=1e-8)


def test_relative_cell_by_hand(digits, mlps, cross_stitching):
    """The zero-shot map as defined: centred cosines to training anchors in each network; for
    each held-out sample, the least-squares vector whose inner products with B's unit anchors
    match A's cosines (numpy's ``lstsq``), scaled by the sample's norm relative to A's typical
    norm times B's."""
    x, y = digits
    result = cross_stitching
    train, test = split_of(result)
    anchors = train[choose_anchors(len(train), min(300, len(train) // 2), result.seed)]
    a = extract_activations(mlps[0], x, ["block2"], device="cpu")["block2"].astype(np.float64)
    b = extract_activations(mlps[1], x, ["block1"], device="cpu")["block1"].astype(np.float64)
    ca, cb = a - a[train].mean(0), b - b[train].mean(0)
    rel_a = relative_representation(ca, anchors)
    unit = cb[anchors] / np.linalg.norm(cb[anchors], axis=1, keepdims=True)
    rcond = 300 * np.finfo(np.float32).eps
    rms_a, rms_b = (np.sqrt(np.mean(np.sum(c[train] ** 2, 1))) for c in (ca, cb))
    mapped = np.array(
        [
            np.linalg.lstsq(unit, rel_a[t], rcond=rcond)[0] * np.linalg.norm(ca[t]) / rms_a * rms_b
            for t in test
        ]
    ) + b[train].mean(0)
    scores = stitched_outputs(mlps[1], "block1", x[test], mapped, device="cpu")
    i, j = result.layers_a.index("block2"), result.layers_b.index("block1")
    assert result.matrices["relative"].accuracy[i][j] == np.mean(scores.argmax(1) == y[test])
    sst = np.sum((b[test] - b[train].mean(0)) ** 2)
    r2 = 1 - np.sum((mapped - b[test]) ** 2) / sst
    assert result.matrices["relative"].r2[i][j] == pytest.approx(r2, abs=1e-8)
    assert "300 anchors" in result.matrices["relative"].estimator


def test_cross_stitching_between_seeds(cross_stitching):
    """Two seeds of one architecture: matching layers stitch well by a fitted map."""
    result = cross_stitching
    fitted = result.matrices["fitted"]
    for i in range(1, 4):
        assert fitted.accuracy[i][i] >= result.accuracy_b - 0.05
    assert np.all(np.array(fitted.accuracy) > 2 * result.chance)


@pytest.mark.parametrize("seed", [0, 1])
def test_both_maps_ignore_a_rotation_and_scaling_of_a_layer(digits, mlps, seed):
    """A's block2 followed by 3·Q, Q orthogonal: the fitted map (invariant to any invertible
    linear map of A's layer) and the zero-shot one (cosines and norms relative to the layer's
    own are invariant to rotations and scaling) stitch it as they stitch block2."""
    x, y = digits
    q = torch.from_numpy(ortho_group.rvs(16, random_state=seed).astype(np.float32))
    rotate = nn.Linear(16, 16, bias=False)
    rotate.weight.data = 3 * q.T.contiguous()
    parts = OrderedDict(mlps[0].named_children())
    rotated = nn.Sequential(OrderedDict([*list(parts.items())[:-1], ("rotate", rotate)]))
    result = stitching_matrix(
        rotated, mlps[1], x, y, ["block2", "rotate"], ["block1", "head"], device="cpu"
    )
    for matrix in result.matrices.values():
        for j in range(2):
            assert matrix.r2[0][j] == pytest.approx(matrix.r2[1][j], rel=1e-5, abs=1e-5)
            assert matrix.accuracy[0][j] == pytest.approx(matrix.accuracy[1][j], abs=2 / 360)
    assert result.accuracy_a is None  # A's output is the rotated block2, not class scores
    assert "no accuracy of A alone" in result.warnings[0]


def test_options_and_json(digits, mlps):
    x, y = digits
    result = stitching_matrix(
        mlps[0],
        mlps[1],
        x[:400],
        y[:400],
        ["block1"],
        ["block2", OUTPUT],
        methods=["fitted"],
        affine=False,
        ridge=1e-3,
        test_fraction=0.25,
        seed=2,
        device="cpu",
    )
    assert list(result.matrices) == ["fitted"]
    assert result.matrices["fitted"].estimator.startswith("linear least squares with ridge")
    assert (result.n_train, result.n_test) == (300, 100)
    page = json.loads(json.dumps(result.to_json()))
    assert page["layers_b"] == ["block2", OUTPUT]
    assert page["matrices"]["fitted"]["accuracy"] == result.matrices["fitted"].accuracy
    assert page["test_rows"] == np.flatnonzero(result.test).tolist()
    assert page["accuracy_b"] == result.accuracy_b and page["chance"] == result.chance


def test_progress_reaches_one(digits, mlps):
    x, y = digits
    seen: list[float] = []
    stitching_matrix(
        mlps[0],
        mlps[1],
        x[:200],
        y[:200],
        ["block2"],
        ["block2"],
        device="cpu",
        progress=seen.append,
    )
    assert seen == sorted(seen) and seen[-1] == 1.0


# --- conv maps and refusals -----------------------------------------------------------------


@pytest.fixture(scope="module")
def cnn(digits) -> nn.Module:
    x, y = digits
    return trained(lambda: small_cnn(1, [4, 8], 10), x.reshape(-1, 1, 8, 8), y, 0, steps=20)


@pytest.fixture(scope="module")
def cnns(digits, cnn) -> list[nn.Module]:
    """The CNN above and one trained likewise from another seed."""
    x, y = digits
    return [cnn, trained(lambda: small_cnn(1, [4, 8], 10), x.reshape(-1, 1, 8, 8), y, 1, 20)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("affine", [True, False])
def test_fitted_position_map_agrees_with_sklearn_on_the_rows(seed, affine):
    """The 1×1 convolution is scikit-learn's least squares on the n·H·W × C rows of the maps,
    whatever the blocks its normal equations are accumulated in."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 5, 3, 4)) * rng.uniform(0.5, 3.0, size=(1, 5, 1, 1)) + 2.0
    y = np.einsum("nchw,cd->ndhw", x, rng.standard_normal((5, 3))) + rng.normal(0, 2, (3, 1, 1))
    y += rng.standard_normal(y.shape)
    rows_x, rows_y = positions(x), positions(y)
    assert rows_x.shape == (40 * 12, 5)
    np.testing.assert_array_equal(rows_x[13], x[1, :, 0, 1])  # sample 1, row 0, column 1
    reference = LinearRegression(fit_intercept=affine).fit(rows_x, rows_y)
    for block_rows in (None, 7, 12):
        fitted = fit_position_map(x, y, affine=affine, block_rows=block_rows)
        np.testing.assert_allclose(fitted.weight, reference.coef_.T, rtol=0, atol=1e-8)
        np.testing.assert_allclose(fitted.bias, reference.intercept_ + np.zeros(3), atol=1e-8)
        predicted = reference.predict(rows_x).reshape(40, 3, 4, 3).transpose(0, 3, 1, 2)
        np.testing.assert_allclose(mapped_positions(fitted, x), predicted, rtol=0, atol=1e-8)


def test_fitted_position_map_never_holds_all_the_rows():
    """204,800 positions × (8 + 8) channels would take 26 MB as float64 rows; fitted in blocks
    of 4,096 rows the fit's peak allocation stays a small fraction of that, and the map is the
    one fitted from all the rows at once."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 8, 32, 32)).astype(np.float32)
    y = (x[:, ::-1] * 2.0 + rng.standard_normal(x.shape)).astype(np.float32)
    tracemalloc.start()
    try:
        fitted = fit_position_map(x, y, block_rows=4096)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 26e6 / 4
    whole = fit_linear_map(positions(x), positions(y))
    np.testing.assert_allclose(fitted.weight, whole.weight, rtol=0, atol=1e-10)
    np.testing.assert_allclose(fitted.bias, whole.bias, rtol=0, atol=1e-10)


def test_fitted_position_map_with_ridge_and_dead_channels(digits, cnn):
    """On a real conv layer (float32, post-ReLU): the ridge is α in units of ‖X_c‖²_F over all
    rows, as scikit-learn's Ridge on the rows; a dead channel is cut from the rank, as for the
    vector maps."""
    x, _ = digits
    images = x.reshape(-1, 1, 8, 8)[:300]
    acts = extract_activations(cnn, images, ["conv1"], "flatten", device="cpu")
    a = acts["conv1"].reshape(-1, 4, 8, 8)
    b = np.tanh(a.astype(np.float64) - 0.5)  # not a linear function of a
    rows = positions(a).astype(np.float64)
    for ridge in (1e-4, 1e-2):
        fitted = fit_position_map(a, b, ridge=ridge, block_rows=1000)
        alpha = ridge * np.sum((rows - rows.mean(0)) ** 2)
        reference = Ridge(alpha=alpha, solver="svd").fit(rows, positions(b))
        np.testing.assert_allclose(fitted.weight, reference.coef_.T, rtol=0, atol=1e-8)
        np.testing.assert_allclose(fitted.bias, reference.intercept_, rtol=0, atol=1e-8)
    dead = a.copy()
    dead[:, 2] = 0.0  # a channel that never fires
    fitted = fit_position_map(dead, b)
    np.testing.assert_allclose(fitted.weight[2], np.zeros(4), rtol=0, atol=1e-12)
    reference = LinearRegression().fit(positions(dead).astype(np.float64), positions(b))
    np.testing.assert_allclose(fitted.weight, reference.coef_.T, rtol=0, atol=1e-8)


def test_identity_stitch_of_a_conv_map_reproduces_the_model_exactly(digits, cnn):
    """A conv layer's output replaced by itself, as a feature map, changes nothing."""
    x, y = digits
    images = x.reshape(-1, 1, 8, 8)
    acts = extract_activations(cnn, images, ["conv1", "conv2", OUTPUT], "flatten", 100, "cpu")
    for layer, shape in (("conv1", (4, 8, 8)), ("conv2", (8, 4, 4))):
        maps = acts[layer].reshape(-1, *shape)
        stitched = stitched_outputs(cnn, layer, images, maps, batch_size=100, device="cpu")
        assert np.array_equal(stitched, acts[OUTPUT]), layer


def test_self_stitching_a_cnn_at_its_feature_maps(digits, cnn):
    """Every default layer of the CNN, conv maps included: each conv map into itself by a
    fitted 1×1 convolution gives R² 1 and B's own accuracy exactly; maps of two grids, a map
    and a vector, and the zero-shot variant at a map are refused per cell in one sentence."""
    x, y = digits
    images = x.reshape(-1, 1, 8, 8)
    result = stitching_matrix(cnn, cnn, images, y, device="cpu")
    assert result.layers_a == result.layers_b == ["conv1", "conv2", "pool", "head"]
    assert result.shapes_a == [[4, 8, 8], [8, 4, 4], [8], [10]]
    assert result.dims_a == [256, 128, 8, 10]
    fitted = result.matrices["fitted"]
    for i in range(4):
        assert fitted.accuracy[i][i] == result.accuracy_b
        assert fitted.r2[i][i] == pytest.approx(1.0, abs=1e-6)
        assert fitted.refused[i][i] is None
    assert result.accuracy_b > 1.5 * result.chance
    assert fitted.accuracy[0][1] is None and fitted.r2[0][1] is None
    assert fitted.refused[0][1] == (
        "A's conv1 outputs maps of 4 channels over 8 × 8 positions and B's conv2 maps of 8 "
        "channels over 4 × 4 positions: a 1×1 convolution needs the same grid in both, and "
        "maps are not resized"
    )
    assert fitted.refused[1][2] == (
        "A's conv2 outputs maps of 8 channels over 4 × 4 positions and B's pool vectors of 8: "
        "stitching maps vectors into vectors and feature maps into feature maps"
    )
    relative = result.matrices["relative"]
    for i in range(4):
        for j in range(4):
            computed = i >= 2 and j >= 2
            assert (relative.accuracy[i][j] is not None) == computed
            assert (relative.refused[i][j] is None) == computed
    assert relative.refused[0][2] == (
        "the zero-shot variant stitches per-sample vectors only: relative representations of "
        "the positions of a feature map are not defined"
    )
    assert result.warnings == [
        "the zero-shot variant stitches per-sample vectors only: its cells from or into the "
        "feature maps (A's conv1, A's conv2, B's conv1, B's conv2) are empty"
    ]
    page = json.loads(json.dumps(result.to_json()))
    assert page["matrices"]["fitted"]["accuracy"][0][1] is None
    assert page["matrices"]["fitted"]["refused"][0][1] == fitted.refused[0][1]


def test_conv_cell_by_hand(digits, cnns):
    """A conv1 → B conv1 between two seeds recomputed: scikit-learn's least squares on the
    positions of the training samples, applied at every position of the held-out ones, and
    B run from conv1 on."""
    x, y = digits
    images = x.reshape(-1, 1, 8, 8)
    result = stitching_matrix(*cnns, images, y, ["conv1", "conv2"], ["conv1"], seed=3, device="cpu")
    train, test = split_of(result)
    a = extract_activations(cnns[0], images, ["conv1"], "flatten", device="cpu")["conv1"]
    b = extract_activations(cnns[1], images, ["conv1"], "flatten", device="cpu")["conv1"]
    maps_a, maps_b = (acts.reshape(-1, 4, 8, 8).astype(np.float64) for acts in (a, b))
    reference = LinearRegression().fit(positions(maps_a[train]), positions(maps_b[train]))
    mapped = reference.predict(positions(maps_a[test])).reshape(-1, 8, 8, 4).transpose(0, 3, 1, 2)
    scores = stitched_outputs(cnns[1], "conv1", images[test], mapped, device="cpu")
    fitted = result.matrices["fitted"]
    assert fitted.accuracy[0][0] == np.mean(scores.argmax(1) == y[test])
    b = b.astype(np.float64)
    sst = np.sum((b[test] - b[train].mean(0)) ** 2)
    r2 = 1 - np.sum((mapped.reshape(len(test), -1) - b[test]) ** 2) / sst
    assert fitted.r2[0][0] == pytest.approx(r2, abs=1e-8)
    assert fitted.accuracy[1][0] is None and "maps are not resized" in fitted.refused[1][0]
    assert "between two feature maps a 1×1 convolution" in fitted.estimator
    assert "between vectors one map of the vectors" in fitted.estimator  # a cell's hover reads it


def test_outputs_neither_vectors_nor_maps_are_left_out_or_refused(digits, mlps):
    """Token-like outputs (n × T × d) are neither: left out by default, refused by name."""
    x, y = digits
    sequences = nn.Sequential(
        OrderedDict(
            unflatten=nn.Unflatten(1, (4, 16)),
            flatten=nn.Flatten(),
            head=nn.Linear(64, 10),
        )
    )
    result = stitching_matrix(mlps[0], sequences, x[:200], y[:200], ["head"], device="cpu")
    assert result.layers_b == ["flatten", "head"]
    assert result.warnings[0] == (
        "left out layers of model B whose outputs are neither vectors nor feature maps: unflatten"
    )
    assert refusal(
        lambda: stitching_matrix(mlps[0], sequences, x, y, ["head"], ["unflatten"], device="cpu")
    ) == (
        "layer 'unflatten' of model B outputs 4 × 16 values per sample, neither a vector nor a "
        "feature map (C × H × W); stitching maps vectors and feature maps, so choose such a layer"
    )
    assert refusal(lambda: fit_position_map(np.zeros((5, 2, 3, 3)), np.zeros((5, 2, 2, 2)))) == (
        "a 1×1 convolution maps feature maps of one grid with one map per sample, got "
        "5 × 2 × 3 × 3 and 5 × 2 × 2 × 2"
    )


def refusal(call) -> str:
    with pytest.raises(InputError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_refusals(digits, mlps):
    x, y = digits
    x, y = x[:100], y[:100]
    a, b = mlps

    def matrix(**kwargs):
        return lambda: stitching_matrix(a, b, x, kwargs.pop("labels", y), device="cpu", **kwargs)

    assert "choose stitching methods among fitted, relative" in refusal(matrix(methods=["cka"]))
    assert "test_fraction must be between 0 and 1" in refusal(matrix(test_fraction=1.0))
    assert "stitching needs at least 4 and 2" in refusal(
        lambda: stitching_matrix(a, b, x[:4], y[:4], device="cpu")
    )
    assert "model B scores 10 classes (0 to 9)" in refusal(matrix(labels=y + 1))
    assert "one integer label per sample (100)" in refusal(matrix(labels=y.astype(float)))
    assert "n_anchors must be a whole number from 1 to 79" in refusal(matrix(n_anchors=80))
    assert "ridge penalty must be a number ≥ 0" in refusal(matrix(ridge=-1.0))
    assert "model has no layer(s) block9" in refusal(matrix(layers_b=["block9"]))
    assert "a layer of model A is named twice" in refusal(matrix(layers_a=["head", "head"]))
    sequences = nn.Sequential(
        OrderedDict(lin=nn.Linear(64, 64), unflatten=nn.Unflatten(1, (4, 16)))
    )
    assert refusal(
        lambda: stitching_matrix(a, sequences, x, y, ["head"], ["lin"], device="cpu")
    ) == ("model B outputs 4 × 16 per sample, not a vector of class scores")
    scripted = torch.jit.script(b)
    assert "TorchScript" in refusal(lambda: stitching_matrix(a, scripted, x, y, device="cpu"))
    assert "model B has no layer 'nope'" in refusal(
        lambda: stitched_outputs(b, "nope", x, np.zeros((100, 3)))
    )
    assert "one vector or map per sample (100)" in refusal(
        lambda: stitched_outputs(b, "block1", x, np.zeros((99, 32)))
    )
    assert refusal(lambda: stitched_outputs(b, "block1", x, np.zeros((100, 5)), device="cpu")) == (
        "layer 'block1' of B outputs (100, 32) for this batch; the stitched activations have "
        "shape (100, 5)"
    )


def test_a_layer_run_twice_is_refused(digits):
    x, _ = digits

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Linear(64, 64)
            self.head = nn.Linear(64, 10)

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.head(self.inner(self.inner(t)))

    assert (
        refusal(lambda: stitched_outputs(Twice(), "inner", x[:8], np.zeros((8, 64)), device="cpu"))
        == "layer 'inner' of B runs more than once per forward"
    )


def test_each_model_is_extracted_once_and_b_run_once_per_cell(digits, mlps):
    """Forwards over 400 samples in batches of 256 (80 held out): one of two samples to read
    the layers' shapes and two to extract, for each model; then one per cell for B."""
    x, y = digits
    calls = {"a": 0, "b": 0}
    handles = [
        model.register_forward_pre_hook(lambda *_, key=key: calls.__setitem__(key, calls[key] + 1))
        for model, key in zip(mlps, "ab", strict=True)
    ]
    try:
        stitching_matrix(
            mlps[0],
            mlps[1],
            x[:400],
            y[:400],
            ["block1", "block2"],
            ["block1", "head"],
            device="cpu",
        )
    finally:
        for handle in handles:
            handle.remove()
    assert calls == {"a": 1 + 2, "b": 1 + 2 + len(METHODS) * 2 * 2}


def test_across_architectures(digits, cnn, mlps):
    """The CNN's pooled features into the MLP's last block: both read the 1×8×8 images (the
    MLP flattens them); each is scored alone on the same held-out samples."""
    x, y = digits
    images = x.reshape(-1, 1, 8, 8)
    result = stitching_matrix(cnn, mlps[1], images, y, ["pool"], ["block2"], device="cpu")
    _, test = split_of(result)
    alone = extract_activations(cnn, images, [OUTPUT], device="cpu")[OUTPUT][test]
    assert result.accuracy_a == np.mean(alone.argmax(1) == y[test])
    assert result.matrices["fitted"].accuracy[0][0] > 2 * result.chance
    assert result.dims_a == [8] and result.dims_b == [16]
