"""Render text-bearing images whose every line of text and its box is known.

Each renderer takes a ``random.Random`` (so the same seed gives the same image) and returns
a :class:`Rendered`: the image, the :class:`TextLine` entries (text, ink box, role, key) and
``meta`` with the numbers behind the picture.

* :func:`render_document`: a page with a title and paragraphs (``meta["paragraphs"]`` holds
  the line indices of each paragraph).
* :func:`render_sign`: a street/warning sign panel.
* :func:`render_label`: a small tag with a short code.
* :func:`render_receipt`: items with prices and a total equal to their sum.
* :func:`render_table`: a grid of numbers with row and column headers.
* :func:`render_bar_chart`: bars with their values printed above them.

Boxes are the ink boxes PIL reports for the drawn text (``ImageDraw.textbbox``), in pixels.

Example:
    >>> import random
    >>> from langchain_codevision.data.render import render_receipt
    >>> receipt = render_receipt(random.Random(1))
    >>> receipt.find(role="total")[0].text == receipt.meta["total"]
    True
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from langchain_codevision.data import _vocabulary as vocab
from langchain_codevision.data._transform_base import Box, Transform
from langchain_codevision.data.fonts import load_font, usable_fonts

BODY_FONTS = ("DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "DejaVuSans-Oblique")
BOLD_FONTS = ("DejaVuSans-Bold", "DejaVuSerif-Bold")
MONO_FONTS = ("DejaVuSansMono",)
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class TextLine:
    """One run of rendered text.

    Attributes:
        text: Exactly what was drawn.
        box: Its ink box ``(x0, y0, x1, y1)`` in the image's pixels.
        role: What it is (``"line"``, ``"title"``, ``"price"``, ``"cell"``, ``"value"``, ...).
        key: What it belongs to (an item name, ``"row|column"``, a bar's category, ...).
    """

    text: str
    box: Box
    role: str = "line"
    key: str = ""

    def shifted(self, dx: float, dy: float) -> TextLine:
        """The same line moved by ``(dx, dy)``."""
        x0, y0, x1, y1 = self.box
        return replace(self, box=(x0 + dx, y0 + dy, x1 + dx, y1 + dy))

    def mapped(self, transform: Transform) -> TextLine:
        """The same line with its box mapped through a bound ``transform``."""
        return replace(self, box=transform.map_box(self.box))


@dataclass
class Rendered:
    """A rendered image with its ground truth.

    Attributes:
        image: The RGB image.
        kind: ``"document"``, ``"sign"``, ``"label"``, ``"receipt"``, ``"table"``, ``"chart"``.
        lines: Every piece of text drawn, in drawing order.
        meta: Kind-specific facts (paragraphs, items and total, cell values, bar values).
    """

    image: Image.Image
    kind: str
    lines: list[TextLine]
    meta: dict[str, Any] = field(default_factory=dict)

    def find(self, role: str | None = None, key: str | None = None) -> list[TextLine]:
        """Lines with this ``role`` and/or ``key``."""
        return [
            line
            for line in self.lines
            if (role is None or line.role == role) and (key is None or line.key == key)
        ]


def union_box(boxes: list[Box]) -> Box:
    """The smallest box holding all ``boxes``."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _font(rng: random.Random, names: tuple[str, ...], size: int) -> ImageFont.FreeTypeFont:
    return load_font(rng.choice(usable_fonts(names)), size)


def _text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    font: ImageFont.FreeTypeFont,
    fill: Colour,
    role: str = "line",
    key: str = "",
) -> TextLine:
    xy = (round(xy[0]), round(xy[1]))
    draw.text(xy, text, font=font, fill=fill)
    return TextLine(text, tuple(float(v) for v in draw.textbbox(xy, text, font=font)), role, key)


def _ink(rng: random.Random) -> Colour:
    return rng.choice([(20, 20, 20), (40, 40, 40), (15, 25, 70), (60, 30, 20), (0, 0, 0)])


def _paper(rng: random.Random) -> Colour:
    return rng.choice([(255, 255, 255), (250, 248, 240), (245, 245, 242), (252, 250, 236)])


def sentence(rng: random.Random, low: int = 6, high: int = 14) -> str:
    """A random sentence: a capitalised first word, a full stop."""
    words = [rng.choice(vocab.WORDS) for _ in range(rng.randint(low, high))]
    if len(words) > 6 and rng.random() < 0.4:
        words[rng.randint(2, len(words) - 3)] += ","
    return " ".join(words).capitalize() + "."


@lru_cache(maxsize=16384)
def _width(font: ImageFont.FreeTypeFont, text: str) -> float:
    return font.getlength(text)


def wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Greedy word wrap of ``text`` into lines no wider than ``width`` pixels.

    Word widths are cached and summed; each finished line is then measured exactly, and the
    rare line that kerning pushes over ``width`` gives up its last word.
    """
    space = _width(font, " ")
    rows: list[list[str]] = []
    current: list[str] = []
    used = 0.0
    for word in text.split():
        w = _width(font, word)
        if current and used + space + w > width:
            rows.append(current)
            current, used = [], 0.0
        used += (space if current else 0.0) + w
        current.append(word)
    if current:
        rows.append(current)
    lines: list[str] = []
    for k, row in enumerate(rows):
        while len(row) > 1 and font.getlength(" ".join(row)) > width:
            spill = row.pop()
            if k + 1 == len(rows):
                rows.append([])
            rows[k + 1].insert(0, spill)
        lines.append(" ".join(row))
    return lines


def render_document(rng: random.Random, size: tuple[int, int] = (1000, 1000)) -> Rendered:
    """A page: a bold title, then whole paragraphs until the page is full."""
    width, height = size
    image = Image.new("RGB", size, _paper(rng))
    draw = ImageDraw.Draw(image)
    ink = _ink(rng)
    body_size = rng.randint(18, 24)
    body = _font(rng, BODY_FONTS, body_size)
    margin = rng.randint(50, 80)
    leading = round(body_size * rng.uniform(1.35, 1.6))
    title_text = " ".join(rng.choice(vocab.WORDS) for _ in range(rng.randint(2, 4))).title()
    title_font = _font(rng, BOLD_FONTS, body_size + 12)
    lines = [_text(draw, (margin, margin), title_text, title_font, ink, "title")]
    y = lines[0].box[3] + leading
    paragraphs: list[list[int]] = []
    while True:
        text = " ".join(sentence(rng) for _ in range(rng.randint(2, 4)))
        wrapped = wrap(text, body, width - 2 * margin)
        if y + len(wrapped) * leading > height - margin:
            wrapped = wrap(sentence(rng), body, width - 2 * margin)
            if y + len(wrapped) * leading > height - margin:
                break
        indices = []
        for line_text in wrapped:
            indices.append(len(lines))
            lines.append(
                _text(draw, (margin, y), line_text, body, ink, "line", str(len(paragraphs)))
            )
            y += leading
        paragraphs.append(indices)
        y += round(leading * 0.7)
    return Rendered(image, "document", lines, {"paragraphs": paragraphs, "title": title_text})


_SIGN_COLOURS: tuple[tuple[Colour, Colour], ...] = (
    ((0, 110, 60), (255, 255, 255)),
    ((20, 60, 150), (255, 255, 255)),
    ((180, 20, 30), (255, 255, 255)),
    ((250, 200, 0), (10, 10, 10)),
    ((245, 245, 245), (10, 10, 10)),
    ((100, 60, 30), (250, 240, 220)),
)


def render_sign(rng: random.Random) -> Rendered:
    """A sign panel with one or two lines of large bold text."""
    texts = rng.choice(
        [
            [rng.choice(vocab.STREETS)],
            [rng.choice(vocab.SIGN_PHRASES)],
            [rng.choice(vocab.SIGN_PHRASES), rng.choice(vocab.STREETS)],
            [rng.choice(vocab.STREETS), f"No {rng.randint(1, 199)}"],
        ]
    )
    font = _font(rng, BOLD_FONTS, rng.randint(36, 64))
    background, ink = rng.choice(_SIGN_COLOURS)
    pad = font.size // 2
    gap = font.size // 3
    sizes = [font.getbbox(t) for t in texts]
    panel_w = round(max(b[2] for b in sizes) + 2 * pad)
    panel_h = round(sum(b[3] for b in sizes) + gap * (len(texts) - 1) + 2 * pad)
    image = Image.new("RGB", (panel_w, panel_h), background)
    draw = ImageDraw.Draw(image)
    draw.rectangle((3, 3, panel_w - 4, panel_h - 4), outline=ink, width=3)
    lines, y = [], pad
    for text, bbox in zip(texts, sizes, strict=True):
        x = (panel_w - (bbox[2] - bbox[0])) / 2 - bbox[0]
        lines.append(_text(draw, (round(x), y), text, font, ink, "sign"))
        y += bbox[3] + gap
    return Rendered(image, "sign", lines, {"text": " ".join(texts)})


def label_code(rng: random.Random) -> str:
    """A short code such as ``"K7-482"`` (no easily confused characters)."""
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return f"{rng.choice(letters)}{rng.randint(2, 9)}-{rng.randint(100, 999)}"


def render_label(rng: random.Random, font_size: int | None = None) -> Rendered:
    """A small tag with a short dark code on a light background."""
    code = label_code(rng)
    font = _font(rng, ("DejaVuSansMono", "DejaVuSans-Bold"), font_size or rng.randint(11, 15))
    left, top, right, bottom = font.getbbox(code)
    pad = 3
    size = (round(right - left + 2 * pad), round(bottom - top + 2 * pad))
    image = Image.new("RGB", size, rng.choice([(255, 255, 255), (255, 240, 150), (230, 240, 255)]))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, size[0] - 1, size[1] - 1), outline=(60, 60, 60))
    line = _text(draw, (pad - left, pad - top), code, font, (15, 15, 15), "label")
    return Rendered(image, "label", [line], {"code": code})


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def render_receipt(rng: random.Random, width: int = 420) -> Rendered:
    """A till receipt: store, date, items with prices, and their total."""
    items = rng.sample(vocab.ITEMS, rng.randint(4, 8))
    prices = [rng.randint(59, 2499) for _ in items]
    font = _font(rng, MONO_FONTS, rng.randint(16, 19))
    leading = round(font.size * 1.5)
    margin = 24
    height = margin * 2 + leading * (len(items) + 7)
    image = Image.new("RGB", (width, height), _paper(rng))
    draw = ImageDraw.Draw(image)
    ink = _ink(rng)
    store = rng.choice(vocab.STORES)
    header = load_font(usable_fonts(BOLD_FONTS)[0], font.size + 4)
    lines = [
        _text(draw, ((width - header.getlength(store)) / 2, margin), store, header, ink, "store")
    ]
    month, day, hour, minute = (
        rng.randint(1, 12),
        rng.randint(1, 28),
        rng.randint(8, 21),
        rng.randint(0, 59),
    )
    date = f"2024-{month:02d}-{day:02d} {hour}:{minute:02d}"
    y = margin + leading * 1.5
    lines.append(_text(draw, (margin, y), date, font, ink, "date"))
    y += leading
    rule = "-" * int((width - 2 * margin) // font.getlength("-"))
    draw.text((margin, y), rule, font=font, fill=ink)
    y += leading
    for name, cents in zip(items, prices, strict=True):
        lines.append(_text(draw, (margin, y), name, font, ink, "item", name))
        price = _money(cents)
        right = width - margin - font.getlength(price)
        lines.append(_text(draw, (right, y), price, font, ink, "price", name))
        y += leading
    draw.text((margin, y), rule, font=font, fill=ink)
    y += leading
    total = _money(sum(prices))
    bold = load_font(usable_fonts(("DejaVuSansMono-Bold", *MONO_FONTS))[0], font.size)
    lines.append(_text(draw, (margin, y), "TOTAL", bold, ink, "total_label"))
    right = width - margin - bold.getlength(total)
    lines.append(_text(draw, (right, y), total, bold, ink, "total"))
    meta = {"items": {n: _money(c) for n, c in zip(items, prices, strict=True)}, "total": total}
    return Rendered(image, "receipt", lines, meta)


def render_table(rng: random.Random) -> Rendered:
    """A grid: row names down the left, months across the top, numbers in the cells."""
    rows = rng.sample(vocab.ROW_NAMES, rng.randint(3, 6))
    start = rng.randint(0, 12 - 5)
    columns = list(vocab.MONTHS[start : start + rng.randint(3, 5)])
    values = {(r, c): str(rng.randint(10, 999)) for r in rows for c in columns}
    font = _font(rng, ("DejaVuSans", "DejaVuSerif"), rng.randint(16, 20))
    bold = load_font(usable_fonts(BOLD_FONTS)[0], font.size)
    cell_w = round(bold.getlength("Coastal") + 2 * font.size)
    cell_h = round(font.size * 2.2)
    size = (cell_w * (len(columns) + 1) + 2, cell_h * (len(rows) + 1) + 2)
    image = Image.new("RGB", size, _paper(rng))
    draw = ImageDraw.Draw(image)
    ink = _ink(rng)
    draw.rectangle((0, 0, size[0] - 1, cell_h), fill=(225, 230, 240))
    for k in range(len(rows) + 2):
        draw.line((0, k * cell_h, size[0], k * cell_h), fill=(120, 120, 120), width=1)
    for k in range(len(columns) + 2):
        draw.line((k * cell_w, 0, k * cell_w, size[1]), fill=(120, 120, 120), width=1)
    pad = font.size // 2
    lines = []
    for j, column in enumerate(columns, start=1):
        lines.append(_text(draw, (j * cell_w + pad, pad), column, bold, ink, "column", column))
    for i, row in enumerate(rows, start=1):
        lines.append(_text(draw, (pad, i * cell_h + pad), row, bold, ink, "row", row))
        for j, column in enumerate(columns, start=1):
            xy = (j * cell_w + pad, i * cell_h + pad)
            lines.append(_text(draw, xy, values[row, column], font, ink, "cell", f"{row}|{column}"))
    meta = {
        "rows": rows,
        "columns": columns,
        "values": {f"{r}|{c}": v for (r, c), v in values.items()},
    }
    return Rendered(image, "table", lines, meta)


def render_bar_chart(rng: random.Random, size: tuple[int, int] = (800, 560)) -> Rendered:
    """A bar chart with a title, category labels and each bar's value printed above it."""
    width, height = size
    start = rng.randint(0, 12 - 7)
    categories = list(vocab.MONTHS[start : start + rng.randint(4, 7)])
    scale = rng.choice([1, 10])
    values = [rng.randint(5, 95) * scale for _ in categories]
    top_value = max(values)
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = _font(rng, ("DejaVuSans", "DejaVuSerif"), rng.randint(14, 18))
    title_font = load_font(usable_fonts(BOLD_FONTS)[0], font.size + 6)
    title = rng.choice(vocab.CHART_TITLES)
    lines = [
        _text(
            draw,
            ((width - title_font.getlength(title)) / 2, 16),
            title,
            title_font,
            (0, 0, 0),
            "title",
        )
    ]
    left, right, top, bottom = 70, width - 30, 90, height - 60
    draw.line((left, bottom, right, bottom), fill=(0, 0, 0), width=2)
    draw.line((left, top - 20, left, bottom), fill=(0, 0, 0), width=2)
    colour = rng.choice([(66, 114, 196), (221, 132, 82), (85, 168, 104), (196, 78, 82)])
    slot = (right - left) / len(categories)
    bars = {}
    for k, (category, value) in enumerate(zip(categories, values, strict=True)):
        x0 = round(left + slot * k + slot * 0.2)
        x1 = round(left + slot * (k + 1) - slot * 0.2)
        y0 = round(bottom - (bottom - top) * value / top_value)
        draw.rectangle((x0, y0, x1, bottom - 1), fill=colour)
        bars[category] = (float(x0), float(y0), float(x1 + 1), float(bottom))
        text = str(value)
        centre = (x0 + x1) / 2
        lines.append(
            _text(
                draw,
                (centre - font.getlength(text) / 2, y0 - font.size - 8),
                text,
                font,
                (0, 0, 0),
                "value",
                category,
            )
        )
        lines.append(
            _text(
                draw,
                (centre - font.getlength(category) / 2, bottom + 10),
                category,
                font,
                (0, 0, 0),
                "category",
                category,
            )
        )
    meta = {
        "title": title,
        "values": dict(zip(categories, map(str, values), strict=True)),
        "bars": bars,
    }
    return Rendered(image, "chart", lines, meta)
