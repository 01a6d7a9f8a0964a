"""Turn the kernel's iopub messages into an :class:`ExecutionResult`, within limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from ._runtime import IMAGE_MIME, TRUNCATION_MARKER
from .limits import KernelLimits
from .result import ExecutionError, ExecutionResult, OutputImage, decode_png_payload, strip_ansi

MAX_TRACEBACK_CHARS = 4000
_SEPARATOR = "-" * 20


def trim_traceback(lines: list[str], max_chars: int = MAX_TRACEBACK_CHARS) -> str:
    """Plain-text traceback: ANSI stripped, IPython rulers and runtime frames removed."""
    text = strip_ansi("\n".join(lines))
    kept = []
    skipping = False
    for line in text.splitlines():
        if line.startswith(_SEPARATOR):
            continue
        if "codevision_kernel_runtime" in line or "_runtime.py" in line:
            skipping = True
            continue
        if skipping and (line.startswith(" ") or not line.strip()):
            continue
        skipping = False
        kept.append(line)
    text = "\n".join(kept).strip()
    if len(text) > max_chars:
        head = max_chars // 3
        text = text[:head] + "\n[... traceback trimmed ...]\n" + text[-(max_chars - head) :]
    return text


class OutputCollector:
    """Accumulates one execution's outputs into ``result``, applying the limits."""

    def __init__(
        self,
        result: ExecutionResult,
        limits: KernelLimits,
        reader: Callable[[dict[str, Any]], Image.Image | np.ndarray],
    ) -> None:
        self.result = result
        self.reader = reader
        self.limits = limits
        self.chars = {"stdout": 0, "stderr": 0}
        self.parts: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.error_traceback = ""
        self.output_chars = 0
        self.pending: list[tuple[OutputImage, dict[str, Any]]] = []
        self._marker = TRUNCATION_MARKER.format(limit=limits.max_output_chars)

    def add(self, msg: dict[str, Any]) -> None:
        """Handle one iopub message that belongs to the execution.

        Messages come from the kernel and may be forged: one that does not have the
        shape Jupyter promises is dropped (and the result marked truncated), never raised.
        """
        try:
            self._add(msg)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, OSError):
            self.result.truncated = True

    def _add(self, msg: dict[str, Any]) -> None:
        kind = msg["msg_type"]
        content = msg["content"]
        if kind == "stream":
            self._add_text(content.get("name", "stdout"), content.get("text", ""))
        elif kind in ("display_data", "execute_result", "update_display_data"):
            self._add_bundle(content.get("data", {}), kind == "execute_result")
        elif kind == "error":
            self.error_traceback = trim_traceback(content.get("traceback", []))
        elif kind == "clear_output" and not content.get("wait"):
            for name in self.parts:
                self.parts[name].clear()
                self.chars[name] = 0

    def _add_text(self, name: str, text: str) -> None:
        name = name if name in self.parts else "stdout"
        if self._marker.strip() in text:
            self.result.truncated = True
        limit = self.limits.max_output_chars
        room = limit - self.chars[name]
        if room <= 0:
            self.result.truncated = True
            return
        if len(text) > room:
            text = text[:room] + self._marker
            self.result.truncated = True
            self.chars[name] = limit
        else:
            self.chars[name] += len(text)
        self.parts[name].append(text)

    def _add_bundle(self, data: dict[str, Any], is_result: bool) -> None:
        if IMAGE_MIME in data:
            output = OutputImage("display")
            if self._add_image(output):
                self.defer(output, data[IMAGE_MIME])
            return
        if "image/png" in data:
            png = decode_png_payload(data["image/png"])
            if self._png_fits(png):
                self._add_image(OutputImage.from_png(png, "figure"))
            return
        text = data.get("text/plain")
        if is_result and text is not None:
            limit = self.limits.max_output_chars
            if len(text) > limit:
                text = text[:limit] + self._marker
                self.result.truncated = True
            self.result.text = text
            rest = {k: v for k, v in data.items() if k != "text/plain"}
            if rest:
                self._add_output(rest)
        elif data:
            self._add_output(dict(data))

    def _add_output(self, bundle: dict[str, Any]) -> None:
        """Keep a rich output bundle while all of them stay within the output limit."""
        size = sum(len(str(value)) for value in bundle.values())
        if self.output_chars + size > self.limits.max_output_chars:
            self.result.truncated = True
            return
        self.output_chars += size
        self.result.outputs.append(bundle)

    def _png_fits(self, png: bytes) -> bool:
        """Whether a figure's PNG header declares a size within ``max_result_pixels``."""
        if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
            self.result.truncated = True
            return False
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        if width * height > self.limits.max_result_pixels:
            self.result.truncated = True
            self.result.error = self.result.error or ExecutionError(
                "ResultError",
                f"a figure of {width}x{height} pixels was dropped; at most "
                f"{self.limits.max_result_pixels} pixels are accepted",
            )
            return False
        return True

    def _add_image(self, output: OutputImage) -> bool:
        """Keep ``output`` unless the image limit is reached."""
        if len(self.result.images) >= self.limits.max_images:
            self.result.truncated = True
            return False
        self.result.images.append(output)
        return True

    def defer(self, output: OutputImage, where: dict[str, Any]) -> None:
        """Fill ``output`` from the kernel's pixel buffer in :meth:`load_pending`."""
        self.pending.append((output, where))

    def pending_bytes(self) -> int:
        """The bytes the deferred images say they hold.

        One that says nothing usable counts as more than any limit: its read fails
        wherever it runs.
        """
        total = 0
        for _, where in self.pending:
            length = where.get("length") if isinstance(where, dict) else None
            total += length if isinstance(length, int) and length >= 0 else 1 << 62
        return total

    def load_pending(self) -> None:
        """Read every deferred image (a copy per image; see ``_cell.INLINE_READ_BYTES``)."""
        for output, where in self.pending:
            try:
                output._hold(self.reader(where))
            except (OSError, ValueError, TypeError, AttributeError, OverflowError) as exc:
                self.result.images.remove(output)
                self.result.error = self.result.error or ExecutionError(
                    "ResultError", f"could not read an image the code produced: {exc}"
                )
        self.pending.clear()

    def finish(self) -> None:
        """Join the collected text into the result."""
        self.result.stdout = "".join(self.parts["stdout"])
        self.result.stderr = "".join(self.parts["stderr"])
        if self.result.error is not None and not self.result.error.traceback:
            self.result.error.traceback = self.error_traceback
