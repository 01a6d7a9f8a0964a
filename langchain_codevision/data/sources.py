"""Question/answer samples over rendered images, with ground truth by construction.

Each task renders an image (:mod:`langchain_codevision.data.render`, on photographs from
:mod:`langchain_codevision.data.photos` where it makes sense) and asks a question whose
answer and answer box come from what was drawn:

* ``read_line``: read the document line that starts with given words.
* ``count_letter``: count a letter in a paragraph (case-insensitive).
* ``shortest_word``: the shortest word on a line (always unique).
* ``small_label``: read a small tag on a photograph (tag area <= 1% of the image).
* ``sign_text``: read a sign pasted onto a photograph.
* ``receipt_total`` / ``receipt_price``: the total, or one item's price, on a receipt.
* ``table_cell``: the number at a row and column of a table.
* ``chart_value``: the value printed above one bar of a bar chart.
* ``which_transform``: which orientation transform was applied to a document or sign.

A :class:`Sample` can be transformed (:meth:`Sample.transformed`): the image changes, its
boxes follow exactly and the transform's name is recorded; :meth:`Sample.to_record` makes an
MVToolBench-style :class:`~langchain_codevision.data.records.Record`. Everything is
deterministic: the same task and seed give the same pixels, question and answer.

Example:
    >>> from langchain_codevision.data.sources import generate_samples
    >>> samples = generate_samples(3, seed=7, tasks=["read_line"], transforms=["rotate_90"])
    >>> samples[0].transform
    'rotate_90'
    >>> samples[0].to_record(index=0).transform
    'rotate_90'
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from langchain_codevision.data._transform_base import Box, Transform
from langchain_codevision.data.photos import photo_background, place, random_position
from langchain_codevision.data.records import Record
from langchain_codevision.data.render import (
    Rendered,
    TextLine,
    render_bar_chart,
    render_document,
    render_label,
    render_receipt,
    render_sign,
    render_table,
    union_box,
)
from langchain_codevision.data.transforms import ORIENTATIONS, Identity, parse_transform

SMALL_LABEL_MAX_FRACTION = 0.01
"""A small label's box covers at most this fraction of the image."""
_PREFIX_WORDS = 3


@dataclass
class Sample:
    """A question about an image, with its answer and where the answer is.

    Attributes:
        image: The image the question is about (already transformed, if any).
        question: The question.
        answer: The exact answer.
        bbox: The answer's box in ``image`` pixels, or None (``which_transform``).
        task: The task that made it (``"read_line"``, ...).
        source: The renderer (``"document"``, ``"sign"``, ...).
        lines: Every text line drawn, with boxes in ``image`` pixels.
        transform: Name of the transform applied to the rendered image, or None.
        seed: The seed it was generated from.
        meta: Renderer facts (paragraphs, receipt items, chart values, photo name, ...);
            boxes in ``meta`` stay in the frame of the untransformed render.
    """

    image: Image.Image
    question: str
    answer: str
    bbox: Box | None
    task: str
    source: str
    lines: list[TextLine]
    transform: str | None = None
    seed: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def transformed(self, transform: Transform | str) -> Sample:
        """A copy with ``transform`` applied to the image and every box.

        A second transform extends the recorded chain (``"rotate_90+blur"``); the identity
        returns an unchanged copy.
        """
        bound = parse_transform(transform).bind(self.image.size)
        if isinstance(bound, Identity):
            return replace(self)
        name = bound.name if self.transform is None else f"{self.transform}+{bound.name}"
        return replace(
            self,
            image=bound.apply(self.image),
            bbox=None if self.bbox is None else bound.map_box(self.bbox),
            lines=[line.mapped(bound) for line in self.lines],
            transform=name,
        )

    def to_record(
        self,
        index: int = 0,
        dataset_name: str = "codevision-synthetic",
        split: str = "train",
        **fields: Any,
    ) -> Record:
        """An MVToolBench-style record (``fields`` override other :class:`Record` fields)."""
        values: dict[str, Any] = {
            "question": self.question,
            "answer": self.answer,
            "images": [self.image],
            "bbox": None if self.bbox is None else list(self.bbox),
            "transform": self.transform,
            "dataset_name": dataset_name,
            "index": index,
            "split": split,
            "ability": self.task,
        }
        values.update(fields)
        return Record(**values)


def _sample(rendered: Rendered, task: str, question: str, answer: str, bbox: Box | None) -> Sample:
    return Sample(
        image=rendered.image,
        question=question,
        answer=answer,
        bbox=bbox,
        task=task,
        source=rendered.kind,
        lines=rendered.lines,
        meta=rendered.meta,
    )


def _words(text: str) -> list[str]:
    return [w.strip(string.punctuation) for w in text.split() if w.strip(string.punctuation)]


def _unique_prefix_lines(doc: Rendered, min_words: int) -> list[int]:
    prefixes: dict[str, list[int]] = {}
    for k, line in enumerate(doc.lines):
        words = line.text.split()
        if line.role == "line" and len(words) >= min_words:
            prefixes.setdefault(" ".join(words[:_PREFIX_WORDS]), []).append(k)
    return [ks[0] for ks in prefixes.values() if len(ks) == 1]


def _prefix(line: TextLine) -> str:
    return " ".join(line.text.split()[:_PREFIX_WORDS])


def task_read_line(rng: random.Random) -> Sample:
    """Read the full document line that starts with given words."""
    doc = render_document(rng)
    line = doc.lines[rng.choice(_unique_prefix_lines(doc, _PREFIX_WORDS + 2))]
    question = f'What is the full text of the line that begins with "{_prefix(line)}"?'
    return _sample(doc, "read_line", question, line.text, line.box)


def task_count_letter(rng: random.Random) -> Sample:
    """Count one letter in a paragraph (upper and lower case)."""
    doc = render_document(rng)
    starts = set(_unique_prefix_lines(doc, _PREFIX_WORDS))
    paragraphs = [p for p in doc.meta["paragraphs"] if p[0] in starts]
    indices = rng.choice(paragraphs)
    text = " ".join(doc.lines[k].text for k in indices)
    letter = rng.choice(sorted({c for c in text.lower() if c.isalpha()}))
    count = text.lower().count(letter)
    question = (
        f'How many times does the letter "{letter}" appear in the paragraph that begins with '
        f'"{_prefix(doc.lines[indices[0]])}"? Count upper and lower case.'
    )
    bbox = union_box([doc.lines[k].box for k in indices])
    return _sample(doc, "count_letter", question, str(count), bbox)


def _unique_shortest(text: str) -> str | None:
    words = _words(text)
    shortest = min(len(w) for w in words)
    found = [w for w in words if len(w) == shortest]
    return found[0] if len(found) == 1 else None


def task_shortest_word(rng: random.Random) -> Sample:
    """The shortest word on a line that starts with given words (unique by construction)."""
    for _ in range(20):
        doc = render_document(rng)
        choices = [k for k in _unique_prefix_lines(doc, 4) if _unique_shortest(doc.lines[k].text)]
        if choices:
            line = doc.lines[rng.choice(choices)]
            question = (
                f'Which word is the shortest on the line that begins with "{_prefix(line)}"? '
                "Ignore punctuation."
            )
            return _sample(
                doc, "shortest_word", question, str(_unique_shortest(line.text)), line.box
            )
    raise RuntimeError("no line with a unique shortest word in 20 pages")  # pragma: no cover


def _canvas_size(rng: random.Random) -> tuple[int, int]:
    return rng.choice([(1000, 750), (1000, 1000), (900, 700), (800, 800), (1000, 800)])


def task_small_label(rng: random.Random) -> Sample:
    """Read a small tag placed on a photograph (tag area <= 1% of the image)."""
    size = _canvas_size(rng)
    background, photo = photo_background(rng, size)
    label = render_label(rng)
    font_size = 14
    while label.image.width * label.image.height > SMALL_LABEL_MAX_FRACTION * size[0] * size[1]:
        font_size -= 1  # pragma: no cover - labels are far below 1% at the canvas sizes used
        label = render_label(rng, font_size)
    w, h = label.image.size
    placed = place(label, background, random_position(rng, (w, h), size, margin=20))
    placed.meta["photo"] = photo
    question = "What code is printed on the small tag in the image?"
    return _sample(placed, "small_label", question, label.meta["code"], placed.meta["panel_box"])


def task_sign_text(rng: random.Random) -> Sample:
    """Read a sign pasted onto a photograph."""
    size = _canvas_size(rng)
    background, photo = photo_background(rng, size)
    sign = render_sign(rng)
    placed = place(sign, background, random_position(rng, sign.image.size, size))
    placed.meta["photo"] = photo
    bbox = union_box([line.box for line in placed.lines])
    question = "What does the sign say? Give all of its text."
    return _sample(placed, "sign_text", question, sign.meta["text"], bbox)


def _receipt(rng: random.Random) -> Rendered:
    receipt = render_receipt(rng)
    if rng.random() < 0.5:
        return receipt
    size = (1000, 1000) if receipt.image.height > 740 else (900, 800)
    background, photo = photo_background(rng, size, rng.choice(["coffee", "brick", "grass"]))
    placed = place(receipt, background, random_position(rng, receipt.image.size, size))
    placed.meta["photo"] = photo
    return placed


def task_receipt_total(rng: random.Random) -> Sample:
    """The total printed on a receipt (the sum of its prices)."""
    receipt = _receipt(rng)
    total = receipt.find(role="total")[0]
    question = "What is the total amount on the receipt?"
    return _sample(receipt, "receipt_total", question, receipt.meta["total"], total.box)


def task_receipt_price(rng: random.Random) -> Sample:
    """The price of one item on a receipt."""
    receipt = _receipt(rng)
    item = rng.choice(list(receipt.meta["items"]))
    price = receipt.find(role="price", key=item)[0]
    question = f'What is the price of "{item}" on the receipt?'
    return _sample(receipt, "receipt_price", question, receipt.meta["items"][item], price.box)


def task_table_cell(rng: random.Random) -> Sample:
    """The number in one cell of a table, by row and column header."""
    table = render_table(rng)
    row, column = rng.choice(table.meta["rows"]), rng.choice(table.meta["columns"])
    cell = table.find(role="cell", key=f"{row}|{column}")[0]
    question = f'In the table, what is the value in the row "{row}" and the column "{column}"?'
    return _sample(table, "table_cell", question, cell.text, cell.box)


def task_chart_value(rng: random.Random) -> Sample:
    """The value printed above one bar of a bar chart."""
    chart = render_bar_chart(rng)
    category = rng.choice(list(chart.meta["values"]))
    label = chart.find(role="value", key=category)[0]
    bbox = union_box([label.box, chart.meta["bars"][category]])
    question = (
        f'In the bar chart "{chart.meta["title"]}", what is the value of the "{category}" bar?'
    )
    return _sample(chart, "chart_value", question, chart.meta["values"][category], bbox)


def task_which_transform(rng: random.Random) -> Sample:
    """Which orientation transform was applied to a document or sign image."""
    if rng.random() < 0.6:
        base = _sample(render_document(rng), "which_transform", "", "", None)
    else:
        base = task_sign_text(rng)
    name = rng.choice(ORIENTATIONS)
    question = (
        "This image was rotated or mirrored. Which transform was applied to it? Answer with "
        f"one of: {', '.join(ORIENTATIONS)} (rotations are counter-clockwise)."
    )
    changed = base.transformed(name)
    return replace(changed, question=question, answer=name, bbox=None, task="which_transform")


TASKS: dict[str, Callable[[random.Random], Sample]] = {
    "read_line": task_read_line,
    "count_letter": task_count_letter,
    "shortest_word": task_shortest_word,
    "small_label": task_small_label,
    "sign_text": task_sign_text,
    "receipt_total": task_receipt_total,
    "receipt_price": task_receipt_price,
    "table_cell": task_table_cell,
    "chart_value": task_chart_value,
    "which_transform": task_which_transform,
}
"""Every task by name."""


def make_sample(task: str, seed: int | str = 0) -> Sample:
    """One sample of ``task``, fully determined by ``(task, seed)``.

    Raises:
        ValueError: Unknown task (the message lists the valid ones).
    """
    make = TASKS.get(task)
    if make is None:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    sample = make(random.Random(f"{task}:{seed}"))
    sample.seed = str(seed)
    return sample


def iter_samples(
    n: int,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    transforms: Sequence[str] | None = None,
) -> Iterator[Sample]:
    """Yield ``n`` samples, cycling through ``tasks`` (default: all).

    Args:
        n: How many.
        seed: Sample ``i`` depends only on ``(seed, i)`` (and its task).
        tasks: Task names to cycle through.
        transforms: When given, each sample gets one of these (chosen by its seed; include
            ``"identity"`` to keep some untransformed). ``which_transform`` samples keep
            their own.

    Raises:
        ValueError: An unknown task or transform name.
    """
    tasks = list(tasks or TASKS)
    for name in tasks:
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    chosen = [parse_transform(t) for t in transforms or ()]
    for i in range(n):
        sample = make_sample(tasks[i % len(tasks)], f"{seed}:{i}")
        if chosen and sample.task != "which_transform":
            sample = sample.transformed(random.Random(f"transform:{seed}:{i}").choice(chosen))
        yield sample


def generate_samples(
    n: int,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    transforms: Sequence[str] | None = None,
) -> list[Sample]:
    """The list form of :func:`iter_samples`."""
    return list(iter_samples(n, seed, tasks, transforms))
