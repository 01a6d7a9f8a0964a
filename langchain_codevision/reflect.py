"""Turn a failed tool call into feedback the model can act on.

The reply keeps the error line, a trimmed traceback (only the user's own frames, no ANSI
colours) and, where the failure has a typical cause, a targeted hint: a wrong
``image_index``, no PIL image in ``result``, numpy vs PIL confusion, a crop box outside the
image, an unknown name, a time-out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_TRACEBACK_LINES = 24
MAX_TRACEBACK_CHARS = 1800


@dataclass(frozen=True)
class Failure:
    """What went wrong in one tool call.

    Attributes:
        kind: Exception name, or a protocol failure (``"BadArguments"``, ``"NoImage"``,
            ``"BadImage"``, ``"Malformed"``, ``"NoAction"``).
        message: One-line description.
        traceback: Trimmed traceback text (may be empty).
    """

    kind: str
    message: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}" if self.message else self.kind


def trim_for_model(traceback: str) -> str:
    """Keep the tail of a traceback within the line and character budgets."""
    lines = [line for line in traceback.splitlines() if line.strip()]
    if len(lines) > MAX_TRACEBACK_LINES:
        lines = ["...", *lines[-MAX_TRACEBACK_LINES:]]
    text = "\n".join(lines)
    return text if len(text) <= MAX_TRACEBACK_CHARS else "..." + text[-MAX_TRACEBACK_CHARS:]


_PIL_METHODS = "rotate|crop|resize|transpose|convert|filter|save|paste|point|getpixel"


def hint_for(
    failure: Failure,
    *,
    code: str = "",
    image_count: int = 1,
    image_size: tuple[int, int] | None = None,
    variables: list[dict[str, Any]] | None = None,
) -> str | None:
    """A targeted hint for a typical mistake, or ``None``."""
    text = f"{failure.kind}: {failure.message}\n{failure.traceback}"
    last = image_count - 1
    size = (
        f" The selected image is {image_size[0]}x{image_size[1]} (width x height)."
        if image_size
        else ""
    )
    if "image_index" in text:
        return f"Valid image_index values are 0 to {last}."
    if failure.kind == "NoImage":
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
    if "cv2.error" in text or (failure.kind == "error" and "cv::" in text):
        return (
            "OpenCV functions need numpy arrays (np.array(image)); convert back with "
            "Image.fromarray."
        )
    if (
        ".crop(" in code and failure.kind in ("BadImage", "ValueError", "SystemError")
    ) or re.search(r"(right|lower)' is less than '(left|upper)'|outside|zero-sized", text):
        return (
            "Crop boxes are (left, upper, right, lower) with left < right and upper < lower, "
            f"inside the image.{size}"
        )
    if failure.kind == "NameError":
        return (
            "Names available without import: image, img, draw, Image, ImageEnhance, "
            "ImageFilter, ImageOps, ImageDraw, ImageFont, np, cv2, math; your own variables "
            "persist between calls unless the kernel restarted."
        )
    if failure.kind in ("SyntaxError", "IndentationError"):
        return "Send plain Python (no ``` fences, consistent indentation) in the `code` string."
    if failure.kind == "Timeout":
        return "Avoid Python loops over pixels; use numpy or cv2 operations, or crop first."
    if failure.kind in ("MemoryError", "_ArrayMemoryError"):
        return "Crop or downscale before heavy operations; avoid huge intermediate arrays."
    if failure.kind == "KernelDied":
        return "The kernel crashed and restarted: your variables are gone, the images are kept."
    if failure.kind == "Malformed":
        return (
            'Write the call as <tool_call>{"name": "code_image_tool", "arguments": {"code": '
            '"...", "description": "...", "image_index": 0}}</tool_call> with valid JSON, or '
            "answer inside <answer> </answer>."
        )
    if failure.kind == "NoAction":
        return (
            "Either call the tool inside <tool_call> </tool_call> or answer inside "
            "<answer> </answer>."
        )
    return None


def failure_reply(item: dict[str, Any], images: list[Any]) -> str:
    """The ``Error: ...`` text for a recorded failure (graph ``reflect`` node and tools).

    Args:
        item: A failure record: ``kind``, ``message`` and optionally ``traceback``, ``code``,
            ``image_index``, ``variables``, ``stdout``.
        images: The episode's trajectory images (for index ranges and sizes).
    """
    from .protocol import error_text

    failure = Failure(item["kind"], item["message"], item.get("traceback", ""))
    index = item.get("image_index")
    size = None
    if isinstance(index, int) and 0 <= index < len(images):
        size = (images[index]["width"], images[index]["height"])
    hint = hint_for(
        failure,
        code=item.get("code", ""),
        image_count=len(images),
        image_size=size,
        variables=item.get("variables"),
    )
    if failure.traceback:
        body = f"{failure.kind}: {failure.message}\n{failure.traceback}"
    elif failure.kind in ("Malformed", "NoAction", "BadArguments"):
        body = failure.message
    else:
        body = str(failure)
    return error_text(body, hint, item.get("stdout", ""))
