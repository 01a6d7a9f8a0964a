"""Turn the kernel's iopub messages into an :class:`ExecutionResult`, within limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
        reader: Callable[[dict[str, Any]], Image.Image],
    ) -> None:
        self.result = result
        self.reader = reader
        self.limits = limits
        self.chars = {"stdout": 0, "stderr": 0}
        self.parts: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.error_traceback = ""
        self.pending: list[tuple[OutputImage, dict[str, Any]]] = []
        self._marker = TRUNCATION_MARKER.format(limit=limits.max_output_chars)

    def add(self, msg: dict[str, Any]) -> None:
        """Handle one iopub message that belongs to the execution."""
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
            self._add_image(OutputImage.from_png(decode_png_payload(data["image/png"]), "figure"))
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
                self.result.outputs.append(rest)
        elif data:
            self.result.outputs.append(dict(data))

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

    def load_pending(self) -> None:
        """Read every deferred image (blocking file I/O: call it in a worker thread)."""
        for output, where in self.pending:
            try:
                output._image = self.reader(where)
            except (OSError, ValueError) as exc:
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
