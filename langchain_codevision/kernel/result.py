"""The structured outcome of one execution in a kernel."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

from ._pixels import MODES

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
ImageSource = Literal["result", "display", "figure"]


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython tracebacks are coloured)."""
    return ANSI_ESCAPE.sub("", text)


@dataclass
class OutputImage:
    """An image produced by an execution, kept at full resolution.

    Attributes:
        source: ``"result"`` (a designated variable), ``"display"`` (``display(img)`` or a
            PIL image as the cell's last expression) or ``"figure"`` (a matplotlib figure).
        name: The variable it came from, for ``source == "result"``.
        converted_from: ``"ndarray"`` when a numpy array was turned into an image.
    """

    source: ImageSource
    name: str | None = None
    converted_from: str | None = None
    _image: Image.Image | None = field(default=None, repr=False)
    _png: bytes | None = field(default=None, repr=False)
    _array: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_png(cls, png: bytes, source: ImageSource, **kw: Any) -> OutputImage:
        """Wrap PNG bytes; decoding waits until ``image`` is read."""
        return cls(source=source, _png=png, **kw)

    def _hold(self, pixels: Image.Image | np.ndarray) -> None:
        """Keep ``pixels`` as read from the kernel: a PIL image, or an array.

        An ``L``/``LA``/``RGB``/``RGBA`` array becomes PIL only when :attr:`image` is read.
        """
        if isinstance(pixels, np.ndarray):
            self._array, self._image = pixels, None
        else:
            self._image, self._array = pixels, None

    @property
    def image(self) -> Image.Image:
        """The image as PIL (built on first access)."""
        if self._image is None:
            if self._array is not None:
                self._image = Image.fromarray(self._array)
            else:
                assert self._png is not None
                self._image = Image.open(io.BytesIO(self._png))
                self._image.load()
        return self._image

    @property
    def pixels(self) -> Image.Image | np.ndarray:
        """The image in the form it arrived: an array from a kernel's pixel buffer, else PIL.

        The image functions of :mod:`langchain_codevision.images` take either; reading this
        never makes a copy.
        """
        return self._array if self._array is not None else self.image

    @property
    def png(self) -> bytes:
        """The image as PNG bytes (encoded on first access)."""
        if self._png is None:
            buffer = io.BytesIO()
            self.image.save(buffer, format="PNG", compress_level=1)
            self._png = buffer.getvalue()
        return self._png

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        if self._array is not None:
            return int(self._array.shape[1]), int(self._array.shape[0])
        return self.image.size

    @property
    def mode(self) -> str:
        """The PIL mode (``"RGB"``, ``"L"``, ...)."""
        if self._array is not None:
            return MODES[1 if self._array.ndim == 2 else int(self._array.shape[2])]
        return self.image.mode

    def __repr__(self) -> str:
        origin = f" {self.name}" if self.name else ""
        return f"OutputImage({self.source}{origin}, {self.mode} {self.size[0]}x{self.size[1]})"


@dataclass
class ExecutionError:
    """A Python exception raised by executed code, or a failure of the kernel itself.

    Attributes:
        name: Exception class name (``"ZeroDivisionError"``), or ``"Timeout"``,
            ``"KernelDied"``, ``"CodeRejected"``, ``"ResultLimit"`` for runtime failures.
        value: The exception message.
        traceback: Plain-text traceback (ANSI codes stripped, trimmed to the user's code).
    """

    name: str
    value: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {self.value}" if self.value else self.name


@dataclass
class ExecutionResult:
    """Everything one ``execute`` call produced.

    Attributes:
        stdout: Printed output (truncated with a visible marker past the output limit).
        stderr: Standard error output (same limit).
        text: ``text/plain`` of the cell's last expression, if any.
        outputs: Other rich outputs as MIME bundles (``{"text/html": ...}``, ...).
        images: Images from designated result variables, ``display()`` and figures.
        variables: What the designated result variables held (name, kind, type, shape).
        error: The exception or runtime failure, ``None`` on success.
        duration_s: Wall-clock seconds from request to reply.
        timed_out: The execution hit its time limit.
        restarted: The kernel was restarted (its state is lost).
        truncated: Some output or images were dropped by the limits.
        isolation: The jail layers in force, joined by ``+`` (backend first, e.g.
            ``"bwrap+uid+user+pid+mount+net+ipc+uts+cgroup+...+rlimits(AS,...)"``), or
            ``"none"`` for an unjailed kernel.
        execution_count: The kernel's execution counter for this cell.
    """

    stdout: str = ""
    stderr: str = ""
    text: str | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    images: list[OutputImage] = field(default_factory=list)
    variables: list[dict[str, Any]] = field(default_factory=list)
    error: ExecutionError | None = None
    duration_s: float = 0.0
    timed_out: bool = False
    restarted: bool = False
    truncated: bool = False
    isolation: str = "none"
    execution_count: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the code ran to completion without an exception."""
        return self.error is None

    @property
    def result_images(self) -> list[OutputImage]:
        """Images taken from designated result variables."""
        return [image for image in self.images if image.source == "result"]


def decode_png_payload(payload: str) -> bytes:
    """Decode the base64 ``image/png`` field of a Jupyter display message."""
    return base64.b64decode(payload)
