"""Model stitching: can model B's later layers read what model A's earlier layer computes?

For a layer i of A and a layer j of B, the stitched model runs A up to layer i, maps A's output
there into B's layer-j space, and runs the rest of B from layer j on the mapped activations
(Lenc & Vedaldi 2015, "Understanding image representations by measuring their equivariance
and equivalence"; Bansal et al. 2021, "Revisiting model stitching to compare neural
representations"). It is judged by its classification accuracy on held-out samples, beside
A alone, B alone and chance.

The samples ``x`` with integer labels are split by the rule of
:func:`analysis.measures.alignment.fit_alignment`: the first ⌈test_fraction · n⌉ samples of a
permutation seeded by ``seed`` are held out, the rest train. Every layer of A and of B is
extracted once over all samples; each cell (i, j) then costs one forward of B over the held-out
samples, with a forward hook on B's layer j that replaces its output by the mapped activations.
Two ways to map (:data:`METHODS`), each giving a matrix of its own:

- ``fitted``: an affine map ŷ = x W + b (or a linear one, b = 0, with ``affine=False``) fitted
  by least squares from A's layer-i outputs to B's layer-j outputs on the training samples:
  W minimises Σ ‖xₙ W + b − yₙ‖² + α ‖W‖²_F with the intercept unpenalised, α =
  ``ridge`` · ‖X_c‖²_F (the total sum of squares of the training X, centred when affine), so
  ``ridge`` does not depend on the units of X; ``ridge=0`` is ordinary least squares, its
  minimum-norm solution when the training samples do not determine W. Directions of X with
  singular values below s₁ · max(n, p) · ε are dropped, the rule of :func:`numpy.linalg.lstsq`
  with ε the precision of the activations (float32 for extracted layers): a layer with dead
  units has directions holding only rounding noise, and a map fitted to that noise would blow
  it up on held-out samples.
- ``relative``: zero-shot stitching through relative representations (Moschella et al. 2023,
  "Relative representations enable zero-shot latent space communication"): nothing is fitted,
  and A's activations are never paired with B's except through the anchors' identity. m anchors
  are drawn from the training samples (seeded; by default min(300, n_train // 2)). Each layer is
  centred with its own training mean, and a sample is represented by its cosine similarities to
  the anchors *in that layer*, r(x) ∈ ℝᵐ
  (:func:`analysis.measures.relative.relative_representation`), whose coordinates mean the same
  in A and in B because the anchors are the same inputs. B's layer j is reconstructed from A's
  relative vector by least squares against B's own anchors::

      ŷ(x) = ȳ_B + ρ(x) · Û⁺ r_A(x),    ρ(x) = ‖x − x̄_A‖ · s_B / s_A

  with Û (m × q) B's centred anchor activations scaled to unit norm and Û⁺ its pseudo-inverse
  (rank cut as for the fitted maps): Û⁺ r is the vector whose inner products with B's unit
  anchors best match the cosines r. Cosines carry no norm, so the norm comes from A's sample
  relative to A's typical norm, carried to B's: s is the root-mean-square norm of a layer's
  centred training rows. When A is B and B's anchors span its layer, ŷ = y exactly. In the paper
  B's head is trained on relative vectors; B here is an ordinary network, so inverting B's own
  relative map stands in for that head.

Per-sample vectors (``batch × d`` outputs: MLP blocks, pooled outputs, the logits) and feature
maps (``batch × C × H × W``, conv layers) are stitched; the default layers are those with such
outputs (the others are named in a warning, and refused when named). Between two feature maps
on the same H × W grid the fitted map is a 1×1 convolution (Bansal et al. 2021; Csiszárik et
al. 2021, "Similarity and matching of neural network representations"): one affine map from
A's C_A channels to B's C_B, shared by every position, fitted by least squares over the n·H·W
positions of the training samples (:func:`fit_position_map`, with the same ``affine``, ridge
and rank cut as between vectors, n·H·W counting as the number of rows) and applied at every
position of the held-out samples, which replace B's map through the same forward hook. The
positions' rows are never stacked at once: the R factor of the QR decomposition of the centred
[X | Y] is accumulated over blocks of rows, and R₁₁ (whose singular values are X_c's) and
R₁₂ = Qᵀ Y_c give the solution the SVD of X_c would (``X_c = Q R₁₁``). A cell between maps on
different grids, or between a map and a vector, is left empty (no accuracy, no R²) with the
reason in one sentence in ``refused``: maps are never resized or flattened to fit. The
zero-shot variant stitches vectors only, since relative representations of positions are not
defined in the paper: its cells from or into a feature map are empty likewise, and a warning
names those layers. B must be an eager torch module (TorchScript takes no hooks); A may be any
model reading the same inputs.

Token sequences (``batch × T × d``) are stitched between two Hugging Face text encoders
(:class:`analysis.models.hf.HuggingFaceEncoder`, BERT-like; :func:`token_stitching_matrix`),
which must read every text as the same token ids (checked; refused otherwise, since no token of
A's would have a partner in B). Their layers are the hidden states ``hidden.k``. The fitted map
is one affine map per token, shared by every position and fitted over the real (unmasked)
tokens of the training texts, with the rules of the vector maps; it replaces B's hidden state
at the real tokens of each held-out text through a forward hook on B's block k (a forward
pre-hook on its first block for ``hidden.0``, the embeddings' output), and B runs on. Where
B's directory declares a sequence classifier (``…ForSequenceClassification``), its head's
logits score the classes, for B alone and every stitched model. A bare encoder has no class
scores, so accuracy is read through a readout fitted once: least squares from B's own last
hidden state, mean-pooled over the real tokens, to the one-hot labels of the training texts,
applied to B alone and to every stitched model alike (A alone by its own head where it has one
for as many classes, else through a readout of its own); the result's first warning says which.
The zero-shot variant stays vectors-only: its cells are empty.

A module of its own above :mod:`analysis.models` and :mod:`analysis.measures`: it runs models
(hooks, extraction) and uses a measure's relative representations, and the import contract
keeps those two packages apart.

Scores, over the held-out samples:

- accuracy: the share of samples whose argmax over the output is their label; for the stitched
  model the output is B's output with layer j replaced (with j the output itself, the mapped
  activations are the logits);
- ``r2``: how well the mapped activations match B's own layer j, R² = 1 − Σ ‖ŷₙ − yₙ‖² /
  Σ ‖yₙ − ȳ_train‖² (the convention of :mod:`analysis.measures.alignment`; a feature map's
  values flattened, so ȳ_train is the training mean at each channel and position); None where
  B's layer does not vary over the held-out samples, and in an empty cell;
- chance: the accuracy of the best constant prediction, the largest class share among the
  held-out labels (1 / C for balanced classes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.linalg
import torch
from torch import nn

from analysis.errors import InputError
from analysis.measures.alignment import MIN_TEST, MIN_TRAIN  # the same split rule
from analysis.measures.relative import MAX_ANCHORS, choose_anchors, relative_representation
from analysis.models.base import OUTPUT, Model
from analysis.models.extraction import (
    batch_of,
    check_inputs,
    default_device,
    extract_activations,
    full_precision,
    outputs_of,
)
from analysis.models.hf import DecoderModel, HuggingFaceEncoder
from analysis.models.modules import TorchModel, as_model, is_torchscript

__all__ = [
    "METHODS",
    "LinearMap",
    "Stitching",
    "StitchingMatrix",
    "fit_linear_map",
    "fit_position_map",
    "mapped_positions",
    "positions",
    "stitched_outputs",
    "TokenStates",
    "stitching_matrix",
    "token_states",
    "token_stitched_states",
    "token_stitching_matrix",
]

METHODS = {
    "fitted": "Map fitted from A's layer to B's layer by least squares",
    "relative": "Zero-shot through relative representations over anchors",
}
FEW_TEST = 20  # fewer held-out samples than this get a warning
BLOCK_VALUES = 2**22  # float64 values (32 MiB) per block of rows of a 1×1 convolution's fit


@dataclass
class LinearMap:
    """ŷ = x W + b, in float64."""

    weight: np.ndarray  # (p, q)
    bias: np.ndarray  # (q,); zero for a linear map

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(m, q) images of the rows of ``x`` (m × p)."""
        return np.asarray(x, dtype=np.float64) @ self.weight + self.bias


class _LeastSquares:
    """The thin SVD of one training X, shared by the maps from X to several targets."""

    def __init__(self, x: np.ndarray, affine: bool) -> None:
        x = np.asarray(x)
        eps = _precision(x)
        x = x.astype(np.float64)
        self.affine = affine
        self.mean = x.mean(axis=0) if affine else np.zeros(x.shape[1])
        u, s, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        keep = _kept(s, x.shape, eps)
        self.u, self.s, self.vt = u[:, keep], s[keep], vt[keep]
        self.scale = float(np.sum(s**2))  # ‖X_c‖²_F: the unit of the ridge penalty

    def fit(self, y: np.ndarray, ridge: float) -> LinearMap:
        y = np.asarray(y, dtype=np.float64)
        y_mean = y.mean(axis=0) if self.affine else np.zeros(y.shape[1])
        weight = _solution(self.s, self.vt, self.u.T @ (y - y_mean), ridge, self.scale)
        return LinearMap(weight, y_mean - self.mean @ weight)


def _precision(x: np.ndarray) -> float:
    """ε of the activations' type (float64 for integers)."""
    return float(np.finfo(x.dtype if x.dtype.kind == "f" else np.float64).eps)


def _kept(s: np.ndarray, shape: tuple[int, ...], eps: float) -> np.ndarray:
    """The singular values of an X of ``shape`` above s₁ · max(shape) · ε (numpy's lstsq rule)."""
    return s > (s[0] if len(s) else 0.0) * max(shape) * eps


def _solution(
    s: np.ndarray, vt: np.ndarray, projected: np.ndarray, ridge: float, scale: float
) -> np.ndarray:
    """W = V diag(s / (s² + α)) Uᵀ Y_c from the kept singular values and right vectors of X_c
    and ``projected`` = Uᵀ Y_c, with α = ``ridge`` · ``scale``."""
    shrink = s / (s**2 + ridge * scale)
    return vt.T @ (shrink[:, None] * projected)


def fit_linear_map(
    x: np.ndarray, y: np.ndarray, *, affine: bool = True, ridge: float = 0.0
) -> LinearMap:
    """The least-squares map from the rows of ``x`` (n × p) to those of ``y`` (n × q).

    ``affine``: with an unpenalised intercept (x and y centred with their means first), else
    through the origin. ``ridge``: the penalty α on ‖W‖²_F in units of ‖X_c‖²_F; 0 gives the
    minimum-norm least-squares solution. Computed in float64; the rank is cut at the precision
    of ``x`` (see the module docstring).
    """
    _check_ridge(ridge)
    if len(x) != len(y):
        raise InputError(f"the two spaces have different numbers of samples: {len(x)} vs {len(y)}")
    if len(x) == 0:
        raise InputError("no samples to fit a map on")
    return _LeastSquares(x, affine).fit(y, ridge)


def positions(maps: np.ndarray) -> np.ndarray:
    """The rows of feature maps ``maps`` (n × C × H × W): one per sample and position, its C
    channels (n·H·W × C, sample by sample, each in row-major order of the grid)."""
    return np.moveaxis(maps, 1, -1).reshape(-1, maps.shape[1])


def fit_position_map(
    x: np.ndarray,
    y: np.ndarray,
    *,
    affine: bool = True,
    ridge: float = 0.0,
    block_rows: int | None = None,
) -> LinearMap:
    """The least-squares 1×1 convolution from feature maps ``x`` (n × C_A × H × W) to ``y``
    (n × C_B × H × W): the map of :func:`fit_linear_map` (C_A × C_B, the same ``affine``,
    ``ridge`` and rank cut) from the n·H·W rows of :func:`positions` of ``x`` to those of
    ``y``, shared by every position. The rows are never held at once: the R factor of the QR
    decomposition of the centred [X | Y] is accumulated over blocks of about ``block_rows``
    rows (default: :data:`BLOCK_VALUES` values; Householder QR, exact up to rounding as the SVD
    of X is), and the map solved from it (see the module docstring)."""
    _check_ridge(ridge)
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4 or y.ndim != 4 or len(x) != len(y) or x.shape[2:] != y.shape[2:]:
        raise InputError(
            f"a 1×1 convolution maps feature maps of one grid with one map per sample, got "
            f"{' × '.join(map(str, x.shape))} and {' × '.join(map(str, y.shape))}"
        )
    if len(x) == 0:
        raise InputError("no samples to fit a map on")
    p, q = x.shape[1], y.shape[1]
    x_mean = x.mean(axis=(0, 2, 3), dtype=np.float64) if affine else np.zeros(p)
    y_mean = y.mean(axis=(0, 2, 3), dtype=np.float64) if affine else np.zeros(q)
    r = np.zeros((p + q, p + q))
    block_rows = block_rows or BLOCK_VALUES // (p + q)
    step = max(1, block_rows // (x.shape[2] * x.shape[3]))  # samples per block
    for start in range(0, len(x), step):
        rows = np.hstack(
            [
                positions(x[start : start + step]) - x_mean,
                positions(y[start : start + step]) - y_mean,
            ]
        )
        # mode "r" gives R as tall as its input: all but its top p + q rows are zeros
        r = scipy.linalg.qr(np.vstack([r, rows]), mode="r")[0][: p + q]
    # X_c = Q R₁₁ and Qᵀ Y_c = R₁₂ (Q orthonormal): R₁₁ = U' S Vᵀ is X_c's SVD with U = Q U'
    u, s, vt = np.linalg.svd(r[:p, :p])
    keep = _kept(s, (len(x) * x.shape[2] * x.shape[3], p), _precision(x))
    weight = _solution(s[keep], vt[keep], u[:, keep].T @ r[:p, p:], ridge, float(np.sum(s**2)))
    return LinearMap(weight, y_mean - x_mean @ weight)


def mapped_positions(fitted: LinearMap, maps: np.ndarray) -> np.ndarray:
    """The 1×1 convolution ``fitted`` applied at every position of ``maps`` (n × C_A × H × W):
    n × C_B × H × W, float64."""
    n, _, h, w = maps.shape
    return np.moveaxis(fitted.apply(positions(maps)).reshape(n, h, w, -1), -1, 1)


def stitched_outputs(
    model_b: Model | nn.Module,
    layer: str,
    x: np.ndarray,
    replacement: np.ndarray,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """B's outputs (n × C, float32) on the samples ``x`` with the output of ``layer`` replaced
    by ``replacement`` (one vector or feature map per sample: n × q or n × C × H × W, cast to
    float32), through a forward hook; with ``layer`` the output itself, ``replacement`` as
    float32."""
    module = _eager(model_b)
    replacement = np.asarray(replacement, dtype=np.float32)
    if replacement.ndim < 2 or len(replacement) != len(x):
        raise InputError(
            f"the replacement must hold one vector or map per sample ({len(x)}), "
            f"got shape {replacement.shape}"
        )
    if layer == OUTPUT:
        return replacement
    modules = dict(module.named_modules())
    if not layer or layer not in modules:
        raise InputError(f"model B has no layer {layer!r}")
    check_inputs(module, x)
    device = torch.device(device) if device is not None else default_device()
    module = module.to(device).eval()
    current: dict[str, Any] = {}

    def replace(_module: nn.Module, _inputs: Any, output: Any) -> torch.Tensor:
        if current.pop("done", False):
            raise InputError(f"layer {layer!r} of B runs more than once per forward")
        rows = current["rows"]
        if not isinstance(output, torch.Tensor) or tuple(output.shape) != tuple(rows.shape):
            got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output)
            raise InputError(
                f"layer {layer!r} of B outputs {got} for this batch; the stitched "
                f"activations have shape {tuple(rows.shape)}"
            )
        current["done"] = True
        return rows.to(output.dtype)

    out = np.empty((len(x), 0), dtype=np.float32)
    handle = modules[layer].register_forward_hook(replace)
    try:
        with torch.inference_mode(), full_precision():
            for start in range(0, len(x), batch_size):
                rows = slice(start, start + batch_size)
                current.clear()
                current["rows"] = torch.from_numpy(replacement[rows]).to(device)
                result = module(batch_of(x, rows, device))
                if not current.get("done"):
                    raise InputError(f"layer {layer!r} of B does not run in its forward")
                if not isinstance(result, torch.Tensor) or result.ndim != 2:
                    raise InputError("model B's output is not one vector of scores per sample")
                if start == 0:
                    out = np.empty((len(x), result.shape[1]), dtype=np.float32)
                out[rows] = result.float().cpu().numpy()
    finally:
        handle.remove()
    return out


@dataclass
class StitchingMatrix:
    """One way of mapping, over every pair of layers: lists are ``[layer of A][layer of B]``."""

    method: str  # a key of METHODS
    estimator: str  # how the maps were made, in one line
    accuracy: list[list[float | None]]  # held-out accuracy of the stitched model; None: refused
    r2: list[list[float | None]]  # held-out R² of the mapped activations against B's layer
    refused: list[list[str | None]]  # why a cell was not stitched, in one sentence; None if it was


@dataclass
class Stitching:
    """Stitched accuracies of A's layers into B's, with the baselines they are read against."""

    layers_a: list[str]
    layers_b: list[str]
    dims_a: list[int]  # width of each layer of A: the values of one sample's output
    dims_b: list[int]
    shapes_a: list[list[int]]  # one sample's output: [width], or [C, H, W] for a feature map
    shapes_b: list[list[int]]
    accuracy_a: float | None  # A alone on the held-out samples; None where A has other outputs
    accuracy_b: float  # B alone on the held-out samples
    chance: float  # the largest class share among the held-out labels
    n_classes: int
    n_train: int
    n_test: int
    seed: int
    matrices: dict[str, StitchingMatrix]  # by method
    test: np.ndarray = field(repr=False)  # bool (n,): True for held-out samples
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """Everything but the split, as JSON types."""
        data = asdict(self)
        data["test_rows"] = np.flatnonzero(data.pop("test")).tolist()
        return data


def stitching_matrix(
    model_a: Model | nn.Module,
    model_b: Model | nn.Module,
    x: np.ndarray,
    labels: np.ndarray,
    layers_a: Sequence[str] | None = None,
    layers_b: Sequence[str] | None = None,
    *,
    methods: Sequence[str] = tuple(METHODS),
    test_fraction: float = 0.2,
    seed: int = 0,
    affine: bool = True,
    ridge: float = 0.0,
    n_anchors: int | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: Callable[[float], None] | None = None,
) -> Stitching:
    """Held-out accuracy of A's layer i stitched into B's layer j, for every pair of layers.

    Parameters
    ----------
    model_a : any model reading ``x``; its layers are only read
    model_b : an eager torch module (or :class:`TorchModel` of one) reading ``x`` and returning
        ``n × C`` class scores
    x : (n, …) samples both models read
    labels : (n,) integer classes in [0, C)
    layers_a, layers_b : layers whose outputs are per-sample vectors or feature maps
        (C × H × W), in the order of the matrix (default: each model's default layers with such
        outputs; the others are named in a warning). A single pair of layers is the 1 × 1
        matrix. Cells that cannot be stitched (a vector and a map, maps of two grids, a map by
        the zero-shot variant) have no accuracy and say why in ``refused``.
    methods : keys of :data:`METHODS`, one matrix each
    test_fraction : share of samples held out, in (0, 1); at least 2 held out, 4 to train
    seed : the split and the anchors
    affine : fitted maps with an intercept (else through the origin)
    ridge : penalty of the fitted maps, in units of the training ‖X_c‖²_F (0: least squares)
    n_anchors : anchors of ``relative`` (default min(300, n_train // 2))
    progress : called with the fraction done

    Returns
    -------
    Stitching; see the module docstring for the definitions.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InputError(f"choose stitching methods among {', '.join(METHODS)}")
    _check_ridge(ridge)
    module_b = _eager(model_b)
    model_a = as_model(model_a)
    check_inputs(model_a, x)
    check_inputs(module_b, x)
    labels = np.asarray(labels)
    if labels.shape != (len(x),) or labels.dtype.kind not in "iu":
        raise InputError(f"expected one integer label per sample ({len(x)}), got {labels.shape}")
    train, test = _split(len(x), test_fraction, seed)
    anchors = _anchors(train, n_anchors, seed) if "relative" in methods else None

    device = torch.device(device) if device is not None else default_device()
    warnings: list[str] = []
    layers_a, shapes_a = _stitchable_layers(model_a, "A", x, layers_a, device, warnings)
    layers_b, shapes_b = _stitchable_layers(
        TorchModel(module_b), "B", x, layers_b, device, warnings
    )
    output_a, output_b = shapes_a[OUTPUT], shapes_b[OUTPUT]
    if len(output_b) != 1:
        raise InputError(
            f"model B outputs {' × '.join(map(str, output_b)) or 'one value'} per sample, not "
            "a vector of class scores"
        )
    acts_a = extract_activations(
        model_a, x, list(dict.fromkeys([*layers_a, OUTPUT])), "flatten", batch_size, device
    )
    if progress:
        progress(0.05)
    acts_b = extract_activations(
        module_b, x, list(dict.fromkeys([*layers_b, OUTPUT])), "flatten", batch_size, device
    )
    if progress:
        progress(0.1)

    n_classes = output_b[0]
    if labels.min() < 0 or labels.max() >= n_classes:
        raise InputError(
            f"labels run from {labels.min()} to {labels.max()}; model B scores {n_classes} "
            f"classes (0 to {n_classes - 1})"
        )
    accuracy_b = _accuracy(acts_b[OUTPUT][test], labels[test])
    accuracy_a = None
    if output_a == output_b:
        accuracy_a = _accuracy(acts_a[OUTPUT][test], labels[test])
    else:
        warnings.append(
            f"model A outputs {' × '.join(map(str, output_a)) or 'one value'} per sample, not "
            f"B's {n_classes} class scores: no accuracy of A alone"
        )
    n_train, n_test = len(train), len(test)
    for name in layers_a:
        shape = shapes_a[name]
        rows = n_train * math.prod(shape[1:])  # samples, or positions of a feature map
        if "fitted" in methods and rows <= shape[0]:
            warnings.append(
                f"{rows} training {'rows' if len(shape) > 1 else 'samples'} for the {shape[0]} "
                f"dimensions of A's {name}: the fitted maps from it are underdetermined "
                "(minimum norm)"
            )
    if anchors is not None:
        maps = [f"A's {a}" for a in layers_a if len(shapes_a[a]) > 1]
        maps += [f"B's {b}" for b in layers_b if len(shapes_b[b]) > 1]
        if maps:
            warnings.append(
                f"the zero-shot variant stitches per-sample vectors only: its cells from or "
                f"into the feature maps ({', '.join(maps)}) are empty"
            )
        for name in layers_b:
            if len(shapes_b[name]) == 1 and len(anchors) < acts_b[name].shape[1]:
                warnings.append(
                    f"{len(anchors)} anchors for the {acts_b[name].shape[1]} dimensions of B's "
                    f"{name}: its zero-shot reconstruction stays within the anchors' span"
                )
    if n_test < FEW_TEST:
        warnings.append(f"only {n_test} held-out samples: accuracies are noisy")

    mappers: dict[str, _Mapper] = {}
    if "fitted" in methods:
        mappers["fitted"] = _FittedMapper(
            acts_a, acts_b, shapes_a, shapes_b, train, test, affine, ridge
        )
    if anchors is not None:
        mappers["relative"] = _RelativeMapper(acts_a, acts_b, train, test, anchors)
    cells = len(mappers) * len(layers_a) * len(layers_b)
    done = 0
    matrices = {}
    for method, mapper in mappers.items():
        accuracy: list[list[float | None]] = []
        r2: list[list[float | None]] = []
        refused: list[list[str | None]] = []
        for a in layers_a:
            accuracy.append([])
            r2.append([])
            refused.append([])
            for b in layers_b:
                why = _why_not(method, a, shapes_a[a], b, shapes_b[b])
                if why is None:
                    mapped = mapper.mapped(a, b)
                    scores = stitched_outputs(
                        module_b, b, x[test], mapped, batch_size=batch_size, device=device
                    )
                    accuracy[-1].append(_accuracy(scores, labels[test]))
                    r2[-1].append(_r2(mapped.reshape(n_test, -1), acts_b[b], train, test))
                else:
                    accuracy[-1].append(None)
                    r2[-1].append(None)
                refused[-1].append(why)
                done += 1
                if progress:
                    progress(0.1 + 0.9 * done / cells)
        matrices[method] = StitchingMatrix(method, mapper.estimator, accuracy, r2, refused)

    test_mask = np.zeros(len(x), dtype=bool)
    test_mask[test] = True
    return Stitching(
        layers_a=list(layers_a),
        layers_b=list(layers_b),
        dims_a=[int(acts_a[name].shape[1]) for name in layers_a],
        dims_b=[int(acts_b[name].shape[1]) for name in layers_b],
        shapes_a=[list(shapes_a[name]) for name in layers_a],
        shapes_b=[list(shapes_b[name]) for name in layers_b],
        accuracy_a=accuracy_a,
        accuracy_b=accuracy_b,
        chance=float(np.bincount(labels[test]).max() / n_test),
        n_classes=int(n_classes),
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        matrices=matrices,
        test=test_mask,
        warnings=warnings,
    )


class _Mapper(Protocol):
    """Held-out activations of A's layer ``a`` mapped into B's layer ``b``."""

    estimator: str

    def mapped(self, a: str, b: str) -> np.ndarray: ...


class _FittedMapper:
    """Between vectors, one SVD per layer of A and one cheap solve per pair; between feature
    maps, one blocked fit per pair (:func:`fit_position_map`)."""

    def __init__(
        self,
        acts_a: dict[str, np.ndarray],
        acts_b: dict[str, np.ndarray],
        shapes_a: dict[str, tuple[int, ...]],
        shapes_b: dict[str, tuple[int, ...]],
        train: np.ndarray,
        test: np.ndarray,
        affine: bool,
        ridge: float,
    ) -> None:
        self.acts_a, self.acts_b = acts_a, acts_b
        self.shapes_a, self.shapes_b = shapes_a, shapes_b
        self.train, self.test = train, test
        self.affine, self.ridge = affine, ridge
        self._solvers: dict[str, _LeastSquares] = {}
        kind = "affine" if affine else "linear"
        self.estimator = f"{kind} least squares{_ridge_note(ridge)} on {len(train)} samples"
        if any(len(shape) > 1 for shape in shapes_a.values()):
            self.estimator += (
                " (between two feature maps a 1×1 convolution, fitted over all their positions; "
                "between vectors one map of the vectors)"
            )

    def mapped(self, a: str, b: str) -> np.ndarray:
        if len(self.shapes_a[a]) > 1:  # feature maps of one grid (_why_not)
            maps_a = self.acts_a[a].reshape(-1, *self.shapes_a[a])
            maps_b = self.acts_b[b].reshape(-1, *self.shapes_b[b])
            fitted = fit_position_map(
                maps_a[self.train], maps_b[self.train], affine=self.affine, ridge=self.ridge
            )
            return mapped_positions(fitted, maps_a[self.test])
        if a not in self._solvers:
            self._solvers[a] = _LeastSquares(self.acts_a[a][self.train], self.affine)
        fitted = self._solvers[a].fit(self.acts_b[b][self.train], self.ridge)
        return fitted.apply(self.acts_a[a][self.test])


class _RelativeMapper:
    """A's relative vectors once per layer of A; the pseudo-inverse of B's unit anchors once per
    layer of B."""

    def __init__(
        self,
        acts_a: dict[str, np.ndarray],
        acts_b: dict[str, np.ndarray],
        train: np.ndarray,
        test: np.ndarray,
        anchors: np.ndarray,
    ) -> None:
        self.acts_a, self.acts_b = acts_a, acts_b
        self.train, self.test, self.anchors = train, test, anchors
        self._relative_a: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._inverses: dict[str, tuple[np.ndarray, float, np.ndarray]] = {}
        self.estimator = (
            f"{len(anchors)} anchors among the training samples; B's layer reconstructed from "
            "A's cosines by the pseudo-inverse of B's anchors"
        )

    def centred(self, acts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """The layer centred with its training mean, that mean, and the root-mean-square norm
        of the centred training rows."""
        mean = acts[self.train].mean(axis=0, dtype=np.float64)
        centred = acts.astype(np.float64) - mean
        return centred, mean, float(np.sqrt(np.mean(np.sum(centred[self.train] ** 2, axis=1))))

    def mapped(self, a: str, b: str) -> np.ndarray:
        if a not in self._relative_a:
            centred, _, rms = self.centred(self.acts_a[a])
            norms = np.linalg.norm(centred[self.test], axis=1)
            ratio = norms / rms if rms > 0 else np.zeros_like(norms)
            self._relative_a[a] = relative_representation(centred, self.anchors)[self.test], ratio
        if b not in self._inverses:
            acts = self.acts_b[b]
            centred, mean, rms = self.centred(acts)
            anchors = centred[self.anchors]
            lengths = np.linalg.norm(anchors, axis=1, keepdims=True)
            unit = anchors / np.where(lengths == 0, 1.0, lengths)
            cutoff = max(unit.shape) * np.finfo(acts.dtype).eps
            self._inverses[b] = np.linalg.pinv(unit, rtol=cutoff), rms, mean
        relative, ratio = self._relative_a[a]
        inverse, rms_b, mean_b = self._inverses[b]
        return (relative @ inverse.T) * (ratio * rms_b)[:, None] + mean_b


def _eager(model: Model | nn.Module) -> nn.Module:
    """The eager torch module behind ``model``, whose layers take forward hooks."""
    module = model.module if isinstance(model, TorchModel) else model
    if not isinstance(module, nn.Module):
        raise InputError("model B must be a torch module: stitching hooks into its layers")
    if is_torchscript(module):
        raise InputError(
            "model B is a TorchScript module, whose layers take no hooks; stitching needs B "
            "as an eager torch module"
        )
    return module


def _stitchable_layers(
    model: Model,
    side: str,
    x: np.ndarray,
    layers: Sequence[str] | None,
    device: torch.device,
    warnings: list[str],
) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    """``layers`` (default: the model's default layers) whose outputs are per-sample vectors or
    feature maps (C × H × W), and the shape of one sample's output of each and of
    :data:`OUTPUT`, read from one forward of the first two samples; a named layer with other
    outputs is refused."""
    chosen = list(model.default_layers() if layers is None else layers)
    if not chosen:
        raise InputError(f"choose at least one layer of model {side}")
    if len(set(chosen)) != len(chosen):
        raise InputError(f"a layer of model {side} is named twice")
    recorded = list(dict.fromkeys([*chosen, OUTPUT]))
    record = model.to(device).eval().recorder(recorded, "flatten")
    with torch.inference_mode(), full_precision():
        outputs = outputs_of(record, batch_of(x, slice(0, 2), device), recorded)
    shapes = {name: tuple(outputs[name].shape[1:]) for name in recorded}
    others = [name for name in chosen if len(shapes[name]) not in (1, 3)]
    if others and layers is not None:
        name = others[0]
        raise InputError(
            f"layer {name!r} of model {side} outputs {' × '.join(map(str, shapes[name]))} "
            "values per sample, neither a vector nor a feature map (C × H × W); stitching maps "
            "vectors and feature maps, so choose such a layer"
        )
    if others:
        warnings.append(
            f"left out layers of model {side} whose outputs are neither vectors nor feature "
            f"maps: {', '.join(others)}"
        )
    kept = [name for name in chosen if name not in others]
    if not kept:
        raise InputError(
            f"no default layer of model {side} outputs per-sample vectors or feature maps"
        )
    return kept, {name: shapes[name] for name in [*kept, OUTPUT]}


def _why_not(
    method: str, a: str, shape_a: tuple[int, ...], b: str, shape_b: tuple[int, ...]
) -> str | None:
    """Why A's layer ``a`` cannot be stitched into B's ``b`` by ``method``, in one sentence;
    None where it can."""
    maps = len(shape_a) > 1, len(shape_b) > 1
    if maps == (False, False):
        return None
    if method == "relative":
        return (
            "the zero-shot variant stitches per-sample vectors only: relative representations "
            "of the positions of a feature map are not defined"
        )
    said_a, said_b = _said(shape_a), _said(shape_b)
    if maps != (True, True):
        return (
            f"A's {a} outputs {said_a} and B's {b} {said_b}: stitching maps vectors into vectors "
            "and feature maps into feature maps"
        )
    if shape_a[1:] != shape_b[1:]:
        return (
            f"A's {a} outputs {said_a} and B's {b} {said_b}: a 1×1 convolution needs the same "
            "grid in both, and maps are not resized"
        )
    return None


def _said(shape: tuple[int, ...]) -> str:
    """One sample's output in words: "vectors of 8" or "maps of 4 channels over 8 × 8 positions"."""
    if len(shape) == 1:
        return f"vectors of {shape[0]}"
    return f"maps of {shape[0]} channels over {' × '.join(map(str, shape[1:]))} positions"


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices: the first ⌈test_fraction · n⌉ of a seeded permutation are
    held out (the rule of :func:`analysis.measures.alignment.fit_alignment`)."""
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    n_test = math.ceil(test_fraction * n)
    n_train = n - n_test
    if n_test < MIN_TEST or n_train < MIN_TRAIN:
        raise InputError(
            f"a test fraction of {test_fraction:g} splits {n} samples into {n_train} to train "
            f"and {n_test} to test; stitching needs at least {MIN_TRAIN} and {MIN_TEST}"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _anchors(train: np.ndarray, n_anchors: int | None, seed: int) -> np.ndarray:
    """Sample indices of the anchors, drawn among the training samples."""
    if n_anchors is None:
        n_anchors = min(MAX_ANCHORS, len(train) // 2)
    elif (
        isinstance(n_anchors, bool)
        or not isinstance(n_anchors, int | np.integer)
        or not 1 <= n_anchors < len(train)
    ):
        raise InputError(
            f"n_anchors must be a whole number from 1 to {len(train) - 1} (the anchors are "
            f"training samples), got {n_anchors!r}"
        )
    return train[choose_anchors(len(train), int(n_anchors), seed)]


def _check_ridge(ridge: float) -> None:
    if not (isinstance(ridge, int | float) and math.isfinite(ridge) and ridge >= 0):
        raise InputError(f"the ridge penalty must be a number ≥ 0, got {ridge!r}")


def _ridge_note(ridge: float) -> str:
    return f" with ridge α = {ridge:g}·‖X_c‖²" if ridge else ""


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose highest score is at their label (the first of tied maxima wins)."""
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def _r2(mapped: np.ndarray, acts: np.ndarray, train: np.ndarray, test: np.ndarray) -> float | None:
    """Held-out R² of ``mapped`` (the test rows) against ``acts[test]``, around the training
    mean; None where the held-out rows do not vary."""
    target = acts[test].astype(np.float64)
    sst = float(np.sum((target - acts[train].mean(axis=0, dtype=np.float64)) ** 2))
    if sst == 0.0:
        return None
    return 1.0 - float(np.sum((mapped - target) ** 2)) / sst


# --- Hugging Face text encoders: token sequences -------------------------------------------


@dataclass
class TokenStates:
    """One text encoder's hidden states at the real tokens of every text: ``rows[layer]`` is
    (tokens in all texts) × d, text by text, each in token order; text i's rows are
    ``offsets[i]:offsets[i + 1]``."""

    rows: dict[str, np.ndarray]
    offsets: np.ndarray
    logits: np.ndarray | None = None  # n × C, a sequence classifier's class scores

    def of(self, layer: str, samples: np.ndarray) -> np.ndarray:
        """The rows of ``samples``' tokens, in the order of ``samples``."""
        return np.concatenate(
            [self.rows[layer][self.offsets[i] : self.offsets[i + 1]] for i in samples]
        )

    def pooled(self, layer: str) -> np.ndarray:
        """Each text's mean over its real tokens (n × d), summed in float64 and kept at the
        precision of the states (float32), which sets the rank cut of a readout fitted on it."""
        sums = np.add.reduceat(self.rows[layer].astype(np.float64), self.offsets[:-1], axis=0)
        return (sums / np.diff(self.offsets)[:, None]).astype(self.rows[layer].dtype)


def _token_ids(model: HuggingFaceEncoder, texts: np.ndarray) -> list[list[int]]:
    """The token ids ``model`` reads each text as (its tokenizer, truncated at its limit)."""
    encoded = model.tokenizer(
        [str(t) for t in texts], truncation=True, max_length=model.tokens.max_tokens, verbose=False
    )
    return [list(ids) for ids in encoded["input_ids"]]


def _text_encoder(model: Model, side: str) -> HuggingFaceEncoder:
    if not isinstance(model, HuggingFaceEncoder) or isinstance(model, DecoderModel):
        raise InputError(
            f"model {side} must be a Hugging Face text encoder (BERT-like) to stitch token "
            "sequences"
        )
    if len(model.blocks()) != model.n_hidden - 1:
        raise InputError(
            f"model {side}'s blocks are not one per hidden state, so its layers cannot be "
            "replaced one at a time"
        )
    return model


def token_states(
    model: HuggingFaceEncoder, texts: np.ndarray, layers: list[str], device: torch.device
) -> TokenStates:
    """``layers`` (``hidden.k``) of ``model`` at the real tokens of every text."""
    found: dict[str, list[np.ndarray | None]] = {name: [None] * len(texts) for name in layers}
    model.to(device)
    with torch.inference_mode(), full_precision():
        for rows, tokens in model.tokens.batches([str(t) for t in texts], device):
            hidden = model.model(**tokens, output_hidden_states=True).hidden_states
            mask = tokens["attention_mask"].bool()
            for name in layers:
                states = hidden[int(name.rsplit(".", 1)[1])].float()
                for place, row in enumerate(rows):
                    found[name][row] = states[place][mask[place]].cpu().numpy()
    lengths = [len(part) for part in found[layers[0]] if part is not None]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return TokenStates(
        {
            name: np.concatenate([p for p in parts if p is not None])
            for name, parts in found.items()
        },
        offsets,
    )


def token_stitched_states(
    model_b: HuggingFaceEncoder,
    layer: str | None,
    texts: np.ndarray,
    replacement: np.ndarray | None,
    *,
    device: torch.device | str | None = None,
) -> TokenStates:
    """B's last hidden state at the real tokens of ``texts`` (and its classifier's logits,
    where it has one) with its hidden state ``layer`` (``hidden.k``) replaced at the real
    tokens by the rows of ``replacement`` (one per real token, text by text as
    :func:`token_states` orders them; padding keeps B's own values, which the attention mask
    hides), through a forward hook on block k (a forward pre-hook on the first block for
    ``hidden.0``, the embeddings' output); with ``layer`` None, B as it is, run in the same
    batches."""
    model_b = _text_encoder(model_b, "B")
    device = torch.device(device) if device is not None else default_device()
    last = f"hidden.{model_b.n_hidden - 1}"
    lengths = [len(ids) for ids in _token_ids(model_b, texts)]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    rows_in = np.zeros((0, 0), dtype=np.float32)
    if layer is not None:
        if replacement is None or replacement.shape[0] != offsets[-1]:
            got = None if replacement is None else replacement.shape[0]
            raise InputError(
                f"the replacement must hold one row per real token ({offsets[-1]}), got {got}"
            )
        rows_in = np.asarray(replacement, dtype=np.float32)
    current: dict[str, torch.Tensor] = {}

    def replaced(hidden: torch.Tensor) -> torch.Tensor:
        mask = current["mask"]
        if hidden.shape[-1] != rows_in.shape[1]:
            raise InputError(
                f"layer {layer!r} of B has {hidden.shape[-1]} dimensions; the stitched "
                f"activations have {rows_in.shape[1]}"
            )
        hidden = hidden.clone()
        hidden[mask] = current["rows"].to(hidden.dtype)
        return hidden

    def after(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (replaced(output[0]), *output[1:])
        return replaced(output)

    def before(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return (replaced(args[0]), *args[1:]), kwargs

    blocks = model_b.blocks()
    k = int(layer.rsplit(".", 1)[1]) if layer is not None else None
    handles = []
    if k is not None:
        handles.append(
            blocks[k - 1].register_forward_hook(after)
            if k
            else blocks[0].register_forward_pre_hook(before, with_kwargs=True)
        )
    found: list[np.ndarray | None] = [None] * len(texts)
    logits: list[np.ndarray | None] = [None] * len(texts)
    model_b.to(device)
    run = model_b.classifier or model_b.model
    try:
        with torch.inference_mode(), full_precision():
            for rows, tokens in model_b.tokens.batches([str(t) for t in texts], device):
                mask = tokens["attention_mask"].bool()
                current["mask"] = mask
                if k is not None:
                    current["rows"] = torch.from_numpy(
                        np.concatenate([rows_in[offsets[i] : offsets[i + 1]] for i in rows])
                    ).to(device)
                output = run(**tokens, output_hidden_states=True)
                hidden = output.hidden_states[-1]
                for place, row in enumerate(rows):
                    found[row] = hidden[place][mask[place]].float().cpu().numpy()
                    if model_b.classifier is not None:
                        logits[row] = output.logits[place].float().cpu().numpy()
    finally:
        for handle in handles:
            handle.remove()
    return TokenStates(
        {last: np.concatenate([f for f in found if f is not None])},
        offsets,
        np.stack([s for s in logits if s is not None]) if model_b.classifier is not None else None,
    )


def token_stitching_matrix(
    model_a: Model,
    model_b: Model,
    texts: np.ndarray,
    labels: np.ndarray,
    layers_a: Sequence[str] | None = None,
    layers_b: Sequence[str] | None = None,
    *,
    methods: Sequence[str] = tuple(METHODS),
    test_fraction: float = 0.2,
    seed: int = 0,
    affine: bool = True,
    ridge: float = 0.0,
    device: torch.device | str | None = None,
    progress: Callable[[float], None] | None = None,
) -> Stitching:
    """:func:`stitching_matrix` for two Hugging Face text encoders reading the same tokens:
    A's hidden state i (``hidden.i``, n × T × d_A) mapped into B's hidden state j by one
    affine map per token, shared by every position and fitted over the real (unmasked) tokens
    of the training texts, and B run on from block j (see the module docstring). Accuracy is
    read by B's own classification head where B's directory declares a sequence classifier;
    for a bare encoder through a readout fitted once: least squares from B's own mean-pooled
    last hidden state to the one-hot labels of the training texts, applied to B alone and to
    every stitched model alike (A alone by its own head, or likewise with a readout of its
    own). The first warning says which. The zero-shot variant stitches vectors only: its
    cells are empty."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InputError(f"choose stitching methods among {', '.join(METHODS)}")
    _check_ridge(ridge)
    encoder_a, encoder_b = _text_encoder(model_a, "A"), _text_encoder(model_b, "B")
    texts = np.asarray(texts)
    if texts.dtype.kind != "U":
        raise InputError("token stitching reads texts, and the dataset holds arrays")
    labels = np.asarray(labels)
    if labels.shape != (len(texts),) or labels.dtype.kind not in "iu" or labels.min() < 0:
        raise InputError(
            f"expected one integer label ≥ 0 per text ({len(texts)}), got {labels.shape}"
        )
    ids_a, ids_b = _token_ids(encoder_a, texts), _token_ids(encoder_b, texts)
    differ = next((i for i, (a, b) in enumerate(zip(ids_a, ids_b, strict=True)) if a != b), None)
    if differ is not None:
        raise InputError(
            f"A and B read text {differ} as different tokens, so no token of A's has a partner "
            "in B: token-level stitching needs both models to read the same token ids"
        )
    chosen = {}
    for side, model, layers in (("A", encoder_a, layers_a), ("B", encoder_b, layers_b)):
        named = list(model.capturable_layers() if layers is None else layers)
        hidden = [f"hidden.{k}" for k in range(model.n_hidden)]
        if layers is None:
            named = [name for name in named if name in hidden]
        wrong = [name for name in named if name not in hidden]
        if wrong or not named:
            raise InputError(
                f"layer {wrong[0] if wrong else None!r} of model {side} is not a hidden state; "
                f"token stitching maps hidden states: {', '.join(hidden)}"
            )
        if len(set(named)) != len(named):
            raise InputError(f"a layer of model {side} is named twice")
        chosen[side] = named
    train, test = _split(len(texts), test_fraction, seed)
    device = torch.device(device) if device is not None else default_device()
    last_a, last_b = (f"hidden.{m.n_hidden - 1}" for m in (encoder_a, encoder_b))
    states_a = token_states(encoder_a, texts, list(dict.fromkeys([*chosen["A"], last_a])), device)
    states_b = token_states(encoder_b, texts, list(dict.fromkeys([*chosen["B"], last_b])), device)
    if progress:
        progress(0.1)

    n_train, n_test = len(train), len(test)
    # B alone run on the held-out texts as the stitched models are (the same batches, so the
    # same float32 sums: the identity map reproduces it exactly)
    alone_b = token_stitched_states(encoder_b, None, texts[test], None, device=device)
    alone_a = token_stitched_states(encoder_a, None, texts[test], None, device=device)
    if alone_b.logits is not None:
        n_classes = alone_b.logits.shape[1]
        if labels.max() >= n_classes:
            raise InputError(
                f"labels run from {labels.min()} to {labels.max()}; model B's classification "
                f"head scores {n_classes} classes (0 to {n_classes - 1})"
            )
        readout_b = None
        how = "B's own classification head scores the classes (its logits), alone and stitched"
    else:
        n_classes = int(labels.max()) + 1
        readout_b = fit_linear_map(states_b.pooled(last_b)[train], np.eye(n_classes)[labels[train]])
        how = (
            f"B is a bare encoder: its accuracy (alone and stitched) is read through a readout "
            f"fitted by least squares from its mean-pooled {last_b} to the one-hot labels of the "
            f"{n_train} training texts"
        )

    def read_b(found: TokenStates) -> np.ndarray:
        """B's class scores: its head's logits, or the readout of its mean-pooled last state."""
        if readout_b is None:
            assert found.logits is not None  # B has a classification head
            return found.logits
        return readout_b.apply(found.pooled(last_b))

    accuracy_b = _accuracy(read_b(alone_b), labels[test])
    if alone_a.logits is not None and alone_a.logits.shape[1] == n_classes:
        accuracy_a = _accuracy(alone_a.logits, labels[test])
        how += "; A alone by its own head"
    else:
        readout_a = fit_linear_map(states_a.pooled(last_a)[train], np.eye(n_classes)[labels[train]])
        accuracy_a = _accuracy(readout_a.apply(alone_a.pooled(last_a)), labels[test])
        how += "; A alone through a least-squares readout of its own mean-pooled last state"
    rows_train = int(np.sum(np.diff(states_a.offsets)[train]))
    warnings = [how]
    if readout_b is None and last_b in chosen["B"]:
        warnings.append(
            f"B's classification head reads only the first token of its {last_b} (the class "
            f"token), so a cell into B's {last_b} hands the head A's first token alone, mapped: "
            "where A's layer holds much the same first token for every text (its early layers), "
            "the stitched model gives every text the same class"
        )
    for name in chosen["A"]:
        d = states_a.rows[name].shape[1]
        if "fitted" in methods and rows_train <= d:
            warnings.append(
                f"{rows_train} training tokens for the {d} dimensions of A's {name}: the "
                "fitted maps from it are underdetermined (minimum norm)"
            )
    if "relative" in methods:
        warnings.append(
            "the zero-shot variant stitches per-sample vectors only: its cells between token "
            "sequences are empty"
        )
    if n_test < FEW_TEST:
        warnings.append(f"only {n_test} held-out samples: accuracies are noisy")

    kind = "affine" if affine else "linear"
    matrices = {}
    cells = len(methods) * len(chosen["A"]) * len(chosen["B"])
    done = 0
    for method in methods:
        accuracy: list[list[float | None]] = []
        r2: list[list[float | None]] = []
        refused: list[list[str | None]] = []
        solvers: dict[str, _LeastSquares] = {}
        for a in chosen["A"]:
            accuracy.append([])
            r2.append([])
            refused.append([])
            for b in chosen["B"]:
                if method == "relative":
                    accuracy[-1].append(None)
                    r2[-1].append(None)
                    refused[-1].append(
                        "the zero-shot variant stitches per-sample vectors only: relative "
                        "representations of tokens are not defined"
                    )
                else:
                    if a not in solvers:
                        solvers[a] = _LeastSquares(states_a.of(a, train), affine)
                    fitted = solvers[a].fit(states_b.of(b, train), ridge)
                    mapped = fitted.apply(states_a.of(a, test))
                    stitched = token_stitched_states(
                        encoder_b, b, texts[test], mapped, device=device
                    )
                    scores = read_b(stitched)
                    accuracy[-1].append(_accuracy(scores, labels[test]))
                    r2[-1].append(_token_r2(mapped, states_b, b, train, test))
                    refused[-1].append(None)
                done += 1
                if progress:
                    progress(0.1 + 0.9 * done / cells)
        estimator = (
            f"{kind} least squares{_ridge_note(ridge)}: one map for every token, fitted over "
            f"the {rows_train} real tokens of {n_train} texts"
            if method == "fitted"
            else "nothing (vectors only)"
        )
        matrices[method] = StitchingMatrix(method, estimator, accuracy, r2, refused)

    test_mask = np.zeros(len(texts), dtype=bool)
    test_mask[test] = True
    return Stitching(
        layers_a=chosen["A"],
        layers_b=chosen["B"],
        dims_a=[int(states_a.rows[name].shape[1]) for name in chosen["A"]],
        dims_b=[int(states_b.rows[name].shape[1]) for name in chosen["B"]],
        shapes_a=[[int(states_a.rows[name].shape[1])] for name in chosen["A"]],
        shapes_b=[[int(states_b.rows[name].shape[1])] for name in chosen["B"]],
        accuracy_a=accuracy_a,
        accuracy_b=accuracy_b,
        chance=float(np.bincount(labels[test]).max() / n_test),
        n_classes=n_classes,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        matrices=matrices,
        test=test_mask,
        warnings=warnings,
    )


def _token_r2(
    mapped: np.ndarray, states: TokenStates, layer: str, train: np.ndarray, test: np.ndarray
) -> float | None:
    """Held-out R² of the mapped tokens against B's, around B's mean training token."""
    target = states.of(layer, test).astype(np.float64)
    sst = float(np.sum((target - states.of(layer, train).mean(axis=0, dtype=np.float64)) ** 2))
    if sst == 0.0:
        return None
    return 1.0 - float(np.sum((mapped - target) ** 2)) / sst
