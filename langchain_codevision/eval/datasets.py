"""Evaluation sets from local files: MVToolBench, OCRBench, ChartQA-like sets, folders, PDFs.

Every loader returns a list of :class:`EvalItem`; nothing is downloaded at run time, the
loaders take a path the user has on disk.

* :func:`load_mvtoolbench`: the release's verl rows (parquet or JSONL), read by
  :mod:`langchain_codevision.data.records`; scored by the release's answer rules.
* :func:`load_ocrbench`: OCRBench's JSON (``image_path``, ``question``, ``answers``,
  ``type``, ``dataset_name``); scored by OCRBench's rule.
* :func:`load_chartqa`: ChartQA / ChartQAPro-like JSON or JSONL (``image``, ``question`` or
  ``Question``, ``answer`` or ``Answer``, ``question_type``).
* :func:`load_generic`: a JSONL of ``{"image", "question", "answer", ...}`` (``image`` may be
  ``doc.pdf#page=2``), or a folder holding ``items.jsonl``.
* :func:`transformed_variants`: the paper's six columns (source, three rotations, two flips).
* :func:`orientation_diagnostic`: balanced five-way "which transform" multiple choice.

Example:
    >>> from langchain_codevision.eval.datasets import load_dataset, transformed_variants
    >>> items = transformed_variants(load_dataset("OCRBench.json"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from langchain_codevision.data.records import Record, read_jsonl, read_parquet
from langchain_codevision.data.transforms import ORIENTATIONS, expected_fixes, get_transform
from langchain_codevision.eval.formats import FORMATS
from langchain_codevision.images import load_image

__all__ = [
    "DIAGNOSTIC_TRANSFORMS",
    "FORMATS",
    "PAPER_COLUMNS",
    "SOURCE",
    "EvalItem",
    "ScoringRule",
    "detect_format",
    "from_record",
    "load_chartqa",
    "load_dataset",
    "load_generic",
    "load_mvtoolbench",
    "load_ocrbench",
    "orientation_diagnostic",
    "render_pdf_page",
    "transformed_variants",
]

ScoringRule = Literal["answer", "ocrbench", "choice", "bbox"]
"""How an item is scored (see :mod:`langchain_codevision.eval.scoring`)."""
SOURCE = "source"
"""The transform column of an untransformed item."""
PAPER_COLUMNS: tuple[str, ...] = (SOURCE, *ORIENTATIONS)
"""The paper's transformed-OCRBench columns: Source, Rot90/180/270, Hori, Verti."""
DIAGNOSTIC_TRANSFORMS: tuple[str, ...] = ORIENTATIONS
"""The five options of the orientation diagnostic."""
_LETTERS = "ABCDEFGHIJ"


@dataclass
class EvalItem:
    """One evaluation question.

    Attributes:
        id: Unique within the set (``"ocrbench-12@rotate_90"``).
        question: The question, without ``<image>`` placeholders.
        answers: Accepted answers (the first is the reference).
        images: The input images.
        scoring: Which rule decides (:data:`ScoringRule`).
        transform: The transform column (``"source"`` when none).
        qtype: The question type (OCRBench ``type``, ChartQA ``question_type``, ability).
        dataset: The dataset's name.
        choices: Option texts of a multiple-choice item, in letter order.
        bbox: The answer's box in the first image's pixels, or None.
        expected: Operations the release's reward expects (from the transform).
        meta: Anything else, kept.
    """

    id: str
    question: str
    answers: list[str]
    images: list[Image.Image] = field(default_factory=list)
    scoring: ScoringRule = "answer"
    transform: str = SOURCE
    qtype: str = ""
    dataset: str = ""
    choices: list[str] | None = None
    bbox: list[float] | None = None
    expected: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def truth(self) -> str:
        """The reference answer."""
        return self.answers[0] if self.answers else ""


# -- MVToolBench --------------------------------------------------------------------------------
def from_record(record: Record, position: int = 0) -> EvalItem:
    """An :class:`EvalItem` from a :class:`~langchain_codevision.data.records.Record`."""
    names = record.transform_names
    dataset = record.dataset_name or record.data_source or "mvtoolbench"
    return EvalItem(
        id=f"{dataset}-{record.index}-{position}",
        question=record.question,
        answers=[record.answer],
        images=list(record.images),
        scoring="answer",
        transform="+".join(names) if names else SOURCE,
        qtype=record.ability or dataset,
        dataset=dataset,
        bbox=record.bbox,
        expected=record.expected_fixes,
        meta={"split": record.split, **record.extra},
    )


def load_mvtoolbench(path: str | Path) -> list[EvalItem]:
    """MVToolBench rows (the release's verl parquet or JSONL), through ``data.records``."""
    path = Path(path)
    reader = read_parquet if path.suffix == ".parquet" else read_jsonl
    return [from_record(record, k) for k, record in enumerate(reader(path))]


# -- JSON helpers -------------------------------------------------------------------------------
def _read_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, dict):
        data = data.get("data") or data.get("items") or list(data.values())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of items")
    return data


def _get(row: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if key in row and row[key] is not None:
            return row[key]
    return default


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def render_pdf_page(path: str | Path, page: int = 1, dpi: int = 144) -> Image.Image:
    """Render page ``page`` (1-based) of a PDF with pypdfium2, or poppler's ``pdftoppm``.

    Raises:
        RuntimeError: Neither renderer is available.
    """
    try:
        import pypdfium2 as pdfium
    except ImportError:
        pdfium = None
    if pdfium is not None:
        document = pdfium.PdfDocument(str(path))
        try:
            bitmap = document[page - 1].render(scale=dpi / 72)
            return bitmap.to_pil().convert("RGB")
        finally:
            document.close()
    with tempfile.TemporaryDirectory() as folder:
        prefix = Path(folder) / "page"
        args = ["pdftoppm", "-png", "-r", str(dpi), "-f", str(page), "-l", str(page)]
        try:
            subprocess.run([*args, str(path), str(prefix)], check=True, capture_output=True)
        except FileNotFoundError as exc:
            raise RuntimeError("rendering PDFs needs pypdfium2 or poppler's pdftoppm") from exc
        produced = sorted(Path(folder).glob("page*.png"))
        return load_image(produced[0]).convert("RGB")


def _open(reference: Any, base: Path) -> Image.Image:
    text = str(reference)
    name, _, fragment = text.partition("#page=")
    target = Path(name) if Path(name).is_absolute() else base / name
    if target.suffix.lower() == ".pdf":
        return render_pdf_page(target, int(fragment or 1))
    return load_image(target)


def _images(row: dict[str, Any], base: Path, *keys: str) -> list[Image.Image]:
    value = _get(row, *keys)
    refs = value if isinstance(value, list) else [value]
    return [_open(ref, base) for ref in refs if ref is not None]


# -- OCRBench, ChartQA, generic -----------------------------------------------------------------
def load_ocrbench(path: str | Path, image_root: str | Path | None = None) -> list[EvalItem]:
    """OCRBench's JSON: ``image_path``, ``question``, ``answers`` (str or list), ``type``."""
    path = Path(path)
    base = Path(image_root) if image_root else path.parent
    items = []
    for k, row in enumerate(_read_rows(path)):
        dataset = str(_get(row, "dataset_name", default="OCRBench"))
        items.append(
            EvalItem(
                id=f"ocrbench-{_get(row, 'id', default=k)}",
                question=str(row["question"]),
                answers=_as_list(_get(row, "answers", "answer")),
                images=_images(row, base, "image_path", "image"),
                scoring="ocrbench",
                qtype=str(_get(row, "type", default="")),
                dataset=dataset,
            )
        )
    return items


def load_chartqa(path: str | Path, image_root: str | Path | None = None) -> list[EvalItem]:
    """ChartQA/ChartQAPro-like QA: one item per question (list-valued questions expand)."""
    path = Path(path)
    base = Path(image_root) if image_root else path.parent
    items = []
    for k, row in enumerate(_read_rows(path)):
        questions = _as_list(_get(row, "question", "Question", "query"))
        answers = _as_list(_get(row, "answer", "Answer", "label"))
        images = _images(row, base, "image", "image_path", "imgname")
        qtype = str(_get(row, "question_type", "Question Type", "type", default="chart"))
        for j, question in enumerate(questions):
            truth = answers[j] if j < len(answers) else (answers[-1] if answers else "")
            items.append(
                EvalItem(
                    id=f"chartqa-{_get(row, 'id', default=k)}-{j}",
                    question=question,
                    answers=[truth],
                    images=images,
                    qtype=qtype,
                    dataset=str(_get(row, "dataset", default="chartqa")),
                )
            )
    return items


def load_generic(path: str | Path) -> list[EvalItem]:
    """A JSONL of items, or a folder holding ``items.jsonl``.

    Each line: ``image`` (a path relative to the file, a list of them, or ``doc.pdf#page=N``),
    ``question``, ``answer`` (str or list), optional ``id``, ``type``, ``scoring``
    (:data:`ScoringRule`), ``choices``, ``bbox``, ``transform``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "items.jsonl"
    items = []
    for k, row in enumerate(_read_rows(path)):
        transform = str(_get(row, "transform", default=SOURCE))
        items.append(
            EvalItem(
                id=str(_get(row, "id", default=f"item-{k}")),
                question=str(row["question"]),
                answers=_as_list(_get(row, "answer", "answers")),
                images=_images(row, path.parent, "image", "images"),
                scoring=_get(row, "scoring", default="answer"),
                transform=transform,
                qtype=str(_get(row, "type", default="")),
                dataset=str(_get(row, "dataset", default=path.stem)),
                choices=row.get("choices"),
                bbox=row.get("bbox"),
                expected=expected_fixes(None if transform == SOURCE else transform),
            )
        )
    return items


def detect_format(path: str | Path) -> str:
    """The format of ``path`` (one of :data:`FORMATS`), from its suffix and first row."""
    path = Path(path)
    if path.is_dir():
        return "generic"
    if path.suffix == ".parquet":
        return "mvtoolbench"
    rows = _read_rows(path)
    first = rows[0] if rows else {}
    if "prompt" in first and ("extra_info" in first or "reward_model" in first):
        return "mvtoolbench"
    if "image_path" in first and "answers" in first:
        return "ocrbench"
    if any(key in first for key in ("Question", "Answer", "imgname", "question_type")):
        return "chartqa"
    return "generic"


def load_dataset(path: str | Path, format: str | None = None) -> list[EvalItem]:
    """Load any supported file; ``format`` (one of :data:`FORMATS`) skips detection.

    Raises:
        ValueError: An unknown ``format``, or a bare PDF (a PDF has pages but no questions:
            list its pages in a generic ``items.jsonl`` as ``"image": "doc.pdf#page=N"``).
    """
    path = Path(path)
    if path.suffix.lower() == ".pdf":
        raise ValueError(
            f"{path} has no questions: list its pages in an items.jsonl, e.g. "
            f'{{"image": "{path.name}#page=1", "question": "...", "answer": "..."}}'
        )
    chosen = format or detect_format(path)
    loaders = {
        "mvtoolbench": load_mvtoolbench,
        "ocrbench": load_ocrbench,
        "chartqa": load_chartqa,
        "generic": load_generic,
    }
    if chosen not in loaders:
        raise ValueError(f"unknown format {chosen!r}; use one of {', '.join(FORMATS)}")
    return loaders[chosen](path)


# -- derived sets -------------------------------------------------------------------------------
def _apply(item: EvalItem, name: str) -> EvalItem:
    if name == SOURCE:
        return replace(item, id=f"{item.id}@{SOURCE}", transform=SOURCE, expected=[])
    bound = get_transform(name).bind(item.images[0].size)
    bbox = None if item.bbox is None else list(bound.map_box(item.bbox))
    return replace(
        item,
        id=f"{item.id}@{name}",
        images=[get_transform(name).bind(im.size).apply(im) for im in item.images],
        transform=name,
        bbox=bbox,
        expected=expected_fixes(name),
    )


def transformed_variants(
    items: Iterable[EvalItem], columns: Sequence[str] = PAPER_COLUMNS
) -> list[EvalItem]:
    """Every item once per column (source and each transform), ids suffixed ``@column``."""
    return [_apply(item, name) for item in items for name in columns]


def orientation_diagnostic(
    images: Sequence[Image.Image], seed: int = 0, transforms: Sequence[str] = DIAGNOSTIC_TRANSFORMS
) -> list[EvalItem]:
    """The orientation diagnostic: each image gets one transform, balanced, five-way choice.

    The ``i``-th image (after a seeded shuffle of the assignment) gets transform
    ``transforms[i % len(transforms)]``; options are listed as letters in a fixed order.
    """
    order = [transforms[i % len(transforms)] for i in range(len(images))]
    random.Random(seed).shuffle(order)
    options = "\n".join(f"{_LETTERS[k]}. {name}" for k, name in enumerate(transforms))
    question = (
        "This image was rotated (counter-clockwise) or mirrored. Which transform was applied? "
        f"Options:\n{options}\nAnswer with the letter or the option."
    )
    items = []
    for k, (image, name) in enumerate(zip(images, order, strict=True)):
        base = EvalItem(
            id=f"diagnostic-{k}",
            question=question,
            answers=[name],
            images=[image],
            scoring="choice",
            qtype="orientation",
            dataset="orientation-diagnostic",
            choices=list(transforms),
        )
        items.append(replace(_apply(base, name), id=base.id))
    return items
