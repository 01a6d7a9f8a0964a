"""What the offline OCR policy perceives of an image it is shown (host side).

Where a profile does not show the code's printed output (the release shows only the result
image), the policy reads the image it gets back itself, as a vision model would look at it:

* :func:`read_image_lines`: OCR of a PIL image into :class:`OcrLine` objects (the same
  engine and settings as the kernel code, loaded once per process).
* :func:`undoing_transform`: which orientation fix turns one image into another (the
  applied transform name), by comparing small grey thumbnails.

Needs the ``ocr`` extra (``rapidocr`` and ``onnxruntime``).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from langchain_codevision.models._ocr_code import ORIENTATION_FIXES
from langchain_codevision.models._ocr_rules import OcrLine

__all__ = ["read_image_lines", "undoing_transform"]

_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _engine() -> Any:
    try:
        from rapidocr import RapidOCR
    except ImportError as exc:  # pragma: no cover - the ocr extra is in the test extra
        raise ImportError(
            "the offline OCR policy needs rapidocr and onnxruntime: "
            'pip install "langchain-codevision[ocr]"'
        ) from exc
    return RapidOCR(
        params={
            "Global.log_level": "critical",
            "Global.use_cls": False,
            "EngineConfig.onnxruntime.intra_op_num_threads": 1,
        }
    )


def read_image_lines(image: Image.Image) -> list[OcrLine]:
    """The text lines of ``image`` with their pixel boxes and confidences."""
    with _LOCK:
        found = _engine()(image.convert("RGB"), use_det=True, use_cls=False, use_rec=True)
    if not found.txts:
        return []
    lines = []
    for box, text, conf in zip(found.boxes, found.txts, found.scores, strict=False):
        corners = np.asarray(box)
        x0, y0 = corners.min(0).astype(int)
        x1, y1 = corners.max(0).astype(int)
        if str(text).strip():
            lines.append(
                OcrLine(str(text).strip(), (int(x0), int(y0), int(x1), int(y1)), float(conf))
            )
    return lines


def _thumb(image: Image.Image) -> np.ndarray:
    grey = ImageOps.autocontrast(image.convert("L")).resize((48, 48), Image.BILINEAR)
    return np.asarray(grey, dtype=np.float32)


def undoing_transform(before: Image.Image, after: Image.Image) -> str | None:
    """The applied transform whose fix maps ``before`` onto ``after``, or ``None``.

    ``None`` when no candidate fits closely (``after`` is a crop or another image).
    """
    target = _thumb(after)
    best, best_error = None, float("inf")
    for name, member in ORIENTATION_FIXES.items():
        moved = before if member is None else before.transpose(Image.Transpose[member])
        ratio = moved.width / max(moved.height, 1)
        if abs(ratio - after.width / max(after.height, 1)) > 0.05 * max(ratio, 1.0):
            continue
        error = float(np.mean(np.abs(_thumb(moved) - target)))
        if error < best_error:
            best, best_error = name, error
    return best if best_error < 12.0 else None
