"""What a probe showed its model, for the samples a page shows: at each magnitude, the samples
the family moves most at any layer, transformed exactly as in the run (same seed, same
per-sample draws) and kept small: uint8 image previews, or the transformed texts.

A probe run computes these once, beside its statistics, so that pages show them without
running a transform (and without torch) in the web process.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from analysis.data.datasets import image_previews
from analysis.probes.statistics import most_moved
from analysis.probes.transforms import get_transform

__all__ = ["shown", "previews"]


def shown(per_sample: np.ndarray, count: int) -> list[np.ndarray]:
    """Per magnitude, the sorted indices of the ``count`` samples moved most at each layer
    (their union over layers) of per-sample invariance ``(layers, magnitudes, n)``."""
    layers, magnitudes, _ = per_sample.shape
    return [
        np.unique(np.concatenate([most_moved(per_sample[i, j], count) for i in range(layers)]))
        for j in range(magnitudes)
    ]


def previews(
    family: str,
    x: np.ndarray,
    magnitudes: Sequence[float],
    per_sample: np.ndarray,
    seed: int,
    count: int,
) -> dict[str, np.ndarray] | None:
    """For family ``family`` over dataset ``x`` (images n × C × H × W, or n texts), the
    transformed samples :func:`shown` picks: ``magnitude`` (the index into ``magnitudes``) and
    ``index`` (the sample) per row, with ``image`` (uint8 previews) or ``text``. None for
    vector families: a page shows a vector's values, not a picture of it."""
    transform = get_transform(family)
    if transform.modality == "vector":
        return None
    rows = shown(per_sample, count)
    moved: list[np.ndarray] = []
    for t, indices in zip(magnitudes, rows, strict=True):
        if transform.modality == "image":
            batch = torch.from_numpy(np.ascontiguousarray(x[indices], dtype=np.float32))
            moved.append(image_previews(transform(batch, t, seed=seed, indices=indices).numpy()))
        else:
            texts = transform([str(text) for text in x[indices]], t, seed=seed, indices=indices)
            moved.append(np.array(texts, dtype=str))
    return {
        "magnitude": np.concatenate([np.full(len(r), j) for j, r in enumerate(rows)]),
        "index": np.concatenate(rows),
        transform.modality: np.concatenate(moved),
    }
