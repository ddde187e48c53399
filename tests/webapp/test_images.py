"""The one image encoder: what it sends decodes to the pixels it was given."""

import io

import numpy as np
import pytest
from PIL import Image

from webapp.catalog.images import png


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3)])
def test_png_round_trips_grey_and_rgb_pixels(shape):
    pixels = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    data = png(pixels)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    decoded = np.asarray(Image.open(io.BytesIO(data)))
    np.testing.assert_array_equal(decoded, pixels)
