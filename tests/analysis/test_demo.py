"""Demo content: the shapes generator, the .npz files, rotation augmentation and training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from analysis.data.datasets import read_npz
from analysis.models.architectures import mlp
from analysis.models.checkpoints import default_layers, load_torchscript
from demo.vision import (
    DEMO_MODELS,
    SHAPE_NAMES,
    DemoModelSpec,
    _rasterise,
    accuracy,
    build_demo_models,
    load_digits_arrays,
    make_shapes,
    random_rotation,
    rotate,
    torch_threads,
    train_classifier,
    write_digits_npz,
    write_shapes_npz,
)

FACTORS = ("shape", "pos_x", "pos_y", "scale", "rotation_deg")


@pytest.fixture
def single_thread():
    """Tiny models train faster on one thread, and much faster on a busy machine."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    return load_digits_arrays()


def centred(kind: str, rotation_deg: float = 0.0, scale: float = 14.0, size: int = 32):
    """One ``1×1×size×size`` image of a shape at the image centre."""
    kind_, centre = np.array([SHAPE_NAMES.index(kind)]), np.array([size / 2])
    image = _rasterise(
        kind_, centre, centre, np.array([scale]), np.array([rotation_deg]), size, supersample=4
    )
    return torch.from_numpy(image[:, None])


# --- shapes generator ---------------------------------------------------------------------


def test_shapes_deterministic_for_a_seed_and_different_for_another():
    a, b, c = make_shapes(n=60, seed=3), make_shapes(n=60, seed=3), make_shapes(n=60, seed=4)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["x"], c["x"])
    for key in ("y", "pos_x", "scale", "rotation_deg"):
        assert not np.array_equal(a[key], c[key]), key


def test_shapes_arrays_and_factors_are_consistent():
    d = make_shapes(n=90, size=32, seed=0)
    assert d["x"].dtype == np.float32 and d["x"].shape == (90, 1, 32, 32)
    assert d["y"].dtype == np.int64 and d["y"].shape == (90,)
    assert 0.0 <= d["x"].min() and d["x"].max() <= 1.0
    assert list(d["label_names"]) == ["square", "disc", "triangle"]
    assert list(d["ids"][:2]) == ["shape-00000", "shape-00001"]
    assert len(set(d["ids"])) == 90
    # y and the shape column agree, and the classes are balanced.
    np.testing.assert_array_equal(d["label_names"][d["y"]], d["shape"])
    assert np.bincount(d["y"]).tolist() == [30, 30, 30]
    for key in FACTORS[1:]:
        assert d[key].dtype == np.float32 and d[key].shape == (90,)
    # Every image holds a bright shape well above the noise.
    assert (d["x"].reshape(90, -1).max(axis=1) > 0.9).all()
    assert (d["scale"] >= 0.1875 * 32 - 1e-4).all() and (d["scale"] <= 0.375 * 32 + 1e-4).all()
    assert d["rotation_deg"].min() >= -180 and d["rotation_deg"].max() <= 180


def test_shapes_are_drawn_where_the_factors_say():
    d = make_shapes(n=60, seed=5, noise=0.0)
    x = d["x"][:, 0].astype(np.float64)
    mass = x.sum(axis=(1, 2))
    # Equal-area shapes: coverage is scale², whatever the class (so none is clipped either).
    np.testing.assert_allclose(mass, d["scale"] ** 2, rtol=0.03)
    # Each shape's centre of mass is its centre (pos_x, pos_y).
    centres = np.arange(32) + 0.5
    cx = (x.sum(axis=1) * centres).sum(axis=1) / mass
    cy = (x.sum(axis=2) * centres).sum(axis=1) / mass
    np.testing.assert_allclose(cx, d["pos_x"], atol=0.1)
    np.testing.assert_allclose(cy, d["pos_y"], atol=0.1)


def test_unrotated_triangles_point_up():
    d = make_shapes(n=30, seed=1, noise=0.0, max_rotation_deg=0.0)
    assert (d["rotation_deg"] == 0).all()
    # Skewness of the vertical mass distribution (y points down): an apex-up triangle has its
    # wide base low, so a long tail upwards (negative skew); squares and discs are symmetric.
    rows = d["x"][:, 0].sum(axis=2).astype(np.float64)
    rows /= rows.sum(axis=1, keepdims=True)
    offsets = np.arange(32) + 0.5 - d["pos_y"][:, None]
    skew = (rows * offsets**3).sum(axis=1) / (rows * offsets**2).sum(axis=1) ** 1.5
    triangle = d["shape"] == "triangle"
    assert (skew[triangle] < -0.4).all()
    assert (np.abs(skew[~triangle]) < 0.2).all()  # up to pixel binning


# --- npz files ----------------------------------------------------------------------------


def test_read_npz_accepts_the_digits_file(tmp_path):
    path = tmp_path / "digits.npz"
    write_digits_npz(path)
    data = read_npz(path)
    raw = load_digits()
    assert data.n == 1797 and data.modality == "image"
    assert data.x.shape == (1797, 1, 8, 8)
    assert data.label_names == [str(k) for k in range(10)]
    np.testing.assert_array_equal(data.y, raw.target)
    np.testing.assert_allclose(data.x[:, 0], raw.images / 16, atol=1e-7)
    assert data.ids[0] == "digit-0000" and data.ids[-1] == "digit-1796"
    assert data.metadata == {}


def test_read_npz_accepts_the_shapes_file(tmp_path):
    path = tmp_path / "shapes.npz"
    write_shapes_npz(path, n=120, seed=2)
    data = read_npz(path)
    expected = make_shapes(n=120, seed=2)
    assert data.n == 120 and data.modality == "image"
    assert data.label_names == ["square", "disc", "triangle"]
    assert set(data.metadata) == set(FACTORS)
    np.testing.assert_array_equal(data.x, expected["x"])
    np.testing.assert_array_equal(data.y, expected["y"])
    for key in FACTORS:
        np.testing.assert_array_equal(data.metadata[key], expected[key])
    assert data.label_of(0) == str(expected["shape"][0])


# --- rotation -----------------------------------------------------------------------------


def test_random_rotation_by_zero_degrees_is_the_identity():
    batch = torch.rand(5, 3, 12, 20, generator=torch.Generator().manual_seed(0))
    out = random_rotation(batch, torch.Generator().manual_seed(1), max_degrees=0)
    torch.testing.assert_close(out, batch, atol=1e-6, rtol=0)


def test_rotate_is_counter_clockwise_like_the_rotation_factor():
    dot = torch.zeros(1, 1, 9, 9)
    dot[0, 0, 4, 7] = 1.0  # right of the centre
    up = rotate(dot, torch.tensor([90.0]))
    assert up[0, 0].argmax().item() == 1 * 9 + 4  # above the centre
    # Rotating an upright triangle matches drawing it with that rotation_deg, not its opposite.
    rotated = rotate(centred("triangle"), torch.tensor([40.0]))
    same = (rotated - centred("triangle", rotation_deg=40.0)).abs().sum()
    opposite = (rotated - centred("triangle", rotation_deg=-40.0)).abs().sum()
    assert same < 0.1 * rotated.sum() and same < 0.2 * opposite


def test_random_rotation_leaves_a_centred_disc_and_changes_a_square():
    generator = torch.Generator().manual_seed(0)
    discs = centred("disc").repeat(16, 1, 1, 1).float()
    squares = centred("square").repeat(16, 1, 1, 1).float()
    disc_change = (random_rotation(discs, generator) - discs).abs().sum(dim=(1, 2, 3))
    square_change = (random_rotation(squares, generator) - squares).abs().sum(dim=(1, 2, 3))
    mass = discs[0].sum()
    assert (disc_change < 0.06 * mass).all()  # interpolation blurs the rim a little
    assert (square_change > 0.12 * mass).sum() >= 12  # all but angles near a multiple of 90°
    # Angles differ within a batch and follow the generator.
    again = random_rotation(squares, torch.Generator().manual_seed(0))
    assert not torch.allclose(again[0], again[1], atol=1e-3)
    torch.testing.assert_close(again, random_rotation(squares, torch.Generator().manual_seed(0)))


# --- training -----------------------------------------------------------------------------


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.usefixtures("single_thread")
def test_same_seed_same_weights_other_seed_other_weights(digits):
    x, y = digits["x"], digits["y"]
    states, accuracies = [], []
    for build_seed, seed in [(10, 0), (11, 0), (12, 1)]:
        torch.manual_seed(build_seed)  # different initial weights: training re-draws them
        model = mlp(64, [32, 16], 10)
        accuracies.append(train_classifier(model, x, y, epochs=3, seed=seed))
        states.append(_state(model))
    same, other = states[1], states[2]
    for key, value in states[0].items():
        torch.testing.assert_close(same[key], value, atol=0, rtol=0)
    assert any(not torch.equal(other[k], v) for k, v in states[0].items())
    assert accuracies[0] == accuracies[1]
    assert all(a > 0.3 for a in accuracies)  # well above chance (0.1) after three epochs


@pytest.mark.usefixtures("single_thread")
def test_training_leaves_the_global_rng_alone(digits):
    model = mlp(64, [8], 10)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_classifier(model, digits["x"][:100], digits["y"][:100], epochs=1, seed=0)
    torch.testing.assert_close(torch.rand(3), expected)


@pytest.mark.usefixtures("single_thread")
def test_training_returns_the_accuracy_it_reaches(digits):
    model = mlp(64, [32], 10)
    reported = train_classifier(model, digits["x"], digits["y"], epochs=2, seed=0)
    assert reported == accuracy(model, digits["x"], digits["y"])
    assert not model.training


# --- demo models --------------------------------------------------------------------------


def test_demo_model_specs():
    specs = {s.name: s for s in DEMO_MODELS}
    assert {
        "mlp-digits-seed0",
        "mlp-digits-seed1",
        "cnn-digits",
        "cnn-shapes-plain",
        "cnn-shapes-rotaug",
    } <= set(specs)
    seed0, seed1 = specs["mlp-digits-seed0"], specs["mlp-digits-seed1"]
    assert (seed0.seed, seed1.seed) == (0, 1)
    assert dataclasses.replace(seed1, name=seed0.name, seed=0, description="") == (
        dataclasses.replace(seed0, description="")
    )
    plain, rotaug = specs["cnn-shapes-plain"], specs["cnn-shapes-rotaug"]
    assert not plain.rotation_augment and rotaug.rotation_augment
    assert dataclasses.replace(rotaug, name=plain.name, rotation_augment=False, description="") == (
        dataclasses.replace(plain, description="")
    )
    assert specs["cnn-digits"].widths == plain.widths == (16, 32, 64)


def test_saved_demo_models_load_with_their_blocks(tmp_path, digits):
    specs = [
        DemoModelSpec("tiny-cnn", "digits", "small-cnn", (4, 8), seed=0, epochs=1, description="c"),
        DemoModelSpec("tiny-mlp", "digits", "mlp", (32,), seed=0, epochs=3, description="m"),
    ]
    messages: list[str] = []
    threads = torch.get_num_threads()
    built = build_demo_models(tmp_path / "models", progress=messages.append, specs=specs)
    assert torch.get_num_threads() == threads  # training ran single-threaded, then restored
    assert [m.name for m in built] == ["tiny-cnn", "tiny-mlp"]
    assert any("tiny-mlp" in message for message in messages)
    expected_layers = {
        "tiny-cnn": ["conv1", "conv2", "pool", "head"],
        "tiny-mlp": ["flatten", "block1", "head"],
    }
    for entry in built:
        assert entry.path == tmp_path / "models" / f"{entry.name}.pt"
        assert (entry.dataset, entry.seed) == ("digits", 0)
        model = load_torchscript(entry.path)
        assert default_layers(model) == expected_layers[entry.name]
        # The archive holds the trained weights: it scores what training reported.
        assert accuracy(model, digits["x"], digits["y"]) == entry.train_accuracy
        assert entry.demo_accuracy == entry.train_accuracy
    assert built[1].train_accuracy > 0.3  # the MLP learnt something in three epochs
