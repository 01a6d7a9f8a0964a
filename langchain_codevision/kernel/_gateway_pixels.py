"""The client's side of the pixel comm: one cell's pixel buffer, rebuilt from chunks.

The kernel sends the part of its pixel buffer each execute request wrote as
``{"op": "pixels", "base": offset}`` messages, one binary buffer each; result and display
images then name an ``offset`` and ``length`` in that buffer. Everything here comes from
a hostile kernel: the buffer is bounded, and each image description is checked (known
mode, size within ``max_result_pixels``, a byte count that adds up) before pixels are read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._pixels import pixel_array, pixel_layout
from .limits import KernelLimits

__all__ = ["PixelInbox"]


class PixelInbox:
    """The current request's pixel buffer (a new request's first chunk starts a new one)."""

    def __init__(self, limits: KernelLimits) -> None:
        self.limits = limits
        self.cap = limits.max_images * limits.max_result_pixels * 4
        self.data = bytearray()
        self.request: str | None = None

    def clear(self) -> None:
        """Forget what was received (a new connection)."""
        self.data = bytearray()
        self.request = None

    def take(self, request: str | None, base: Any, buffers: list[bytes]) -> int:
        """Place one chunk sent for ``request``; returns the bytes kept (0: refused)."""
        if request != self.request:
            self.data = bytearray()
            self.request = request
        if not isinstance(base, int) or base < 0 or len(buffers) != 1:
            return 0
        chunk = buffers[0]
        if base + len(chunk) > self.cap:
            return 0
        if len(self.data) < base:
            self.data.extend(bytes(base - len(self.data)))
        self.data[base : base + len(chunk)] = chunk
        return len(chunk)

    def read(self, where: dict[str, Any]) -> np.ndarray:
        """One image the kernel described, from the received pixels (a read-only array)."""
        mode, size, length, offset = pixel_layout(where, self.limits.max_result_pixels)
        data = bytes(self.data[offset : offset + length])
        if len(data) != length:
            raise ValueError(f"the pixel buffer ended early ({len(data)} of {length} bytes)")
        return pixel_array(data, mode, size)
