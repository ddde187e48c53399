"""Per-layer activations of a model over a dataset: reduced to ``n × d`` float32 arrays
(:func:`extract_activations`), or kept at every position with each row's sample and position
(:func:`extract_tokens`)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from typing import IO

import numpy as np
import torch
from torch import nn

from analysis.errors import InputError
from analysis.models.base import Model, Positions, Recorder, positions_of
from analysis.models.choices import TOKENS, check_pooling
from analysis.models.modules import as_model

Progress = Callable[[float], None]

Batch = torch.Tensor | list[str]
"""One model input: a float32 tensor, or a list of strings for texts."""


@dataclass(frozen=True)
class TokenRows:
    """A layer's activations at every position over a dataset: ``values`` ``rows × d``
    float32, each row's ``sample`` (its index in the dataset) and ``position`` (see
    :class:`analysis.models.base.Positions`), sorted by sample, then position."""

    values: np.ndarray
    sample: np.ndarray
    position: np.ndarray
    special: np.ndarray
    """Whether each row is one the ``mean`` pooling leaves out (a vision transformer's class
    and distillation tokens; :attr:`analysis.models.base.Positions.special`)."""
    positional: bool
    """Whether the layer's output has positions (a token sequence or a map), not one row per
    sample (a ``batch × d`` output, each sample's row at position 0)."""


def pool(t: torch.Tensor, pooling: str) -> torch.Tensor:
    """Reduce a batch of layer outputs to ``batch × d``."""
    check_pooling(pooling)
    if pooling == TOKENS:
        raise InputError("pooling 'tokens' keeps every position: extract_tokens stores them")
    if t.ndim == 1:
        return t[:, None]
    if t.ndim == 2:
        return t
    if pooling == "flatten":
        return t.flatten(1)
    if t.ndim == 3:  # tokens n × T × d
        return {"mean": t.mean(1), "cls": t[:, 0], "last": t[:, -1]}[pooling]
    if pooling == "mean":  # conv maps n × C × (spatial…)
        return t.flatten(2).mean(2)
    raise InputError(f"pooling {pooling!r} applies to token sequences, not {t.ndim}-D outputs")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_inputs(model: Model | nn.Module, x: np.ndarray) -> None:
    """The dataset's samples are what the model reads (:attr:`Model.inputs`: texts, arrays,
    images ``n × C × H × W``, or texts and images)."""
    texts = x.dtype.kind == "U"
    reads = as_model(model).inputs
    if texts and "text" not in reads:
        raise InputError(f"this model reads {reads}s and the dataset holds text")
    if not texts and reads == "text":
        raise InputError("this model reads text and the dataset holds arrays")
    if not texts and "image" in reads and x.ndim != 4:
        raise InputError(
            f"this model reads images (n × C × H × W) and the dataset holds samples of shape "
            f"{x.shape[1:]}"
        )


def batch_of(x: np.ndarray, rows: np.ndarray | slice, device: torch.device | None = None) -> Batch:
    """The samples ``rows`` of ``x`` as one model input: a float32 tensor (on ``device``), or
    a list of strings for texts."""
    if x.dtype.kind == "U":
        return [str(s) for s in x[rows]]
    batch = torch.from_numpy(np.ascontiguousarray(x[rows])).to(torch.float32)
    return batch if device is None else batch.to(device)


def to_device(batch: Batch, device: torch.device) -> Batch:
    return batch.to(device) if isinstance(batch, torch.Tensor) else batch


def extract_activations(
    model: Model | nn.Module,
    x: np.ndarray,
    layers: list[str],
    pooling: str = "mean",
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Run ``model`` over ``x`` in batches and return ``{layer: n × d float32}``.

    Raises :class:`InputError` naming the layer when an output is not finite or not a tensor.
    """
    n = len(x)
    out: dict[str, np.ndarray] = {}
    for rows, outputs in _batches(model, x, layers, pooling, batch_size, device, progress):
        for name, value in outputs.items():
            if isinstance(value, Positions):
                raise InputError(f"layer {name!r} gave every position, not one row per sample")
            pooled = pooled_output(name, value, pooling)
            if name not in out:
                out[name] = np.empty((n, pooled.shape[1]), dtype=np.float32)
            out[name][rows] = pooled.cpu().numpy()
    return out


def extract_tokens(
    model: Model | nn.Module,
    x: np.ndarray,
    layers: list[str],
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
) -> dict[str, TokenRows]:
    """Run ``model`` over ``x`` in batches and return every position of each layer as a row
    (the ``tokens`` pooling, :class:`TokenRows`): padding tokens are never rows. Each batch's
    values go to a temporary file as they come (:class:`_Spill`), so the peak memory is about
    the rows returned plus one batch, not twice the rows."""
    spills: dict[str, _Spill] = {}
    indices = np.arange(len(x))
    with ExitStack() as files:
        for rows, outputs in _batches(model, x, layers, TOKENS, batch_size, device, progress):
            dataset_rows = indices[rows]
            for name, value in outputs.items():
                found = value if isinstance(value, Positions) else positions_of(value)
                if not torch.isfinite(found.values).all():
                    raise InputError(f"layer {name!r} produced NaN or Inf activations")
                if name not in spills:
                    positional = isinstance(value, Positions) or value.ndim > 2
                    spills[name] = _Spill(files.enter_context(tempfile.TemporaryFile()), positional)
                spills[name].add(found, dataset_rows)
        return {name: spill.rows() for name, spill in spills.items()}


class _Spill:
    """One layer's rows as the batches give them: the values appended to ``file``, each row's
    sample (in the dataset), position and special kept (a few bytes a row); :meth:`rows` reads
    the values back into one array, sorted by sample, then position, a batch at a time."""

    def __init__(self, file: IO[bytes], positional: bool) -> None:
        self.file = file
        self.positional = positional
        self.d = 0
        self.largest = 0  # the most rows of one batch: how many are read back at a time
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, found: Positions, dataset_rows: np.ndarray) -> None:
        values = found.values.cpu().numpy().astype(np.float32, copy=False)
        self.file.write(np.ascontiguousarray(values).data)
        self.d, self.largest = values.shape[1], max(self.largest, len(values))
        sample = dataset_rows[found.sample.cpu().numpy()].astype(np.int64)
        position = found.position.cpu().numpy().astype(np.int64)
        self.parts.append((sample, position, found.special.cpu().numpy().astype(bool)))

    def rows(self) -> TokenRows:
        sample = np.concatenate([part[0] for part in self.parts])
        position = np.concatenate([part[1] for part in self.parts])
        special = np.concatenate([part[2] for part in self.parts])
        self.parts = []
        order = np.lexsort((position, sample))
        destination = np.empty_like(order)  # where each row, in the file's order, goes
        destination[order] = np.arange(len(order))
        values = np.empty((len(order), self.d), dtype=np.float32)
        self.file.seek(0)
        for start in range(0, len(order), max(self.largest, 1)):
            count = min(self.largest, len(order) - start)
            chunk = np.frombuffer(self.file.read(count * self.d * 4), dtype=np.float32)
            values[destination[start : start + count]] = chunk.reshape(count, self.d)
        return TokenRows(values, sample[order], position[order], special[order], self.positional)


def full_precision() -> AbstractContextManager[None]:
    """Full float32 on GPUs too: cuDNN would otherwise run convolutions in TF32 (10-bit
    mantissa), which moves activations by ~1e-4 relative to the same model on a CPU."""
    return torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False)


def _batches(
    model: Model | nn.Module,
    x: np.ndarray,
    layers: list[str],
    pooling: str,
    batch_size: int,
    device: torch.device | str | None,
    progress: Progress | None,
) -> Iterator[tuple[np.ndarray | slice, dict[str, torch.Tensor | Positions]]]:
    """Each batch's rows of ``x`` with the outputs of ``layers`` (raw, or pooled by a recorder
    that pools itself). Batches of ``batch_size`` samples are taken in the model's
    :meth:`~analysis.models.base.Model.run_order` (default: the dataset's)."""
    if not layers:
        raise InputError("choose at least one layer")
    check_pooling(pooling)
    check_inputs(model, x)
    device = torch.device(device) if device is not None else default_device()
    loaded = as_model(model).to(device).eval()
    record = loaded.recorder(layers, pooling)
    order = loaded.run_order(x)
    n = len(x)
    with torch.inference_mode(), full_precision():
        for start in range(0, n, batch_size):
            rows = slice(start, start + batch_size) if order is None else order[start:][:batch_size]
            yield rows, recorded(record, batch_of(x, rows, device), layers)
            if progress:
                progress(min(start + batch_size, n) / n)


def recorded(
    record: Recorder, batch: Batch, layers: list[str]
) -> dict[str, torch.Tensor | Positions]:
    """The float32 outputs of ``layers`` for one batch (tensors, or :class:`Positions` from a
    recorder that keeps every position itself); the model failing on it, or a layer returning
    something else, is the user's input error."""
    try:
        outputs = record(batch)
    except InputError:
        raise
    except Exception as err:
        what = f"shape {tuple(batch.shape)}" if isinstance(batch, torch.Tensor) else "texts"
        raise InputError.caused_by(f"the model failed on input of {what}", err) from None
    found: dict[str, torch.Tensor | Positions] = {}
    for name in layers:
        value = outputs.get(name)
        if not isinstance(value, torch.Tensor | Positions):
            raise InputError(f"layer {name!r} did not return a tensor")
        found[name] = value.float()
    return found


def outputs_of(record: Recorder, batch: Batch, layers: list[str]) -> dict[str, torch.Tensor]:
    """The raw float32 outputs of ``layers`` for one batch, each a tensor (see
    :func:`recorded`)."""
    found = {}
    for name, value in recorded(record, batch, layers).items():
        if not isinstance(value, torch.Tensor):
            raise InputError(f"layer {name!r} did not return a tensor")
        found[name] = value
    return found


def pooled_output(name: str, value: torch.Tensor, pooling: str) -> torch.Tensor:
    """``value`` (a layer's raw output for a batch) reduced to ``batch × d``, checked finite."""
    pooled = pool(value, pooling)
    if not torch.isfinite(pooled).all():
        raise InputError(f"layer {name!r} produced NaN or Inf activations")
    return pooled
