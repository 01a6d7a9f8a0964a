"""The one check of a kernel's description of a result image, before any pixel is read.

Local kernels (pixels in the jail's transfer file) and remote ones (pixels over the
gateway's websocket) describe result images the same way: ``mode``, ``size``, ``offset``
and ``length`` in a pixel buffer. The description comes from hostile code, so it is
checked here: a known mode, a size within the pixel cap, a byte count that adds up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BANDS", "MODES", "pixel_array", "pixel_layout"]

BANDS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
MODES = {bands: mode for mode, bands in BANDS.items()}
"""The mode of an 8-bit array by its bands (an ``HxW`` array has one)."""


def pixel_layout(where: Any, max_pixels: int) -> tuple[str, tuple[int, int], int, int]:
    """``(mode, size, length, offset)`` of a kernel's image description, checked."""
    if not isinstance(where, dict):
        raise ValueError("the kernel described an image in an unknown form")
    mode, size = where.get("mode"), where.get("size")
    bands = BANDS.get(str(mode))
    if bands is None or not isinstance(size, list) or len(size) != 2:
        raise ValueError(f"the kernel described an image it cannot send ({mode}, {size})")
    try:
        width, height = (int(v) for v in size)
        length, offset = width * height * bands, int(where.get("offset", 0))
        declared = int(where.get("length", -1))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"the kernel described an image it cannot send ({mode}, {size})") from None
    if width <= 0 or height <= 0 or width * height > max_pixels:
        raise ValueError(f"the image is {width}x{height}; at most {max_pixels} pixels are accepted")
    if declared != length or offset < 0:
        raise ValueError("the kernel's pixel description does not add up")
    return str(mode), (width, height), length, offset


def pixel_array(data: Any, mode: str, size: tuple[int, int]) -> np.ndarray:
    """The checked pixels ``data`` of a ``mode`` image of ``size`` as a read-only array.

    ``(height, width)`` for ``L``, ``(height, width, bands)`` otherwise: the layout every
    image function of the package takes, so that no PIL copy is made on the way.
    """
    width, height = size
    bands = BANDS[mode]
    shape = (height, width) if bands == 1 else (height, width, bands)
    array = np.frombuffer(data, dtype=np.uint8).reshape(shape)
    array.flags.writeable = False
    return array
