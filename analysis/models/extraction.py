"""Per-layer activations of a model over a dataset, reduced to ``n × d`` float32 arrays."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import torch
from torch import nn

from analysis.errors import InputError
from analysis.models.base import Model, Recorder
from analysis.models.choices import check_pooling
from analysis.models.modules import as_model

Progress = Callable[[float], None]

Batch = torch.Tensor | list[str]
"""One model input: a float32 tensor, or a list of strings for texts."""


def pool(t: torch.Tensor, pooling: str) -> torch.Tensor:
    """Reduce a batch of layer outputs to ``batch × d``."""
    check_pooling(pooling)
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
    if not layers:
        raise InputError("choose at least one layer")
    check_pooling(pooling)
    check_inputs(model, x)
    device = torch.device(device) if device is not None else default_device()
    loaded = as_model(model).to(device).eval()
    record = loaded.recorder(layers, pooling)
    order = loaded.run_order(x)
    return _run_batches(record, x, layers, pooling, batch_size, device, progress, order)


def full_precision() -> AbstractContextManager[None]:
    """Full float32 on GPUs too: cuDNN would otherwise run convolutions in TF32 (10-bit
    mantissa), which moves activations by ~1e-4 relative to the same model on a CPU."""
    return torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False)


def _run_batches(
    record: Recorder,
    x: np.ndarray,
    layers: list[str],
    pooling: str,
    batch_size: int,
    device: torch.device,
    progress: Progress | None,
    order: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Batches of ``batch_size`` samples taken in ``order`` (default: the dataset's), each
    batch's rows written back to their places."""
    n = len(x)
    out: dict[str, np.ndarray] = {}
    with torch.inference_mode(), full_precision():
        for start in range(0, n, batch_size):
            rows = slice(start, start + batch_size) if order is None else order[start:][:batch_size]
            batch = batch_of(x, rows, device)
            outputs = outputs_of(record, batch, layers)
            for name, value in outputs.items():
                pooled = pooled_output(name, value, pooling)
                if name not in out:
                    out[name] = np.empty((n, pooled.shape[1]), dtype=np.float32)
                out[name][rows] = pooled.cpu().numpy()
            if progress:
                progress(min(start + batch_size, n) / n)
    return out


def outputs_of(record: Recorder, batch: Batch, layers: list[str]) -> dict[str, torch.Tensor]:
    """The raw float32 outputs of ``layers`` for one batch; the model failing on it, or a
    layer returning something other than a tensor, is the user's input error."""
    try:
        outputs = record(batch)
    except InputError:
        raise
    except Exception as err:
        what = f"shape {tuple(batch.shape)}" if isinstance(batch, torch.Tensor) else "texts"
        raise InputError.caused_by(f"the model failed on input of {what}", err) from None
    for name in layers:
        if not isinstance(outputs.get(name), torch.Tensor):
            raise InputError(f"layer {name!r} did not return a tensor")
    return {name: outputs[name].float() for name in layers}


def pooled_output(name: str, value: torch.Tensor, pooling: str) -> torch.Tensor:
    """``value`` (a layer's raw output for a batch) reduced to ``batch × d``, checked finite."""
    pooled = pool(value, pooling)
    if not torch.isfinite(pooled).all():
        raise InputError(f"layer {name!r} produced NaN or Inf activations")
    return pooled
