"""Demo content built from real offline data: two datasets and a handful of small trained models.

- ``digits``: scikit-learn's 1,797 handwritten 8×8 digits (bundled with scikit-learn).
- ``shapes``: procedurally drawn grey squares, discs and triangles on black, with the factors
  that generated them (position, scale, rotation) as metadata columns.

The models are trained here on the CPU in well under a minute and saved as TorchScript, so the
demo needs no download. Everything is deterministic given the seeds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.models.architectures import mlp, small_cnn

SHAPE_NAMES = ("square", "disc", "triangle")
DIGIT_NAMES = tuple(str(d) for d in range(10))

# Sizes are "equal-area side lengths": every shape of scale s covers s² pixels, so total
# brightness tells nothing about the class. Circumradius of each shape in units of s:
_CIRCUMRADIUS = {
    "square": math.sqrt(2) / 2,
    "disc": 1 / math.sqrt(math.pi),
    "triangle": 1 / math.sqrt(3 * math.sqrt(3) / 4),
}
_MAX_CIRCUMRADIUS = max(_CIRCUMRADIUS.values())


# --------------------------------------------------------------------------------------------
# Datasets


def load_digits_arrays() -> dict[str, np.ndarray]:
    """scikit-learn's digits as ``.npz``-ready arrays: ``x`` (1797, 1, 8, 8) in [0, 1], ``y``,
    ``ids`` and ``label_names``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    n = len(digits.target)
    return {
        "x": (digits.images / 16.0).astype(np.float32)[:, None],
        "y": digits.target.astype(np.int64),
        "ids": np.array([f"digit-{i:04d}" for i in range(n)]),
        "label_names": np.array(DIGIT_NAMES),
    }


def write_digits_npz(path: str | Path) -> None:
    """Write the digits dataset in RepLens's ``.npz`` upload format."""
    np.savez(path, **load_digits_arrays())  # type: ignore[arg-type]  # see write_shapes_npz


def make_shapes(
    n: int = 3000,
    size: int = 32,
    seed: int = 0,
    *,
    max_rotation_deg: float = 180.0,
    scale_range: tuple[float, float] = (0.1875, 0.375),
    noise: float = 0.02,
    supersample: int = 4,
) -> dict[str, np.ndarray]:
    """Grey ``size``×``size`` images of squares, discs and triangles on black.

    Classes are balanced (``y``: 0 square, 1 disc, 2 triangle). Each shape has a random
    ``scale`` (side of the square of equal area, in pixels; drawn from ``scale_range`` × size),
    ``rotation_deg`` (counter-clockwise on screen, uniform in ±``max_rotation_deg``; a square is
    symmetric under 90°, a triangle under 120°) and centre ``pos_x``, ``pos_y`` (pixels from the
    top-left corner, y pointing down). Centres are uniform in a disc around the image centre
    small enough that the shape stays in frame under any rotation about the image centre.
    Pixels are anti-aliased by ``supersample``² sub-pixel samples; Gaussian ``noise`` is added
    and the result clipped to [0, 1].
    """
    if n < 1 or size < 4 or supersample < 1:
        raise ValueError("need n >= 1, size >= 4 and supersample >= 1")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % len(SHAPE_NAMES)).astype(np.int64)
    scale = rng.uniform(*scale_range, size=n) * size
    rotation = rng.uniform(-max_rotation_deg, max_rotation_deg, size=n)
    # Uniform in a disc of radius ``reach`` (depends on scale only, never on the class).
    reach = np.maximum(size / 2 - _MAX_CIRCUMRADIUS * scale - 0.5, 0.0)
    radius = reach * np.sqrt(rng.uniform(size=n))
    angle = rng.uniform(0, 2 * np.pi, size=n)
    pos_x = size / 2 + radius * np.cos(angle)
    pos_y = size / 2 + radius * np.sin(angle)

    x = np.empty((n, 1, size, size), dtype=np.float32)
    chunk = max(1, 2**22 // (size * supersample) ** 2)
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        x[sl, 0] = _rasterise(
            y[sl], pos_x[sl], pos_y[sl], scale[sl], rotation[sl], size, supersample
        )
    if noise > 0:
        x += rng.normal(0.0, noise, size=x.shape).astype(np.float32)
    np.clip(x, 0.0, 1.0, out=x)
    return {
        "x": x,
        "y": y,
        "ids": np.array([f"shape-{i:05d}" for i in range(n)]),
        "label_names": np.array(SHAPE_NAMES),
        "shape": np.array(SHAPE_NAMES)[y],
        "pos_x": pos_x.astype(np.float32),
        "pos_y": pos_y.astype(np.float32),
        "scale": scale.astype(np.float32),
        "rotation_deg": rotation.astype(np.float32),
    }


def _rasterise(
    y: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    scale: np.ndarray,
    rotation_deg: np.ndarray,
    size: int,
    supersample: int,
) -> np.ndarray:
    """Coverage (b, size, size) of each shape, averaged over supersample² sub-pixel points."""
    b = len(y)
    grid = (np.arange(size * supersample, dtype=np.float32) + 0.5) / supersample

    def col(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float32)[:, None, None]

    dx = grid[None, None, :] - col(cx)
    dy = col(cy) - grid[None, :, None]  # y up, so rotations are counter-clockwise on screen
    theta = np.deg2rad(rotation_deg)
    cos, sin = col(np.cos(theta)), col(np.sin(theta))
    # Shape-local coordinates (rotate back by -theta), in units of the scale.
    u = (cos * dx + sin * dy) / col(scale)
    v = (cos * dy - sin * dx) / col(scale)
    square = np.maximum(np.abs(u), np.abs(v)) <= 0.5
    disc = u * u + v * v <= 1 / math.pi
    # Equilateral triangle pointing up: inside all three edges, whose outward normals point at
    # 270°, 30° and 150°; the inradius is half the circumradius.
    inradius = _CIRCUMRADIUS["triangle"] / 2
    triangle = np.ones_like(square)
    for a in np.deg2rad([270.0, 30.0, 150.0]):
        triangle &= u * np.float32(math.cos(a)) + v * np.float32(math.sin(a)) <= inradius
    inside = np.where(col(y == 0), square, np.where(col(y == 1), disc, triangle)).astype(np.float32)
    return inside.reshape(b, size, supersample, size, supersample).mean(axis=(2, 4))


def write_shapes_npz(path: str | Path, n: int = 3000, seed: int = 0) -> None:
    """Write :func:`make_shapes` in RepLens's ``.npz`` upload format (factors as metadata)."""
    # numpy's stubs fear a name could fill savez's allow_pickle; none of these is that name
    np.savez(path, **make_shapes(n=n, seed=seed))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Augmentation and training


def rotate(batch: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image of an ``N×C×H×W`` batch counter-clockwise about its centre by
    ``degrees`` (one per image), bilinearly, filling with zeros."""
    n, _, h, w = batch.shape
    theta = torch.deg2rad(degrees.to(batch.dtype))
    cos, sin = torch.cos(theta), torch.sin(theta)
    # affine_grid maps output to input coordinates in [-1, 1] (y down); the aspect factors keep
    # the rotation a rotation in pixels for non-square images.
    zero = torch.zeros_like(cos)
    matrix = torch.stack(
        [
            torch.stack([cos, -sin * h / w, zero], dim=1),
            torch.stack([sin * w / h, cos, zero], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(matrix, [n, batch.shape[1], h, w], align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_rotation(
    batch: torch.Tensor, generator: torch.Generator, max_degrees: float = 180.0
) -> torch.Tensor:
    """Rotate each image by an angle drawn uniformly from ±``max_degrees`` (see :func:`rotate`)."""
    u = torch.rand(len(batch), generator=generator, device=generator.device)
    return rotate(batch, ((2 * u - 1) * max_degrees).to(batch.device))


Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def initialize(model: nn.Module) -> None:
    """Re-draw the parameters from the global torch RNG: He (Kaiming) normal weights and zero
    biases for every Conv and Linear layer, each other layer's own ``reset_parameters``.

    He initialisation keeps activations from shrinking layer by layer in these ReLU networks;
    with PyTorch's default the shape CNNs sit on a long plateau at chance before learning.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif module is not model:
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (``None``: unchanged), then restore."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y`` (in eval mode, without gradients)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            chunk = np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32)
            logits = model(torch.from_numpy(chunk))
            correct += int((logits.argmax(1).numpy() == y[start : start + batch_size]).sum())
    return correct / len(x)


def train_classifier(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    seed: int,
    augment: Augment | None = None,
    batch_size: int = 64,
    lr: float = 2e-3,
    reinitialize: bool = True,
) -> float:
    """Train ``model`` in place with Adam and cross-entropy; return its final training accuracy.

    With ``reinitialize`` the parameters are first re-drawn from ``seed`` (:func:`initialize`),
    so the trained weights depend only on the arguments: two calls with the same seed (and the
    same number of torch threads) give identical weights.
    Shuffling and ``augment(batch, generator)`` use a generator seeded with ``seed``; the
    global torch RNG is left as it was. The learning rate follows a cosine schedule to zero.
    The returned accuracy is on the un-augmented ``x``; the model is left in eval mode.
    """
    xs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    ys = torch.from_numpy(np.asarray(y, dtype=np.int64))
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if reinitialize:
            initialize(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        steps = epochs * math.ceil(len(xs) / batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(xs), generator=generator)
            for start in range(0, len(xs), batch_size):
                index = order[start : start + batch_size]
                inputs = xs[index]
                if augment is not None:
                    inputs = augment(inputs, generator)
                loss = F.cross_entropy(model(inputs), ys[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return accuracy(model, x, np.asarray(y))


# --------------------------------------------------------------------------------------------
# Demo models

SHAPES_TRAIN_SEED = 1
"""Seed of the shapes the demo CNNs train on; the shipped ``shapes`` dataset uses seed 0."""


@dataclass(frozen=True)
class DemoModelSpec:
    """How to build and train one demo model."""

    name: str
    dataset: str  # "digits" or "shapes"
    architecture: str  # a key of analysis.models.architectures.ARCHITECTURES
    widths: tuple[int, ...]
    seed: int
    epochs: int
    description: str
    rotation_augment: bool = False
    batch_size: int = 64
    lr: float = 2e-3
    init_from: str | None = None  # continue training this earlier spec's weights (a new version)

    def build(self) -> nn.Sequential:
        """The untrained model (grey images: 8×8 digits, 32×32 shapes)."""
        digits = self.dataset == "digits"
        n_classes = len(DIGIT_NAMES) if digits else len(SHAPE_NAMES)
        if self.architecture == "mlp":
            return mlp(8 * 8 if digits else 32 * 32, self.widths, n_classes)
        if self.architecture == "small-cnn":
            return small_cnn(1, self.widths, n_classes)
        raise ValueError(f"unknown demo architecture {self.architecture!r}")


@dataclass(frozen=True)
class DemoModel:
    """A trained demo model saved as TorchScript."""

    name: str
    path: Path
    dataset: str
    architecture: str
    seed: int
    description: str
    train_accuracy: float
    demo_accuracy: float  # on the shipped dataset (held-out shapes; for digits the train set)


_MLP_DIGITS = "MLP 64→128→64→32→10 on the digits, seed {seed}. "
DEMO_MODELS: list[DemoModelSpec] = [
    DemoModelSpec(
        "mlp-digits-seed0",
        "digits",
        "mlp",
        (128, 64, 32),
        seed=0,
        epochs=30,
        description=_MLP_DIGITS.format(seed=0)
        + "Identical to mlp-digits-seed1 except for the random seed.",
    ),
    DemoModelSpec(
        "mlp-digits-seed1",
        "digits",
        "mlp",
        (128, 64, 32),
        seed=1,
        epochs=30,
        description=_MLP_DIGITS.format(seed=1)
        + "Identical to mlp-digits-seed0 except for the random seed.",
    ),
    DemoModelSpec(
        "mlp-digits-seed0-v2",
        "digits",
        "mlp",
        (128, 64, 32),
        seed=2,
        epochs=5,
        lr=5e-4,
        init_from="mlp-digits-seed0",
        description="A new version of mlp-digits-seed0: its weights trained 5 more epochs "
        "(another shuffling seed, a lower learning rate), not retrained from scratch.",
    ),
    DemoModelSpec(
        "cnn-digits",
        "digits",
        "small-cnn",
        (16, 32, 64),
        seed=0,
        epochs=20,
        description="Small CNN (3×3 convs 16, 32, 64 → average pool → head) on the digits.",
    ),
    DemoModelSpec(
        "cnn-shapes-plain",
        "shapes",
        "small-cnn",
        (16, 32, 64),
        seed=0,
        epochs=10,
        batch_size=32,
        lr=3e-3,
        description="Small CNN trained on upright squares, discs and triangles (no rotation "
        "in its training data), without augmentation.",
    ),
    DemoModelSpec(
        "cnn-shapes-rotaug",
        "shapes",
        "small-cnn",
        (16, 32, 64),
        seed=0,
        epochs=10,
        batch_size=32,
        lr=3e-3,
        rotation_augment=True,
        description="Same CNN and upright training shapes as cnn-shapes-plain, but every "
        "batch randomly rotated by up to ±180° (random rotation augmentation).",
    ),
]


def build_demo_models(
    out_dir: str | Path,
    progress: Callable[[str], None] | None = None,
    specs: Sequence[DemoModelSpec] = DEMO_MODELS,
    num_threads: int | None = 1,
) -> list[DemoModel]:
    """Train every spec and save it as ``out_dir/<name>.pt`` (TorchScript).

    Digit models train on all 1,797 digits. Shape models train on 3,000 upright shapes
    (seed :data:`SHAPES_TRAIN_SEED`, no rotation) and are also scored on the shipped shapes
    dataset (seed 0, rotated up to ±180°), so the effect of rotation augmentation shows.

    Training runs with ``num_threads`` torch threads (restored afterwards): these models are
    so small that a second thread gains little, and on a busy machine two threads that wait
    on each other run several times slower than one.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda message: None)
    data: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
    models = []
    trained: dict[str, nn.Module] = {}
    with torch_threads(num_threads):
        for spec in specs:
            if spec.dataset not in data:
                data[spec.dataset] = _demo_data(spec.dataset)
            train, demo = data[spec.dataset]
            report(f"training {spec.name}")
            started = time.perf_counter()
            model = spec.build()
            if spec.init_from:
                model.load_state_dict(trained[spec.init_from].state_dict())
            train_accuracy = train_classifier(
                model,
                train["x"],
                train["y"],
                epochs=spec.epochs,
                seed=spec.seed,
                augment=random_rotation if spec.rotation_augment else None,
                batch_size=spec.batch_size,
                lr=spec.lr,
                reinitialize=spec.init_from is None,
            )
            trained[spec.name] = model
            demo_accuracy = accuracy(model, demo["x"], demo["y"])
            path = out / f"{spec.name}.pt"
            torch.jit.script(model).save(str(path))
            report(
                f"{spec.name}: train accuracy {train_accuracy:.3f}, demo accuracy "
                f"{demo_accuracy:.3f} ({time.perf_counter() - started:.1f} s)"
            )
            models.append(
                DemoModel(
                    name=spec.name,
                    path=path,
                    dataset=spec.dataset,
                    architecture=spec.architecture,
                    seed=spec.seed,
                    description=spec.description,
                    train_accuracy=train_accuracy,
                    demo_accuracy=demo_accuracy,
                )
            )
    return models


def _demo_data(dataset: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Training arrays and shipped demo arrays of a demo dataset."""
    if dataset == "digits":
        digits = load_digits_arrays()
        return digits, digits
    if dataset == "shapes":
        train = make_shapes(n=3000, seed=SHAPES_TRAIN_SEED, max_rotation_deg=0.0)
        return train, make_shapes(n=3000, seed=0)
    raise ValueError(f"unknown demo dataset {dataset!r}")
