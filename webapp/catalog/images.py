"""The one image encoder: every picture the site sends (a sample's thumbnail, a probe's
transformed preview) is a uint8 array encoded here as PNG."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from webapp.catalog.models import Dataset


def png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``h × w`` (grey) or ``h × w × 3`` (RGB) image."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnail(dataset: Dataset, index: int) -> bytes:
    """PNG of sample ``index``'s stored thumbnail (read from a memory map: one sample's
    pixels, not the dataset's)."""
    if dataset.thumbnails is None:
        raise LookupError("this dataset has no images")
    with dataset.thumbnails.local_path() as path:
        return png(np.load(path, mmap_mode="r", allow_pickle=False)[index])
