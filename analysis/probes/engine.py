"""Run a model on transformed copies of a dataset and measure how each layer responds: the
engine of a probe run. The statistics are defined in :mod:`analysis.probes.statistics`, the
transformation families in :mod:`analysis.probes.transforms`.

For every family and every magnitude t of its grid, the samples are transformed (seeded, the
same way whatever the batch), run through the model in batches, and each probed layer's pooled
activations f(g_t x) are compared with the stored activations f(x) of the untransformed samples:

- invariance, with a per-sample value (which samples the transform moves most);
- equivariance by a learned ridge map, beside the identity map and a shuffled-pairs baseline;
- structured equivariance of conv feature maps where the family induces an exact action on
  them (circular shifts by multiples of the layer's stride, 90° rotations, flips), on a seeded
  subset of at most :data:`STRUCTURED_SAMPLES` samples (raw maps are large);
- for continuous families, the Lie derivative at t = 0 by central differences with step
  :func:`lie_step` (a tenth of the grid's smallest non-zero magnitude), or a forward
  difference for a family defined for t ≥ 0 only (blur);
- transform prediction: a ridge probe recovering t from (f(x), f(g_t x)) over the whole grid,
  on a seeded subset of at most :data:`PREDICTION_SAMPLES` samples;
- prediction consistency of the model's output (its top class unchanged under g_t).

Activations of transformed samples are never stored: one magnitude's worth of one layer is
held at a time, so memory is that of the stored activations, whatever the grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import numpy as np
import torch
from torch import nn

from analysis.errors import InputError
from analysis.models.base import OUTPUT, Model, Recorder
from analysis.models.extraction import (
    batch_of,
    check_inputs,
    default_device,
    full_precision,
    outputs_of,
    pooled_output,
    to_device,
)
from analysis.models.modules import as_model
from analysis.probes.families import Family, get_family
from analysis.probes.statistics import (
    invariance,
    learned_equivariance,
    lie_derivative,
    prediction_consistency,
    structured_equivariance,
    transform_prediction,
)
from analysis.probes.transforms import Transform, get_transform, induced_action

__all__ = ["FamilyProbe", "lie_step", "run_probe"]

STRUCTURED_SAMPLES = 256
PREDICTION_SAMPLES = 2000


@dataclass
class FamilyProbe:
    """The responses of every probed layer to one transformation family over its grid; lists
    are ``[layer][magnitude]`` unless stated otherwise, None where a statistic does not apply."""

    family: str
    magnitudes: list[float]
    layers: list[str]
    invariance: list[list[float | None]]
    equivariance_r2: list[list[float | None]]
    identity_r2: list[list[float | None]]
    shuffled_r2: list[list[float | None]]
    structured_error: list[list[float | None]]
    lie_derivative: list[float | None] | None  # [layer]; continuous families only
    transform_r2: list[float | None]  # [layer]; None with fewer than two magnitudes
    consistency: list[float | None]  # [magnitude]; share of samples whose top class holds
    per_sample: np.ndarray = field(repr=False)  # float32 (layers, magnitudes, n) invariance
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """Everything but the per-sample array (stored as a blob of its own)."""
        return {k: v for k, v in self.__dict__.items() if k != "per_sample"}


def lie_step(family: Family, magnitudes: list[float]) -> float:
    """The central-difference step in t: a tenth of the smallest non-zero magnitude."""
    nonzero = [abs(t) for t in magnitudes if t != 0]
    return (min(nonzero) if nonzero else 1.0) / 10


def run_probe(
    model: Model | nn.Module,
    x: np.ndarray,
    layers: list[str],
    families: dict[str, list[float]],
    stored: dict[str, np.ndarray],
    pooling: str = "mean",
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: Callable[[float], None] | None = None,
) -> list[FamilyProbe]:
    """Probe ``layers`` of ``model`` on the samples ``x`` (n × …) under each family of
    ``families`` ({key: magnitudes}); ``stored`` holds each layer's pooled activations of the
    untransformed samples (as extraction stored them)."""
    if not layers:
        raise InputError("choose at least one layer to probe")
    missing = [layer for layer in layers if layer not in stored]
    if missing:
        raise InputError(f"no stored activations for {', '.join(missing)}")
    device = torch.device(device) if device is not None else default_device()
    check_inputs(model, x)
    model = as_model(model).to(device).eval()
    has_output = OUTPUT in model.capturable_layers()
    record = model.recorder(_captured(layers, has_output), pooling)
    engine = _Engine(model, x, layers, pooling, seed, batch_size, device, has_output, record)
    passes = 1 + sum(len(m) + (2 if get_family(k).continuous else 0) for k, m in families.items())
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done / passes)

    with torch.inference_mode(), full_precision():
        logits_x = engine.outputs(lambda batch, idx: batch).get(OUTPUT)
        step()
        results = [
            _probe_family(engine, get_transform(key), list(magnitudes), stored, logits_x, step)
            for key, magnitudes in families.items()
        ]
    return results


@dataclass
class _Engine:
    model: Model
    x: np.ndarray
    layers: list[str]
    pooling: str
    seed: int
    batch_size: int
    device: torch.device
    has_output: bool  # False for models without one (Hugging Face text encoders)
    record: Recorder  # the captured layers' outputs of one batch
    map_layers: set[str] | None = None  # probed layers whose outputs are N × C × H × W

    @property
    def captured(self) -> list[str]:
        return _captured(self.layers, self.has_output)

    def outputs(
        self,
        transform: Callable[[Any, np.ndarray], Any],
        rows: np.ndarray | None = None,
        raw: bool = False,
    ) -> dict[str, np.ndarray]:
        """Each captured layer's pooled activations (or raw outputs) of the transformed rows
        (all samples by default), as float32 arrays."""
        rows = np.arange(len(self.x)) if rows is None else rows
        out: dict[str, list[np.ndarray]] = {name: [] for name in self.captured}
        for start in range(0, len(rows), self.batch_size):
            idx = rows[start : start + self.batch_size]
            batch = to_device(transform(batch_of(self.x, idx), idx), self.device)
            for name, value in outputs_of(self.record, batch, self.captured).items():
                kept = value if raw else pooled_output(name, value, self.pooling)
                out[name].append(kept.cpu().numpy())
        return {name: np.concatenate(parts) for name, parts in out.items()}

    def has_maps(self, rows: np.ndarray) -> bool:
        """Whether any probed layer outputs conv feature maps (found from one sample)."""
        if self.map_layers is None:
            raw = self.outputs(lambda batch, idx: batch, rows[:1], raw=True)
            self.map_layers = {n for n in self.layers if raw[n].ndim == 4}
        return bool(self.map_layers)


def _captured(layers: list[str], has_output: bool) -> list[str]:
    """The probed layers and the model's output (for prediction consistency)."""
    return list(dict.fromkeys([*layers, *([OUTPUT] if has_output else [])]))


def _probe_family(
    engine: _Engine,
    family: Transform,
    magnitudes: list[float],
    stored: dict[str, np.ndarray],
    logits_x: np.ndarray | None,
    step: Callable[[], None],
) -> FamilyProbe:
    layers, seed, n = engine.layers, engine.seed, len(engine.x)
    rng = np.random.default_rng(seed)
    predict_rows = np.sort(rng.permutation(n)[:PREDICTION_SAMPLES])
    structured_rows = np.sort(rng.permutation(n)[:STRUCTURED_SAMPLES])
    fx = {layer: np.asarray(stored[layer]) for layer in layers}
    warnings: list[str] = []
    measure = _Guard(warnings)
    shape = (len(layers), len(magnitudes))
    stats: dict[str, list[list[float | None]]] = {
        key: [[None] * shape[1] for _ in layers] for key in STATISTICS
    }
    per_sample = np.full((*shape, n), np.nan, dtype=np.float32)
    consistency: list[float | None] = []
    fgx_subset: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    raw_x = None
    for j, t in enumerate(magnitudes):

        def transform(batch: Any, idx: np.ndarray, t: float = t) -> Any:
            return family(batch, t, seed=seed, indices=idx)

        fgx = engine.outputs(transform)
        step()
        same = None
        if logits_x is not None:
            same = measure("output", prediction_consistency, logits_x, fgx[OUTPUT])
        consistency.append(None if same is None else same.share)
        for i, layer in enumerate(layers):
            result = measure(layer, invariance, fx[layer], fgx[layer])
            if result is not None:
                stats["invariance"][i][j], per_sample[i, j] = result.score, result.per_sample
            fit = measure(layer, learned_equivariance, fx[layer], fgx[layer], seed=seed)
            for key, attribute in LEARNED.items():
                stats[key][i][j] = getattr(fit, attribute, None)
            fgx_subset[layer].append(fgx[layer][predict_rows])
        if family.induced and engine.has_maps(structured_rows):
            if raw_x is None:
                raw_x = engine.outputs(lambda batch, idx: batch, structured_rows, raw=True)
            raw_gx = engine.outputs(transform, structured_rows, raw=True)
            for i, layer in enumerate(layers):
                expected = _induced(family, t, raw_x[layer], engine.x.shape)
                if expected is not None:
                    error = structured_equivariance(raw_gx[layer], expected)
                    stats["structured_error"][i][j] = error.score
    lie: list[float | None] | None = None
    if family.continuous:
        h = lie_step(family, magnitudes)
        plus = engine.outputs(lambda batch, idx: family(batch, h, seed=seed, indices=idx))
        step()
        if family.bounds[0] <= -h:  # central differences
            minus = engine.outputs(lambda batch, idx: family(batch, -h, seed=seed, indices=idx))
            span = h
        else:  # defined for t ≥ 0 only (blur): a forward difference from t = 0
            minus, span = fx, h / 2
        step()
        lies = [measure(k, lie_derivative, plus[k], minus[k], span, fx[k]) for k in layers]
        lie = [None if v is None else v.score for v in lies]
    transform_r2: list[float | None] = [None] * len(layers)
    if len([t for t in magnitudes if t != 0]) >= 2:
        for i, layer in enumerate(layers):
            before = [fx[layer][predict_rows]] * len(magnitudes)
            found = measure(
                layer, transform_prediction, before, fgx_subset[layer], magnitudes, seed=seed
            )
            transform_r2[i] = None if found is None else found.r2
    return FamilyProbe(
        family=family.key,
        magnitudes=[float(t) for t in magnitudes],
        layers=list(layers),
        **stats,
        lie_derivative=lie,
        transform_r2=transform_r2,
        consistency=consistency,
        per_sample=per_sample,
        warnings=warnings,
    )


_P = ParamSpec("_P")
_R = TypeVar("_R")

STATISTICS = ("invariance", "equivariance_r2", "identity_r2", "shuffled_r2", "structured_error")
LEARNED = {"equivariance_r2": "r2", "identity_r2": "r2_identity", "shuffled_r2": "r2_shuffled"}


@dataclass
class _Guard:
    """Computes one statistic; a layer it cannot score (constant activations, too few
    samples) gets None and a warning instead of failing the whole probe."""

    warnings: list[str]

    def __call__(
        self, where: str, statistic: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R | None:
        try:
            return statistic(*args, **kwargs)
        except InputError as err:
            message = f"{where}: {err}"
            if message not in self.warnings:
                self.warnings.append(message)
            return None


def _induced(
    family: Family, t: float, maps: np.ndarray, input_shape: tuple[int, ...]
) -> np.ndarray | None:
    """The family's induced action on a layer's raw outputs of the untransformed samples, or
    None where it has none (not a feature map, a shift that is not a multiple of the stride)."""
    if maps.ndim != 4 or len(input_shape) != 4 or input_shape[-1] % maps.shape[-1]:
        return None
    stride = input_shape[-1] // maps.shape[-1]
    moved = induced_action(family, t, torch.from_numpy(maps), stride=stride)
    return None if moved is None else moved.numpy()
