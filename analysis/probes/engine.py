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

**Token-level activations** (pooling ``tokens``: every position of a layer a row, with its
sample and position, :class:`analysis.models.extraction.TokenRows`) are read per family
(:func:`reading`), the model run at every position on g x too:

- *per position* where the family keeps every position in place
  (:attr:`analysis.probes.families.Family.keeps_positions`: brightness, contrast, noise, blur,
  occlusion of images, noise, dropout and scaling of vectors): row r of f(g x), position p of
  sample i, is compared with row r of f(x), the same position of the same sample. Invariance
  and the Lie derivative take every row as a sample (D and s over all rows: the level of
  unrelated positions); a sample's invariance is the mean of its rows'. The learned map and
  the transform prediction read each sample's mean of its rows (pooled on the fly as below),
  since their held-out split must keep a sample's positions together and a map fitted on
  every row would cost rows × d;
- *pooled on the fly* where the family moves or changes positions (rotations, shifts,
  scaling, flips; text edits change the tokens), or where a reduction is asked for: each
  sample's rows of f(x) and of f(g x) reduced alike by mean, first or last
  (:func:`analysis.measures.positions.pooled`; mean leaves a ViT's class token out, as the
  mean extraction does), and every statistic reads one vector per sample.

Structured equivariance reads a conv layer's raw maps either way, and prediction consistency
the model's output (its positions averaged, where it has any).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import numpy as np
import torch
from torch import nn

from analysis.errors import InputError
from analysis.measures.positions import PER_POSITION, REDUCTIONS, pooled
from analysis.models.base import OUTPUT, Model, Positions, Recorder, positions_of
from analysis.models.choices import TOKENS
from analysis.models.extraction import (
    TokenRows,
    batch_of,
    check_inputs,
    default_device,
    full_precision,
    pooled_output,
    recorded,
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

__all__ = ["FamilyProbe", "Reading", "lie_step", "reading", "run_probe"]

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
    positions: str | None = None  # token-level sets: PER_POSITION or the reduction; else None
    positions_note: str = ""  # how the positions were read, in words ("" without positions)

    def to_json(self) -> dict:
        """Everything but the per-sample array (stored as a blob of its own)."""
        return {k: v for k, v in self.__dict__.items() if k != "per_sample"}


def lie_step(family: Family, magnitudes: list[float]) -> float:
    """The central-difference step in t: a tenth of the smallest non-zero magnitude."""
    nonzero = [abs(t) for t in magnitudes if t != 0]
    return (min(nonzero) if nonzero else 1.0) / 10


@dataclass(frozen=True)
class Reading:
    """How a family's probe reads token-level activations: ``how`` is :data:`PER_POSITION`
    (position p of g x against position p of x) or the reduction (mean, first, last) each
    sample's rows are pooled by; ``note`` says so in words, for the page and provenance."""

    how: str
    note: str


def reading(family: Family, asked: str, rows: int | None = None) -> Reading:
    """How ``family`` reads token-level sets when ``asked`` (a key of
    :data:`analysis.measures.positions.REDUCTIONS`): per position only where the family
    keeps every position in place, else pooled on the fly (per position asked: by mean);
    ``rows``, the rows of a set, is said in the note where known."""
    if asked not in REDUCTIONS:
        raise InputError(f"unknown positions {asked!r}; choose one of: {', '.join(REDUCTIONS)}")
    if asked == PER_POSITION and family.keeps_positions:
        each = "every row" if rows is None else f"each of the {rows} rows"
        return Reading(
            PER_POSITION,
            f"per position: position p of g x against position p of x ({family.title} keeps "
            f"every position in place); invariance and the Lie derivative take {each} (a "
            "sample's token or patch) as a sample, their scale over all rows (the level of "
            "unrelated positions), and a sample's invariance is the mean of its rows'; the "
            f"learned map and t predicted read {REDUCTIONS['mean']}",
        )
    how = "mean" if asked == PER_POSITION else asked
    why = (
        f"per position was asked, but {family.title} moves or changes positions (position p "
        "of g x is not position p of x); "
        if asked == PER_POSITION
        else ""
    )
    return Reading(
        how,
        f"{why}pooled on the fly by {how}: {REDUCTIONS[how]}, of x and of g x alike; every "
        "statistic reads one vector per sample",
    )


def run_probe(
    model: Model | nn.Module,
    x: np.ndarray,
    layers: list[str],
    families: dict[str, list[float]],
    stored: Mapping[str, np.ndarray | TokenRows],
    pooling: str = "mean",
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: Callable[[float], None] | None = None,
    positions: str = PER_POSITION,
) -> list[FamilyProbe]:
    """Probe ``layers`` of ``model`` on the samples ``x`` (n × …) under each family of
    ``families`` ({key: magnitudes}); ``stored`` holds each layer's activations of the
    untransformed samples (as extraction stored them): ``n × d`` pooled, or with pooling
    ``tokens`` every position (:class:`TokenRows`), read as ``positions`` asks per family
    (:func:`reading`)."""
    if not layers:
        raise InputError("choose at least one layer to probe")
    missing = [layer for layer in layers if layer not in stored]
    if missing:
        raise InputError(f"no stored activations for {', '.join(missing)}")
    tokens = pooling == TOKENS
    device = torch.device(device) if device is not None else default_device()
    check_inputs(model, x)
    model = as_model(model).to(device).eval()
    has_output = OUTPUT in model.capturable_layers()
    record = model.recorder(_captured(layers, has_output), pooling)
    engine = _Engine(model, x, layers, pooling, seed, batch_size, device, has_output, record)
    asked = positions if tokens else None
    passes = 1 + sum(len(m) + (2 if get_family(k).continuous else 0) for k, m in families.items())
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done / passes)

    with torch.inference_mode(), full_precision():
        logits_x = _logits(engine.outputs(lambda batch, idx: batch, layers=[]))
        step()
        results = []
        for key, magnitudes in families.items():
            family = get_transform(key)
            reader = _Reader(len(x), stored, None)
            if asked is not None:
                counts = {len(_rows_of(stored[layer]).values) for layer in layers}
                reader.reading = reading(family, asked, counts.pop() if len(counts) == 1 else None)
            results.append(_probe_family(engine, family, list(magnitudes), reader, logits_x, step))
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
        layers: list[str] | None = None,
    ) -> dict[str, np.ndarray | TokenRows]:
        """Each captured layer's activations of the transformed rows (all samples by default;
        ``layers``: only these and the output): float32 arrays pooled as the run pools, or
        with pooling ``tokens`` every position (:class:`TokenRows`, rows numbered by sample
        in ``rows``), the output averaged over its positions; ``raw``: the layers' outputs
        as the model gives them, those given as rows of positions left out."""
        rows = np.arange(len(self.x)) if rows is None else rows
        wanted = self.captured if layers is None else _captured(layers, self.has_output)
        tokens = self.pooling == TOKENS
        parts: dict[str, list[Any]] = {name: [] for name in wanted}
        for start in range(0, len(rows), self.batch_size):
            idx = rows[start : start + self.batch_size]
            batch = to_device(transform(batch_of(self.x, idx), idx), self.device)
            for name, value in recorded(self.record, batch, wanted).items():
                if raw:
                    if isinstance(value, torch.Tensor):
                        parts[name].append(value.cpu().numpy())
                elif isinstance(value, Positions) or (tokens and name != OUTPUT):
                    found = value if isinstance(value, Positions) else positions_of(value)
                    parts[name].append(_numpy_rows(name, found, start))
                else:
                    pooling = "mean" if tokens else self.pooling
                    parts[name].append(pooled_output(name, value, pooling).cpu().numpy())
        out: dict[str, np.ndarray | TokenRows] = {}
        for name, kept in parts.items():
            if not kept:
                continue
            if isinstance(kept[0], TokenRows):
                joined = _joined(kept)
                out[name] = (
                    joined
                    if name != OUTPUT
                    else pooled(joined.values, joined.sample, len(rows), "mean", joined.special)
                )
            else:
                out[name] = np.concatenate(kept)
        return out

    def has_maps(self, rows: np.ndarray) -> bool:
        """Whether any probed layer outputs conv feature maps (found from one sample)."""
        if self.map_layers is None:
            raw = self.outputs(lambda batch, idx: batch, rows[:1], raw=True)
            self.map_layers = {n for n in self.layers if n in raw and _array(raw[n]).ndim == 4}
        return bool(self.map_layers)


def _numpy_rows(name: str, found: Positions, start: int) -> TokenRows:
    """One batch's rows of a layer as numpy, each row's sample counted from ``start``."""
    if not torch.isfinite(found.values).all():
        raise InputError(f"layer {name!r} produced NaN or Inf activations")
    return TokenRows(
        values=found.values.float().cpu().numpy(),
        sample=found.sample.cpu().numpy().astype(np.int64) + start,
        position=found.position.cpu().numpy().astype(np.int64),
        special=found.special.cpu().numpy().astype(bool),
        positional=True,
    )


def _joined(parts: list[TokenRows]) -> TokenRows:
    """The rows of consecutive batches (each sorted by sample, then position), in order."""
    return TokenRows(
        values=np.concatenate([p.values for p in parts]),
        sample=np.concatenate([p.sample for p in parts]),
        position=np.concatenate([p.position for p in parts]),
        special=np.concatenate([p.special for p in parts]),
        positional=True,
    )


def _rows_of(found: np.ndarray | TokenRows) -> TokenRows:
    """A layer's activations at every position (pooling ``tokens``)."""
    if not isinstance(found, TokenRows):
        raise InputError("pooling tokens reads stored activations at every position")
    return found


def _array(found: np.ndarray | TokenRows) -> np.ndarray:
    """An output that is one array (a pooled layer, the model's output, a raw map)."""
    if isinstance(found, TokenRows):
        raise InputError("expected one array, got rows of positions")
    return found


def _logits(outputs: dict[str, np.ndarray | TokenRows]) -> np.ndarray | None:
    """The model's output among ``outputs`` (None for models without one)."""
    found = outputs.get(OUTPUT)
    return None if found is None else _array(found)


def _captured(layers: list[str], has_output: bool) -> list[str]:
    """The probed layers and the model's output (for prediction consistency)."""
    return list(dict.fromkeys([*layers, *([OUTPUT] if has_output else [])]))


@dataclass
class _Reader:
    """Turns a layer's activations (stored, of x, or of g x) into what the statistics read:
    ``(rows, samples)``, the arrays of invariance and the Lie derivative and those of the
    learned map and the transform prediction. Without positions both are the n × d pooled
    array; token-level sets are read as ``reading`` says (see the module docstring)."""

    n: int
    stored: Mapping[str, np.ndarray | TokenRows]
    reading: Reading | None

    def read(self, layer: str, found: np.ndarray | TokenRows) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(found, TokenRows):
            return found, found
        if self.reading is None:
            raise InputError(f"layer {layer!r} gave every position, not one row per sample")
        if self.reading.how != PER_POSITION:
            kept = pooled(found.values, found.sample, self.n, self.reading.how, found.special)
            return kept, kept
        x = _rows_of(self.stored[layer])
        same = np.array_equal(found.sample, x.sample)
        if not (same and np.array_equal(found.position, x.position)):
            raise InputError(
                f"layer {layer!r} gave the transformed samples other positions than its stored "
                "activations of them; probe it with positions mean, first or last"
            )
        return found.values, pooled(found.values, found.sample, self.n, "mean", found.special)

    def per_sample(self, layer: str, values: np.ndarray) -> np.ndarray:
        """Per-row values of a layer (one per row its ``rows`` array has) as one per sample:
        the mean of each sample's rows where positions are read one by one."""
        if self.reading is None or self.reading.how != PER_POSITION:
            return values
        sample = _rows_of(self.stored[layer]).sample
        return pooled(np.asarray(values, np.float64)[:, None], sample, self.n, "mean")[:, 0]


def _probe_family(
    engine: _Engine,
    family: Transform,
    magnitudes: list[float],
    reader: _Reader,
    logits_x: np.ndarray | None,
    step: Callable[[], None],
) -> FamilyProbe:
    layers, seed, n = engine.layers, engine.seed, len(engine.x)
    rng = np.random.default_rng(seed)
    predict_rows = np.sort(rng.permutation(n)[:PREDICTION_SAMPLES])
    structured_rows = np.sort(rng.permutation(n)[:STRUCTURED_SAMPLES])
    fx_rows, fx = {}, {}
    for layer in layers:
        fx_rows[layer], fx[layer] = reader.read(layer, reader.stored[layer])
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

        found = engine.outputs(transform)
        step()
        same, logits = None, _logits(found)
        if logits_x is not None and logits is not None:
            same = measure("output", prediction_consistency, logits_x, logits)
        consistency.append(None if same is None else same.share)
        for i, layer in enumerate(layers):
            fgx_rows, fgx = reader.read(layer, found[layer])
            result = measure(layer, invariance, fx_rows[layer], fgx_rows)
            if result is not None:
                stats["invariance"][i][j] = result.score
                per_sample[i, j] = reader.per_sample(layer, result.per_sample)
            fit = measure(layer, learned_equivariance, fx[layer], fgx, seed=seed)
            for key, attribute in LEARNED.items():
                stats[key][i][j] = getattr(fit, attribute, None)
            fgx_subset[layer].append(fgx[predict_rows])
        del found
        if family.induced and engine.has_maps(structured_rows):
            if raw_x is None:
                raw_x = engine.outputs(lambda batch, idx: batch, structured_rows, raw=True)
            raw_gx = engine.outputs(transform, structured_rows, raw=True)
            for i, layer in enumerate(layers):
                if layer not in raw_x or layer not in raw_gx:
                    continue
                expected = _induced(family, t, _array(raw_x[layer]), engine.x.shape)
                if expected is not None:
                    error = structured_equivariance(_array(raw_gx[layer]), expected)
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
            minus, span = dict(reader.stored), h / 2
        step()
        lies = [
            measure(
                k,
                lie_derivative,
                reader.read(k, plus[k])[0],
                reader.read(k, minus[k])[0],
                span,
                fx_rows[k],
            )
            for k in layers
        ]
        lie = [None if v is None else v.score for v in lies]
    transform_r2: list[float | None] = [None] * len(layers)
    if len([t for t in magnitudes if t != 0]) >= 2:
        for i, layer in enumerate(layers):
            before = [fx[layer][predict_rows]] * len(magnitudes)
            found_t = measure(
                layer, transform_prediction, before, fgx_subset[layer], magnitudes, seed=seed
            )
            transform_r2[i] = None if found_t is None else found_t.r2
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
        positions=None if reader.reading is None else reader.reading.how,
        positions_note="" if reader.reading is None else reader.reading.note,
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
