"""Reading the parts of a verl row: prompt turns, images, boxes (shared by the record readers)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from langchain_codevision.data.transforms import _list_text
from langchain_codevision.images import ImageInputError, load_image

IMAGE_PLACEHOLDER = "<image>"
"""Marks where an image goes in the user turn."""


class RecordError(ValueError):
    """A record is malformed; the message names the record."""


def count_placeholders(prompt: Iterable[Mapping[str, Any]]) -> int:
    """How many ``<image>`` placeholders the user turns of ``prompt`` hold."""
    return sum(
        str(turn.get("content", "")).count(IMAGE_PLACEHOLDER)
        for turn in prompt
        if turn.get("role") == "user"
    )


def as_pil(image: Any) -> Image.Image:
    """A PIL image from a PIL image or a numpy array."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        return Image.fromarray(np.ascontiguousarray(image))
    raise TypeError(f"record images must be PIL images or numpy arrays, got {type(image).__name__}")


def answer_text(answer: Any) -> str:
    """An answer as text (lists and dicts as JSON)."""
    if isinstance(answer, (list, tuple, dict)):
        return json.dumps(answer, ensure_ascii=False)
    return str(answer)


def none_if_blank(value: Any) -> str | None:
    """``None`` for ``None`` or blank text, else the text."""
    return None if value is None or str(value).strip() == "" else str(value)


def read_transform(value: Any, where: str) -> str | list[str] | None:
    """A row's ``extra_info.transform`` in the form it is stored in.

    The release's list (``["crop", "rotate_90"]``; parquet readers may give a tuple or a
    numpy array) comes back as a list of strings, a name as the string, ``None`` or blank
    text as ``None``. Text spelling a list (``"['crop', 'rotate_90']"``, written by older
    versions of this package) is read as that list.

    Raises:
        RecordError: The value is not a name, a list of names or ``None``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        listed = _list_text(value)
        if listed is None:
            return none_if_blank(value)
        value = listed
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
        if all(isinstance(item, str) for item in items):
            return [str(item) for item in items]
    raise RecordError(f"{where}: transform must be a name, a list of names or null, got {value!r}")


def read_prompt(prompt: Any, where: str) -> list[dict[str, str]]:
    """Chat turns with string content (multimodal parts become ``<image>`` and text)."""
    if prompt is None:
        return []
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    turns = []
    for turn in list(prompt):
        if not isinstance(turn, Mapping) or "role" not in turn:
            raise RecordError(f"{where}: each prompt turn needs a 'role' and 'content'")
        content = turn.get("content")
        if isinstance(content, list):  # multimodal parts -> text with placeholders
            parts = [
                IMAGE_PLACEHOLDER if part.get("type") == "image" else str(part.get("text", ""))
                for part in content
                if isinstance(part, Mapping)
            ]
            content = "\n".join(parts)
        turns.append({"role": str(turn["role"]), "content": "" if content is None else content})
    return turns


def question_from_prompt(prompt: list[dict[str, str]]) -> str:
    """The last user turn without its ``<image>`` placeholders."""
    users = [turn["content"] for turn in prompt if turn["role"] == "user"]
    return users[-1].replace(IMAGE_PLACEHOLDER, "").strip() if users else ""


def read_image(item: Any, base_dir: str | os.PathLike[str] | None, where: str) -> Image.Image:
    """Decode one row image: ``{"bytes", "path"}`` dict, path, bytes or PIL image."""
    source: Any = item
    if isinstance(item, Mapping):
        if item.get("bytes"):
            source = bytes(item["bytes"])
        elif item.get("path") or item.get("image"):
            source = item.get("path") or item.get("image")
        else:
            raise RecordError(f"{where}: neither bytes nor a path")
    if isinstance(source, str) and not source.startswith(("data:", "http://", "https://")):
        path = Path(source).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        source = path
    try:
        return load_image(source)
    except ImageInputError as exc:
        raise RecordError(f"{where}: {exc}") from exc


def read_bbox(value: Any, where: str) -> list[float] | None:
    """A bbox from a list or JSON text, checked; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{where}: bbox is not a list of 4 numbers: {value!r}") from exc
    try:
        box = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{where}: bbox is not a list of 4 numbers: {value!r}") from exc
    check_bbox(box, where)
    return box


def check_bbox(box: list[float], where: str) -> None:
    """Raise :class:`RecordError` unless ``box`` is 4 finite, ordered numbers."""
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise RecordError(f"{where}: bbox must be 4 finite numbers, got {box}")
    if box[0] > box[2] or box[1] > box[3]:
        raise RecordError(f"{where}: bbox must satisfy x0 <= x1 and y0 <= y1, got {box}")
