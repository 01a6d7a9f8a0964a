"""Kernel-side helpers for a kernel reached through a gateway (sent as source, run there).

The kernel runs the same runtime as a local kernel (``_runtime.py``: image binding, result
collection, output caps, reset); only the transport of pixels differs. Instead of files
the host reads, pixels travel as binary buffers of Jupyter comm messages on the comm
``codevision.pixels`` the host opens:

* in: the host sends ``{"op": "put", "key", "shape", "dtype"}`` with the raw array as a
  buffer; the kernel registers it and answers ``{"op": "put", "ok", ...}``;
* out: after each execute request (once its ``user_expressions`` ran, so result images
  are saved too) the new part of the runtime's pixel buffer is sent as
  ``{"op": "pixels", "base": offset}`` messages of at most 8 MiB each, before the reply.

This module must import nothing from ``langchain_codevision``: it runs in the kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

COMM_TARGET = "codevision.pixels"
CHUNK_BYTES = 8 << 20


class Remote:
    """Pixel transport over a comm, attached to a runtime (``__cv_runtime__``)."""

    def __init__(self, shell: Any, runtime: Any) -> None:
        self.shell = shell
        self.runtime = runtime
        self.comm: Any = None
        self.sent = 0
        shell.kernel.comm_manager.register_target(COMM_TARGET, self._open)
        shell.events.register("pre_run_cell", self._rewind)
        evaluate = shell.user_expressions

        def user_expressions(expressions: dict[str, str]) -> dict[str, Any]:
            try:
                return evaluate(expressions)
            finally:
                self.flush()

        shell.user_expressions = user_expressions

    def _open(self, comm: Any, _msg: Any) -> None:
        self.comm = comm
        comm.on_msg(self._on_msg)

    def _rewind(self, *_args: Any) -> None:
        self.sent = 0

    def _on_msg(self, msg: dict[str, Any]) -> None:
        data = msg.get("content", {}).get("data", {})
        if data.get("op") != "put":
            return
        try:
            reply = {"op": "put", "ok": True, "desc": self._put(data, msg.get("buffers") or [])}
        except Exception as exc:  # reported to the host, never raised in the kernel
            reply = {"op": "put", "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        self.comm.send(reply)

    def _put(self, data: dict[str, Any], buffers: list[Any]) -> str:
        key = str(data["key"])
        shape = tuple(int(v) for v in data["shape"])
        dtype = np.dtype(str(data["dtype"]))
        if dtype.hasobject or not 2 <= len(shape) <= 3 or len(buffers) != 1:
            raise ValueError("not an image array")
        raw = memoryview(buffers[0]).cast("B")
        if raw.nbytes != int(np.prod(shape)) * dtype.itemsize:
            raise ValueError("the pixel buffer does not match the shape")
        array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        image = Image.fromarray(array)
        self.runtime.images[key] = image
        return f"{image.mode} {image.size[0]}x{image.size[1]}"

    def flush(self) -> None:
        """Send the pixels written since the last flush (copies: the send is deferred)."""
        out = self.runtime.out
        end, buffer = out.offset, out._map
        if self.comm is None or buffer is None or end <= self.sent:
            return
        for start in range(self.sent, end, CHUNK_BYTES):
            stop = min(start + CHUNK_BYTES, end)
            self.comm.send({"op": "pixels", "base": start}, buffers=[buffer[start:stop]])
        self.sent = end


def isolation(runtime: Any) -> str:
    """The jail layers this kernel runs under, as its launcher recorded them."""
    layers = getattr(runtime, "isolation", None)
    return layers if isinstance(layers, str) and layers else "none"


def attach(shell: Any, runtime: Any) -> str:
    """Attach the transport once; returns :func:`isolation`."""
    if getattr(runtime, "_cv_remote", None) is None:
        runtime._cv_remote = Remote(shell, runtime)
    return isolation(runtime)
