r"""MVToolBench-style records and the verl RL row format they are stored in.

A row, as in the reference release's parquet files::

    {
        "data_source": "mvtoolbench",
        "prompt": [{"role": "system", "content": "..."},      # optional
                   {"role": "user", "content": "<image>\nWhat does the sign say?"}],
        "images": [{"bytes": b"\x89PNG...", "path": None}],
        "ability": "ocr",                                     # optional
        "reward_model": {"style": "rule", "ground_truth": "OPEN"},
        "extra_info": {"answer": "OPEN", "bbox": [x0, y0, x1, y1] or None,
                       "dataset_name": "...", "index": 0, "question": "...",
                       "split": "test", "transform": ["crop", "rotate_90"]},
    }

The user turn holds one ``<image>`` placeholder per image. ``bbox`` is in the coordinate
frame of the stored image. ``transform`` is stored as the release stores it: a list of
names applied in order (``["crop", "rotate_90"]``), a single name (``"rotate_90"``) or
``None``. Rows are read and written back in the form they came in; a chain named in code
(``"crop+rotate_90"``, see :mod:`langchain_codevision.data.transforms`) is written as the
list. :attr:`Record.transform_names` gives the names as a list whatever the form, and
:attr:`Record.expected_fixes` the operations the release's reward expects.

:func:`write_parquet` / :func:`read_parquet` keep images inline (PNG bytes);
:func:`write_jsonl` / :func:`read_jsonl` save images as PNG files and store their paths,
relative to the JSONL file. Readers take ``on_error="raise"`` (default) or ``"skip"``; they
return a :class:`LoadedRecords` list whose ``skipped`` attribute names every skipped record
and why (a :class:`SkippedRecordsWarning` is also emitted). Decoded images go through
:func:`langchain_codevision.images.load_image` (modes become ``L``, ``RGB`` or ``RGBA``).

Example:
    >>> from PIL import Image
    >>> from langchain_codevision.data.records import Record
    >>> record = Record(question="What colour?", answer="red", images=[Image.new("RGB", (8, 8))])
    >>> row = record.to_row()
    >>> row["prompt"][-1]["content"]
    '<image>\nWhat colour?'
    >>> Record.from_row(row).answer
    'red'
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from langchain_codevision.data._rows import (
    IMAGE_PLACEHOLDER,
    RecordError,
    answer_text,
    as_pil,
    check_bbox,
    count_placeholders,
    question_from_prompt,
    read_bbox,
    read_image,
    read_prompt,
    read_transform,
)
from langchain_codevision.data._transform_base import Transform
from langchain_codevision.data.transforms import (
    expected_fixes,
    transform_for_row,
    transform_names,
)
from langchain_codevision.images import encode_image

EXTRA_INFO_KEYS = ("answer", "bbox", "dataset_name", "index", "question", "split", "transform")
"""The ``extra_info`` keys every row carries."""

OnError = Literal["raise", "skip"]

__all__ = [
    "EXTRA_INFO_KEYS",
    "IMAGE_PLACEHOLDER",
    "LoadedRecords",
    "OnError",
    "Record",
    "RecordError",
    "SkippedRecord",
    "SkippedRecordsWarning",
    "collect_records",
    "count_placeholders",
    "read_jsonl",
    "read_parquet",
    "records_to_table",
    "write_jsonl",
    "write_parquet",
]


class SkippedRecordsWarning(UserWarning):
    """Some records were skipped while reading (``on_error="skip"``)."""


@dataclass(frozen=True)
class SkippedRecord:
    """A record a reader skipped.

    Attributes:
        location: Where it was (``"line 4 of data.jsonl"``, ``"row 3 of data.parquet"``).
        reason: What was wrong.
    """

    location: str
    reason: str


class LoadedRecords(list):  # type: ignore[type-arg]
    """A list of :class:`Record` plus ``skipped``: the :class:`SkippedRecord` entries."""

    def __init__(self, records: Iterable[Record] = (), skipped: Iterable[SkippedRecord] = ()):
        super().__init__(records)
        self.skipped: list[SkippedRecord] = list(skipped)


def _transform_value(transform: Any) -> str | list[str] | None:
    """A record's transform in memory: a name, a list of names, or ``None``; never a repr."""
    if transform is None or isinstance(transform, str):
        return transform
    if isinstance(transform, Transform):
        return transform.name
    if isinstance(transform, (list, tuple, np.ndarray)):
        items = list(transform)
        if all(isinstance(item, (str, Transform)) for item in items):
            return [item.name if isinstance(item, Transform) else str(item) for item in items]
    raise TypeError(
        "a record's transform must be a name, a list of names, a Transform or None, "
        f"got {type(transform).__name__}"
    )


@dataclass
class Record:
    """One question about one or more images, with its answer and provenance.

    Attributes:
        question: The question, without ``<image>`` placeholders.
        answer: The ground-truth answer.
        images: The images (PIL); numpy arrays are converted.
        bbox: Where the answer is, ``[x0, y0, x1, y1]`` in the first image's pixels, or None.
        transform: The transforms applied to the images: a name (``"rotate_90"``), a chain
            name (``"crop+rotate_90"``), a list of names as the release stores them
            (``["crop", "rotate_90"]``), or None. Kept in the form given (a
            :class:`~langchain_codevision.data.transforms.Transform` becomes its name, a
            tuple or array a list); see :attr:`transform_names`.
        dataset_name: Source dataset name.
        index: Index within the dataset.
        split: ``"train"``, ``"test"``, ...
        data_source: The row's ``data_source`` (defaults to ``dataset_name`` when written).
        ability: The row's optional ``ability`` tag.
        system_prompt: Optional system turn.
        prompt: The verbatim chat prompt when read from a row whose prompt differs from the
            one this record would build; None otherwise (then the prompt is built).
        extra: Other ``extra_info`` keys, kept as they are.
    """

    question: str
    answer: str
    images: list[Image.Image] = field(default_factory=list)
    bbox: list[float] | None = None
    transform: str | list[str] | None = None
    dataset_name: str = ""
    index: int = 0
    split: str = "train"
    data_source: str = ""
    ability: str | None = None
    system_prompt: str | None = None
    prompt: list[dict[str, str]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images = [as_pil(image) for image in self.images]
        if not isinstance(self.answer, str):
            self.answer = answer_text(self.answer)
        self.transform = _transform_value(self.transform)
        if self.bbox is not None:
            self.bbox = [float(v) for v in self.bbox]

    def build_prompt(self) -> list[dict[str, str]]:
        """The chat prompt: optional system turn, then ``<image>``s and the question."""
        turns = []
        if self.system_prompt:
            turns.append({"role": "system", "content": self.system_prompt})
        placeholders = f"{IMAGE_PLACEHOLDER}\n" * len(self.images)
        turns.append({"role": "user", "content": placeholders + self.question})
        return turns

    @property
    def transform_names(self) -> list[str]:
        """The names of the applied transforms, in order (``[]`` when none), for any form."""
        return transform_names(self.transform)

    @property
    def expected_fixes(self) -> list[str]:
        """The operations the release's reward expects here (see ``expected_fixes``)."""
        return expected_fixes(self.transform)

    def chat_prompt(self) -> list[dict[str, str]]:
        """The verbatim :attr:`prompt` when set, else :meth:`build_prompt`."""
        return self.prompt if self.prompt is not None else self.build_prompt()

    def source_bbox(self) -> list[float] | None:
        """:attr:`bbox` mapped back to the frame of the image before :attr:`transform`.

        Works for orientation transforms, degradations that keep coordinates, and chains of
        them (the original size follows from the stored image). Returns None without a bbox.

        Raises:
            ValueError: The transform changes geometry irreversibly by name (``crop``,
                ``scale_down``, ``resize``) or is unknown.
        """
        from langchain_codevision.data.transforms import ORIENTATIONS, Compose, parse_transform

        if self.bbox is None or not self.transform:
            return None if self.bbox is None else list(self.bbox)
        try:
            chain = parse_transform(self.transform)
        except ValueError as exc:
            raise ValueError(f"cannot map the bbox back through {self.transform!r}: {exc}") from exc
        steps = chain.steps if isinstance(chain, Compose) else (chain,)
        moved = [step for step in steps if step.geometric]
        if any(step.name not in ORIENTATIONS for step in moved):
            raise ValueError(
                f"cannot map the bbox back through {self.transform!r}: only orientation "
                "transforms are invertible by name"
            )
        inverse = Compose(
            steps=tuple(step.inverse() for step in reversed(moved)), size=self.images[0].size
        )
        return list(inverse.map_box(self.bbox))

    def validate(self, where: str | None = None) -> None:
        """Check placeholders against images and the bbox shape.

        Args:
            where: How to name the record in errors (default: by index and dataset).

        Raises:
            RecordError: Naming the record and the problem.
        """
        where = where or self._name()
        placeholders = count_placeholders(self.chat_prompt())
        if placeholders != len(self.images):
            raise RecordError(
                f"{where}: the prompt has {placeholders} {IMAGE_PLACEHOLDER} placeholder(s) "
                f"but the record has {len(self.images)} image(s)"
            )
        if self.bbox is not None:
            check_bbox(self.bbox, where)

    def _name(self) -> str:
        return f"record index {self.index} of {self.dataset_name or 'unnamed dataset'!r}"

    def to_row(self, image_paths: list[str] | None = None) -> dict[str, Any]:
        """The verl row; images inline as ``{"bytes": png, "path": None}``.

        Args:
            image_paths: Store these paths instead of the image bytes (one per image).

        Raises:
            RecordError: The record is invalid (see :meth:`validate`).
        """
        self.validate()
        if image_paths is None:
            images: list[Any] = [{"bytes": encode_image(im), "path": None} for im in self.images]
        else:
            images = list(image_paths)
        extra_info = {
            "answer": self.answer,
            "bbox": None if self.bbox is None else list(self.bbox),
            "dataset_name": self.dataset_name,
            "index": int(self.index),
            "question": self.question,
            "split": self.split,
            "transform": transform_for_row(self.transform),
            **self.extra,
        }
        return {
            "data_source": self.data_source or self.dataset_name,
            "prompt": [dict(turn) for turn in self.chat_prompt()],
            "images": images,
            "ability": self.ability,
            "reward_model": {"style": "rule", "ground_truth": self.answer},
            "extra_info": extra_info,
        }

    @classmethod
    def from_row(
        cls,
        row: Mapping[str, Any],
        *,
        base_dir: str | os.PathLike[str] | None = None,
        where: str | None = None,
    ) -> Record:
        """Read a verl row (ours or the reference release's).

        Args:
            row: The row. Images may be ``{"bytes", "path"}`` dicts, path strings, bytes or
                PIL images; paths are resolved against ``base_dir``.
            base_dir: Directory that relative image paths are relative to.
            where: How to name the row in errors (default ``"row"``).

        Raises:
            RecordError: Naming the row: missing fields, unreadable images, placeholder count
                not matching the images, a malformed bbox.
        """
        where = where or "row"
        if not isinstance(row, Mapping):
            raise RecordError(f"{where}: expected a mapping, got {type(row).__name__}")
        extra_info = dict(row.get("extra_info") or {})
        if extra_info.get("index") is not None:
            where = f"{where} (index {extra_info['index']})"
        prompt = read_prompt(row.get("prompt"), where)
        images = [
            read_image(item, base_dir, f"{where}: image {k}")
            for k, item in enumerate(row.get("images") or [])
        ]
        question = extra_info.pop("question", None)
        if question is None:
            question = question_from_prompt(prompt)
        answer = extra_info.pop("answer", None)
        if answer is None:
            answer = (row.get("reward_model") or {}).get("ground_truth")
        if answer is None:
            raise RecordError(
                f"{where}: no answer (extra_info.answer or reward_model.ground_truth)"
            )
        system = next((t["content"] for t in prompt if t["role"] == "system"), None)
        dataset_name = extra_info.pop("dataset_name", None) or row.get("data_source") or ""
        try:
            record = cls(
                question=str(question),
                answer=answer,
                images=images,
                bbox=read_bbox(extra_info.pop("bbox", None), where),
                transform=read_transform(extra_info.pop("transform", None), where),
                dataset_name=str(dataset_name),
                index=int(extra_info.pop("index", None) or 0),
                split=str(extra_info.pop("split", None) or "train"),
                data_source=str(row.get("data_source") or ""),
                ability=row.get("ability"),
                system_prompt=system,
                extra=extra_info,
            )
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{where}: {exc}") from exc
        if prompt and prompt != record.build_prompt():
            record.prompt = prompt
        record.validate(where)
        return record


# -- readers and writers ----------------------------------------------------------------------
def collect_records(
    builders: Iterable[tuple[str, Callable[[], Record]]],
    on_error: OnError = "raise",
    source: str | os.PathLike[str] = "the input",
) -> LoadedRecords:
    """Build records one by one, raising on or skipping (and reporting) the bad ones.

    Args:
        builders: ``(where, build)`` pairs: ``where`` names the record, ``build()`` returns
            it or raises :class:`RecordError`.
        on_error: ``"raise"`` the first error, or ``"skip"`` bad records (listed in
            ``skipped`` and summarised in a :class:`SkippedRecordsWarning`).
        source: What is being read, for the warning.

    Raises:
        RecordError: The first bad record, when ``on_error="raise"``.
        ValueError: ``on_error`` is neither ``"raise"`` nor ``"skip"``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    loaded = LoadedRecords()
    for where, build in builders:
        try:
            loaded.append(build())
        except RecordError as exc:
            if on_error == "raise":
                raise
            loaded.skipped.append(SkippedRecord(where, str(exc)))
    if loaded.skipped:
        first = "; ".join(s.reason for s in loaded.skipped[:3])
        warnings.warn(
            f"skipped {len(loaded.skipped)} record(s) of {source}: {first}",
            SkippedRecordsWarning,
            stacklevel=3,
        )
    return loaded


def _row_builder(row: Any, base_dir: Path, where: str) -> Callable[[], Record]:
    def build() -> Record:
        if isinstance(row, Exception):
            raise RecordError(f"{where}: {row}") from row
        return Record.from_row(row, base_dir=base_dir, where=where)

    return build


def write_jsonl(
    records: Iterable[Record],
    path: str | os.PathLike[str],
    image_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write one JSON row per line; images go to PNG files referenced by relative path.

    Args:
        records: The records.
        path: The JSONL file to write (overwritten).
        image_dir: Where the PNG files go (default: ``<stem>_images`` beside ``path``).

    Returns:
        The JSONL path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_dir = Path(image_dir) if image_dir is not None else path.with_name(f"{path.stem}_images")
    image_dir.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for position, record in enumerate(records):
            names = []
            for k, image in enumerate(record.images):
                file = image_dir / f"{position:06d}_{k}.png"
                file.write_bytes(encode_image(image))
                names.append(Path(os.path.relpath(file, path.parent)).as_posix())
            out.write(json.dumps(record.to_row(image_paths=names), ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: str | os.PathLike[str], on_error: OnError = "raise") -> LoadedRecords:
    """Read records written by :func:`write_jsonl` (or any JSONL of verl rows).

    Raises:
        RecordError: A bad line (its number named), unless ``on_error="skip"``.
    """
    path = Path(path)

    def rows() -> Iterator[tuple[str, Callable[[], Record]]]:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"line {number} of {path.name}"
                try:
                    row: Any = json.loads(line)
                except json.JSONDecodeError as exc:
                    row = ValueError(f"not valid JSON ({exc})")
                yield where, _row_builder(row, path.parent, where)

    return collect_records(rows(), on_error, path)


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow ships with the extras
        raise ImportError(
            "parquet needs pyarrow: pip install 'langchain-codevision[eval]'"
        ) from exc
    return pa, pq


def _schema(pa: Any, extra_types: Mapping[str, Any], transform_type: Any) -> Any:
    info_fields = [
        ("answer", pa.string()),
        ("bbox", pa.list_(pa.float64())),
        ("dataset_name", pa.string()),
        ("index", pa.int64()),
        ("question", pa.string()),
        ("split", pa.string()),
        ("transform", transform_type),
        *extra_types.items(),
    ]
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
            ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            ("extra_info", pa.struct(info_fields)),
        ]
    )


def records_to_table(records: Iterable[Record]) -> Any:
    """A ``pyarrow.Table`` in the verl layout (images inline as PNG bytes).

    ``extra_info.transform`` is a string column when every record stores a single name (or
    none), else a list-of-strings column, the release's form, in which single names are
    one-item lists (a parquet column has one type).
    """
    pa, _ = _pyarrow()
    records = list(records)
    extra_types = {}
    for key in sorted({k for r in records for k in r.extra} - set(EXTRA_INFO_KEYS)):
        try:
            extra_types[key] = pa.array([r.extra.get(key) for r in records]).type
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValueError(f"extra_info key {key!r} has mixed types across records") from exc
    rows = [record.to_row() for record in records]
    transform_type = pa.string()
    if any(isinstance(row["extra_info"]["transform"], list) for row in rows):
        transform_type = pa.list_(pa.string())
        for row in rows:
            if isinstance(row["extra_info"]["transform"], str):
                row["extra_info"]["transform"] = [row["extra_info"]["transform"]]
    return pa.Table.from_pylist(rows, schema=_schema(pa, extra_types, transform_type))


def write_parquet(
    records: Iterable[Record],
    path: str | os.PathLike[str],
    rows_per_group: int = 256,
) -> Path:
    """Write records as a verl RL parquet file, images inline.

    Args:
        records: The records.
        path: The file to write (overwritten).
        rows_per_group: Rows per parquet row group.

    Returns:
        The parquet path.
    """
    _, pq = _pyarrow()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(records_to_table(records), path, row_group_size=rows_per_group)
    return path


def read_parquet(path: str | os.PathLike[str], on_error: OnError = "raise") -> LoadedRecords:
    """Read a verl RL parquet file (ours or the reference release's layout).

    Image paths (when a row has no bytes) are resolved against the file's directory.

    Raises:
        RecordError: A bad row (its number named), unless ``on_error="skip"``.
    """
    _, pq = _pyarrow()
    path = Path(path)
    parquet = pq.ParquetFile(path)

    def rows() -> Iterator[tuple[str, Callable[[], Record]]]:
        position = 0
        for batch in parquet.iter_batches(batch_size=64):
            for row in batch.to_pylist():
                where = f"row {position} of {path.name}"
                yield where, _row_builder(row, path.parent, where)
                position += 1

    return collect_records(rows(), on_error, path)
