"""Which image operations a tool call used, and which crop boxes it evaluated.

Two readers, chosen by ``mode`` and never switched silently:

* ``"release"`` (default): the CodeVision release's heuristic, reproduced with its blind
  spots (see :mod:`._release_ops`), including what it reads from the call's
  ``description``: ``crop`` anywhere adds the crop op; ``horizontal`` with ``flip`` or
  ``mirror`` adds ``flip_horizontal`` and ``vertical`` with ``flip`` adds ``flip_vertical``
  (negations included); a ``[x1, y1, x2, y2]`` (or ``(...)``) in it is the crop box when the
  code gives none. This decides RL parity with the release.
* ``"ast"``: a stricter reader over the parsed code (see :mod:`._ast_ops`): aliases and
  imports resolved, nested calls, keyword arguments, enums, NumPy and OpenCV flips, loops over
  literal angles, statements after ``;``, the known image size; comments, descriptions and
  code that does not parse give nothing.

Example:
    >>> parse_ops("result = np.rot90(np.array(image), k=3)", "").ops
    ('rotate_90',)
    >>> parse_ops("result = np.rot90(np.array(image), k=3)", "", mode="ast").ops
    ('rotate_270',)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._ast_ops import ast_ops
from ._release_ops import release_boxes, release_ops

__all__ = [
    "CORE_OPS",
    "ORIENTATION_OPS",
    "CallOps",
    "OpsMode",
    "description_boxes",
    "description_ops",
    "normalise_description",
    "parse_ops",
]

OpsMode = Literal["release", "ast"]
ORIENTATION_OPS: frozenset[str] = frozenset(
    {"rotate_90", "rotate_180", "rotate_270", "flip_horizontal", "flip_vertical"}
)
"""The ops the spurious penalty counts when no orientation fix was expected."""
CORE_OPS: frozenset[str] = ORIENTATION_OPS | {"crop"}
"""Orientation ops and crop; any other op is 'emergent'."""

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class CallOps:
    """What one call did, as read from its code and description.

    Attributes:
        ops: Op names, each once, in the order found.
        boxes: Crop boxes ``(x1, y1, x2, y2)`` in the coordinates the code used.
        notes: Why something was or was not found (for the breakdown's reasons).
    """

    ops: tuple[str, ...] = ()
    boxes: tuple[Box, ...] = ()
    notes: tuple[str, ...] = ()


def normalise_description(description: Any) -> str:
    """The description as the release reads it: a dict or ``None`` is ``""``, else ``str()``."""
    if description is None or isinstance(description, Mapping):
        return ""
    return description if isinstance(description, str) else str(description)


def description_ops(description: str) -> list[str]:
    """Ops the release reads from a description (no negation handling, as there)."""
    text = description.lower()
    found = []
    if "horizontal" in text and ("flip" in text or "mirror" in text):
        found.append("flip_horizontal")
    if "vertical" in text and "flip" in text:
        found.append("flip_vertical")
    if "crop" in text:
        found.append("crop")
    return found


_NUM = r"\s*(-?[\d.]+)\s*"
_DESC_BOXES = (
    re.compile(r"\[" + ",".join([_NUM] * 4) + r"\]"),
    re.compile(r"\(" + ",".join([_NUM] * 4) + r"\)"),
)


def description_boxes(description: str) -> list[Box]:
    """The first ``[x1, y1, x2, y2]`` in the description, else the first ``(...)`` one."""
    for pattern in _DESC_BOXES:
        match = pattern.search(description)
        if match:
            try:
                x1, y1, x2, y2 = (float(v) for v in match.groups())
            except ValueError:
                continue
            return [(x1, y1, x2, y2)]
    return []


def _code_text(code: Any) -> str:
    return "" if code is None else code if isinstance(code, str) else str(code)


def parse_ops(
    code: Any,
    description: Any = "",
    *,
    mode: OpsMode = "release",
    image_size: tuple[int, int] | None = None,
) -> CallOps:
    """Read the ops and crop boxes of one tool call.

    Args:
        code: The call's ``code`` argument (a non-string is read as ``str()``, ``None`` as
            ``""``, as the release does).
        description: The call's ``description`` (see :func:`normalise_description`).
        mode: ``"release"`` (default, the release's heuristic) or ``"ast"``.
        image_size: ``(width, height)`` of the image the code works on; the AST mode uses
            it for ``image.size`` / ``width`` / ``height`` (the release never does).

    Returns:
        The :class:`CallOps`; never raises.
    """
    text = _code_text(code)
    try:
        if mode == "ast":
            ops, boxes, notes = ast_ops(text, image_size)
            return CallOps(tuple(dict.fromkeys(ops)), tuple(boxes), tuple(notes))
        return _release(text, normalise_description(description))
    except (RecursionError, MemoryError, ValueError) as exc:  # pathological input
        return CallOps(notes=(f"ops could not be read: {type(exc).__name__}",))


def _release(code: str, description: str) -> CallOps:
    boxes: list[Box] = [(b[0], b[1], b[2], b[3]) for b in release_boxes(code)]
    ops = release_ops(code)
    notes = []
    if boxes:
        ops.append("crop")
    from_text = description_ops(description)
    if from_text:
        notes.append(f"description adds {', '.join(from_text)}")
    ops = list(dict.fromkeys(ops + from_text))
    if not boxes:
        boxes = description_boxes(description)
        if boxes:
            notes.append("crop box taken from the description")
    return CallOps(tuple(ops), tuple(boxes), tuple(notes))
