"""Load a folder of your own images with an annotation file into records.

The annotation file is JSONL (one object per line), JSON (a list of objects) or CSV (a
header row). Each entry has:

* ``file`` (or ``image``, ``file_name``, ``path``): image path, relative to the folder;
* ``question`` and ``answer``;
* optionally ``bbox``: ``[x0, y0, x1, y1]`` in pixels (in CSV: ``"x0,y0,x1,y1"``, JSON text,
  or empty), ``transform`` (a transform name), ``index`` and ``split``.

Without an explicit file, the first of ``annotations.jsonl``, ``annotations.json``,
``annotations.csv``, ``metadata.jsonl``, ``metadata.csv`` in the folder is used. Errors name
the entry (``"line 3 of annotations.csv (cat.png)"``): a missing field, a missing or
unreadable image, a malformed box or one outside the image, an unknown transform name.

Example:
    >>> from langchain_codevision.data.folder import load_annotated_folder
    >>> records = load_annotated_folder("my_images")  # doctest: +SKIP
    >>> records[0].question, records.skipped  # doctest: +SKIP
    ('What does the sign say?', [])
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from langchain_codevision.data.records import (
    LoadedRecords,
    OnError,
    Record,
    RecordError,
    collect_records,
)
from langchain_codevision.data.transforms import parse_transform
from langchain_codevision.images import ImageInputError, load_image

ANNOTATION_FILES = (
    "annotations.jsonl",
    "annotations.json",
    "annotations.csv",
    "metadata.jsonl",
    "metadata.csv",
)
"""Annotation files looked for, in order, when none is given."""
_FILE_KEYS = ("file", "image", "file_name", "path")


def find_annotations(folder: str | os.PathLike[str]) -> Path:
    """The annotation file of ``folder``.

    Raises:
        FileNotFoundError: None of :data:`ANNOTATION_FILES` exists there.
    """
    folder = Path(folder)
    for name in ANNOTATION_FILES:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"no annotation file in {folder}; expected one of: {', '.join(ANNOTATION_FILES)}"
    )


def _entries(path: Path) -> Iterator[tuple[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                yield f"line {number} of {path.name}", row
    elif suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ValueError(f"{path}: a JSON annotation file must hold a list of objects")
        for number, entry in enumerate(data):
            yield f"entry {number} of {path.name}", entry
    else:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        yield f"line {number} of {path.name}", json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield f"line {number} of {path.name}", ValueError(f"invalid JSON: {exc}")


def _parse_bbox(value: Any, where: str) -> list[float] | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else text.replace(",", " ").split()
        except json.JSONDecodeError as exc:
            raise RecordError(f"{where}: bbox {text!r} is not 4 numbers") from exc
    try:
        box = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{where}: bbox {value!r} is not 4 numbers") from exc
    if len(box) != 4:
        raise RecordError(f"{where}: bbox needs 4 numbers (x0, y0, x1, y1), got {box}")
    return box


def _build(
    entry: Any, folder: Path, where: str, index: int, dataset_name: str, split: str
) -> Record:
    if isinstance(entry, Exception):
        raise RecordError(f"{where}: {entry}")
    if not isinstance(entry, Mapping):
        raise RecordError(f"{where}: expected an object, got {type(entry).__name__}")
    file = next((entry[k] for k in _FILE_KEYS if entry.get(k)), None)
    if file is None:
        raise RecordError(f"{where}: no image file (one of: {', '.join(_FILE_KEYS)})")
    where = f"{where} ({file})"
    for key in ("question", "answer"):
        if entry.get(key) in (None, ""):
            raise RecordError(f"{where}: missing {key!r}")
    path = Path(str(file)).expanduser()
    path = path if path.is_absolute() else folder / path
    try:
        image = load_image(path)
    except ImageInputError as exc:
        raise RecordError(f"{where}: {exc}") from exc
    bbox = _parse_bbox(entry.get("bbox"), where)
    if bbox is not None:
        x0, y0, x1, y1 = bbox
        if not (0 <= x0 <= x1 <= image.width and 0 <= y0 <= y1 <= image.height):
            raise RecordError(
                f"{where}: bbox {bbox} lies outside the {image.width}x{image.height} image "
                "(or has x0 > x1 / y0 > y1)"
            )
    try:
        index = int(entry.get("index") if entry.get("index") not in (None, "") else index)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{where}: index {entry.get('index')!r} is not an integer") from exc
    transform = entry.get("transform") or None
    if transform is not None:
        try:
            parse_transform(str(transform))
        except ValueError as exc:
            raise RecordError(f"{where}: {exc}") from exc
    return Record(
        question=str(entry["question"]),
        answer=str(entry["answer"]),
        images=[image],
        bbox=bbox,
        transform=transform,
        dataset_name=dataset_name,
        index=index,
        split=str(entry.get("split") or split),
    )


def load_annotated_folder(
    folder: str | os.PathLike[str],
    annotations: str | os.PathLike[str] | None = None,
    *,
    dataset_name: str | None = None,
    split: str = "test",
    on_error: OnError = "raise",
) -> LoadedRecords:
    """Records from a folder of images and its annotation file.

    Args:
        folder: The folder; image paths are relative to it.
        annotations: The annotation file (default: :func:`find_annotations`); relative paths
            are taken relative to ``folder``.
        dataset_name: Name stored on the records (default: the folder's name).
        split: Split for entries that do not give one.
        on_error: ``"raise"`` on the first bad entry, or ``"skip"`` bad entries (listed in
            the result's ``skipped``).

    Raises:
        FileNotFoundError: The folder or annotation file does not exist.
        RecordError: A bad entry, named, when ``on_error="raise"``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    path = find_annotations(folder) if annotations is None else Path(annotations)
    if not path.is_absolute() and not path.exists():
        path = folder / path
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    name = dataset_name or folder.resolve().name

    def builders() -> Iterator[tuple[str, Callable[[], Record]]]:
        for position, (where, entry) in enumerate(_entries(path)):
            yield where, _bind(entry, folder, where, position, name, split)

    return collect_records(builders(), on_error, path)


def _bind(
    entry: Any, folder: Path, where: str, index: int, dataset_name: str, split: str
) -> Callable[[], Record]:
    return lambda: _build(entry, folder, where, index, dataset_name, split)
