"""Targeted hints for typical tool-call mistakes (the default profile's error replies).

The hint names the likely cause: a wrong ``image_index``, no PIL image in ``result``, numpy
vs PIL confusion, a crop box outside the image, an unknown name, a time-out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_TRACEBACK_CHARS", "MAX_TRACEBACK_LINES", "hint_for", "trim_for_model"]

MAX_TRACEBACK_LINES = 24
MAX_TRACEBACK_CHARS = 1800

_PIL_METHODS = "rotate|crop|resize|transpose|convert|filter|save|paste|point|getpixel"


def trim_for_model(traceback: str) -> str:
    """Keep the tail of a traceback within the line and character budgets."""
    lines = [line for line in traceback.splitlines() if line.strip()]
    if len(lines) > MAX_TRACEBACK_LINES:
        lines = ["...", *lines[-MAX_TRACEBACK_LINES:]]
    text = "\n".join(lines)
    return text if len(text) <= MAX_TRACEBACK_CHARS else "..." + text[-MAX_TRACEBACK_CHARS:]


def hint_for(
    failure: Mapping[str, Any],
    *,
    code: str = "",
    image_count: int = 1,
    image_size: tuple[int, int] | None = None,
    variables: list[dict[str, Any]] | None = None,
) -> str | None:
    """A targeted hint for a typical mistake, or ``None``.

    Args:
        failure: A :class:`~langchain_codevision.protocol.failures.Failure`.
        code: The code that failed.
        image_count: Images in the episode.
        image_size: Size of the selected image.
        variables: What the result variables held.

    Returns:
        The hint, or ``None`` when the failure has no typical cause.
    """
    kind = failure.get("kind", "")
    text = f"{kind}: {failure.get('message', '')}\n{failure.get('traceback', '')}"
    last = image_count - 1
    size = (
        f" The selected image is {image_size[0]}x{image_size[1]} (width x height)."
        if image_size
        else ""
    )
    if "image_index" in text:
        return f"Valid image_index values are 0 to {last}."
    if kind == "NoImage":
        for entry in variables or []:
            if entry.get("kind") == "ndarray":
                return (
                    f"`{entry['name']}` is a numpy array (shape {entry.get('shape')}, dtype "
                    f"{entry.get('dtype')}), not a PIL image: convert it with "
                    "Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))."
                )
            if entry.get("kind") == "other":
                return f"`{entry['name']}` holds a {entry.get('type')}; it must be a PIL image."
        return "Assign the processed PIL image to `result`."
    if re.search(rf"'numpy\.ndarray' object has no attribute '({_PIL_METHODS})'", text):
        return (
            "That is a PIL method but the object is a numpy array: wrap it with "
            "Image.fromarray(arr) first."
        )
    if re.search(r"'(\w*Image\w*)' object has no attribute '(shape|astype|dtype)'", text):
        return "That is a numpy attribute but the object is a PIL image: use np.array(image) first."
    if "cv2.error" in text or (kind == "error" and "cv::" in text):
        return (
            "OpenCV functions need numpy arrays (np.array(image)); convert back with "
            "Image.fromarray."
        )
    if (".crop(" in code and kind in ("BadImage", "ValueError", "SystemError")) or re.search(
        r"(right|lower)' is less than '(left|upper)'|outside|zero-sized", text
    ):
        return (
            "Crop boxes are (left, upper, right, lower) with left < right and upper < lower, "
            f"inside the image.{size}"
        )
    return _simple_hint(kind)


_PLAIN_PYTHON = "Send plain Python (no ``` fences, consistent indentation) in the `code` string."
_SMALLER = "Crop or downscale before heavy operations; avoid huge intermediate arrays."
_SIMPLE_HINTS = {
    "NameError": (
        "Names available without import: image, img, draw, Image, ImageEnhance, "
        "ImageFilter, ImageOps, ImageDraw, ImageFont, np, cv2, math; your own variables "
        "persist between calls unless the kernel restarted."
    ),
    "SyntaxError": _PLAIN_PYTHON,
    "IndentationError": _PLAIN_PYTHON,
    "Timeout": "Avoid Python loops over pixels; use numpy or cv2 operations, or crop first.",
    "MemoryError": _SMALLER,
    "_ArrayMemoryError": _SMALLER,
    "KernelDied": "The kernel crashed and restarted: your variables are gone, the images are kept.",
    "Malformed": (
        'Write the call as <tool_call>{"name": "code_image_tool", "arguments": {"code": '
        '"...", "description": "...", "image_index": 0}}</tool_call> with valid JSON, or '
        "answer inside <answer> </answer>."
    ),
    "NoAction": (
        "Either call the tool inside <tool_call> </tool_call> or answer inside <answer> </answer>."
    ),
}


def _simple_hint(kind: str) -> str | None:
    return _SIMPLE_HINTS.get(kind)
