"""The offline demo: real and rendered images, each transformed, each with its own question.

Every :class:`DemoItem` is an image (two real ones ship with the package: a scanned page and
a photograph of handwriting, see ``demo_data/NOTICE``; the others are rendered here with
known text), a transform from :mod:`langchain_codevision.data.transforms` applied to it, a
question and the answers accepted. :func:`iter_demo` runs each item through the real
CodeVision graph, whose code runs in the sandboxed kernel, and yields a
:class:`DemoResult` (the final state, where the time went, the images written, whether the
answer is right by :func:`is_correct`).

The model is whatever :func:`~langchain_codevision.model_spec.load_chat_model` returns for
``"offline"`` unless one is passed; the score says how many answers it got right.

Example:
    >>> for result in iter_demo(out_dir="codevision-demo/run"):  # doctest: +SKIP
    ...     print(result.item.question, result.answer, result.correct)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .episode_output import (
    EpisodeTimings,
    ModelTimer,
    SavedImage,
    episode_timings,
    save_episode_images,
)

__all__ = [
    "DEMO_CODE_TIMEOUT_S",
    "DEMO_ITEMS",
    "WORDS",
    "DemoItem",
    "DemoResult",
    "default_out_dir",
    "is_correct",
    "iter_demo",
    "load_demo_image",
    "render_label",
    "render_memo",
    "render_page",
]

WORDS = [
    "invoice",
    "total",
    "amount",
    "due",
    "date",
    "customer",
    "order",
    "shipping",
    "tax",
    "paid",
    "balance",
    "item",
    "quantity",
    "price",
    "number",
    "account",
    "reference",
    "payment",
    "received",
    "thank",
    "you",
    "for",
    "your",
    "business",
]

TRANSFORM_CHOICES = "rotate_90, rotate_180, rotate_270, flip_horizontal or flip_vertical"
"""The answers a "which transform" question offers."""

MEMO_LINES = (
    "MEETING NOTES",
    "Room B-214, Thursday at 10:30",
    "The budget review moves to Friday.",
    "Bring the signed forms to Maria.",
    "Parking passes are at the front desk.",
)
"""The text of :func:`render_memo`'s page, line by line."""

DEMO_CODE_TIMEOUT_S = 120.0
"""Seconds one tool call may run in the demo: the offline policy runs an OCR engine in the
kernel, which can take tens of seconds on a busy CPU (the kernel's default limit is 30 s)."""

LABEL_CODE = "KX-4821"
"""The order code printed on :func:`render_label`'s label."""


def render_page(
    seed: int = 0, size: tuple[int, int] = (800, 1000)
) -> tuple[Image.Image, list[str]]:
    """A text page with known, left-aligned lines (rendered with Pillow's bundled font)."""
    rng = random.Random(seed)
    font = ImageFont.load_default(size=22)
    page = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(page)
    lines = []
    for row in range((size[1] - 80) // 30):
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))
        draw.text((40, 40 + row * 30), line, fill="black", font=font)
        lines.append(line)
    return page, lines


def render_memo() -> Image.Image:
    """A short memo with the known lines of :data:`MEMO_LINES` (title larger)."""
    page = Image.new("RGB", (640, 300), "white")
    draw = ImageDraw.Draw(page)
    draw.text((32, 24), MEMO_LINES[0], fill="black", font=ImageFont.load_default(size=34))
    body = ImageFont.load_default(size=24)
    for row, line in enumerate(MEMO_LINES[1:]):
        draw.text((32, 90 + row * 44), line, fill="black", font=body)
    return page


def render_label() -> Image.Image:
    """A parcel label whose order code is :data:`LABEL_CODE`."""
    label = Image.new("RGB", (520, 260), (250, 246, 232))
    draw = ImageDraw.Draw(label)
    draw.rectangle((6, 6, 513, 253), outline="black", width=3)
    small, big = ImageFont.load_default(size=22), ImageFont.load_default(size=48)
    draw.text((28, 24), "SHIP TO: J. Okafor, 12 Mill Lane", fill="black", font=small)
    draw.text((28, 70), "ORDER CODE", fill="black", font=small)
    draw.text((28, 102), LABEL_CODE, fill="black", font=big)
    for i in range(40):  # a bar-code-like strip
        width = 2 + (i * 7) % 5
        draw.rectangle((28 + i * 11, 186, 28 + i * 11 + width, 236), fill="black")
    return label


@cache
def _packaged(name: str) -> Image.Image:
    with resources.files("langchain_codevision").joinpath("demo_data", name).open("rb") as f:
        image = Image.open(f)
        image.load()
    return image.convert("RGB")


def load_demo_image(name: str) -> Image.Image:
    """A copy of a packaged demo image (``scanned-page.png``, ``handwriting.png``)."""
    return _packaged(name).copy()


@dataclass(frozen=True)
class DemoItem:
    """One demo question: an image, the transform applied to it, the answers accepted."""

    name: str
    """Short name; also the folder its images are written to."""
    source: str
    """Where the image comes from, in words."""
    image: Callable[[], Image.Image]
    """Builds the untransformed image."""
    transform: str
    """A transform name of :mod:`langchain_codevision.data.transforms`."""
    question: str
    answers: tuple[str, ...]
    """Accepted answers (any one counts)."""

    def transformed(self) -> Image.Image:
        """The image as the model gets it."""
        from .data.transforms import get_transform

        return get_transform(self.transform).apply(self.image())


def _transform_question(what: str) -> str:
    return (
        f"This {what} was rotated or flipped. Which transform was applied? "
        f"Answer with one of {TRANSFORM_CHOICES}."
    )


DEMO_ITEMS: tuple[DemoItem, ...] = (
    DemoItem(
        "scan-line",
        "real scan (scikit-image 'page')",
        lambda: load_demo_image("scanned-page.png"),
        "rotate_90",
        "What does the line that starts with 'Let us' say?",
        ("Let us first determine markers of the coins and the",),
    ),
    DemoItem(
        "scan-word",
        "real scan (scikit-image 'page')",
        lambda: load_demo_image("scanned-page.png"),
        "flip_horizontal",
        "What is the word after 'markers of the'?",
        ("coins",),
    ),
    DemoItem(
        "handwriting-transform",
        "real photo of handwriting (scikit-image 'text')",
        lambda: load_demo_image("handwriting.png"),
        "rotate_180",
        _transform_question("photo of handwriting"),
        ("rotate_180",),
    ),
    DemoItem(
        "memo-transform",
        "rendered memo",
        render_memo,
        "rotate_270",
        _transform_question("page"),
        ("rotate_270",),
    ),
    DemoItem(
        "label-code",
        "rendered parcel label",
        render_label,
        "flip_vertical",
        "What is the order code?",
        (LABEL_CODE,),
    ),
)
"""The questions ``codevision demo`` asks, in order."""


@dataclass
class DemoResult:
    """One demo item after its episode."""

    item: DemoItem
    state: dict[str, Any]
    """The graph's final state (``answer``, ``steps``, ``images``, ``stop_reason``, ...)."""
    timings: EpisodeTimings
    correct: bool
    images: list[SavedImage] = field(default_factory=list)
    folder: Path | None = None

    @property
    def answer(self) -> str | None:
        """The model's answer (``None``: it gave none)."""
        return self.state.get("answer")


def is_correct(answer: str | None, accepted: Sequence[str]) -> bool:
    """The demo's rule: the release's answer rule, or an accepted answer occurs in the reply.

    The second is OCRBench's rule (case-insensitive substring), so ``"The code is KX-4821"``
    counts for ``KX-4821``.
    """
    from .protocol.answers import answers_match, ocrbench_match

    return any(answers_match(answer, a) for a in accepted) or ocrbench_match(answer, accepted)


def default_out_dir(base: str | Path = "codevision-demo") -> Path:
    """A new folder ``base/<YYYYmmdd-HHMMSS>`` (suffixed ``-2``, ... if taken)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder, n = Path(base) / stamp, 1
    while folder.exists():
        n += 1
        folder = Path(base) / f"{stamp}-{n}"
    return folder


def iter_demo(
    *,
    out_dir: str | Path | None = None,
    model: Any = None,
    items: Sequence[DemoItem] = DEMO_ITEMS,
    profile: str = "default",
    on_start: Callable[[int, DemoItem], None] | None = None,
    code_timeout: float | None = DEMO_CODE_TIMEOUT_S,
) -> Iterator[DemoResult]:
    """Run each item through the CodeVision graph; yield its result as soon as it is done.

    Args:
        out_dir: Write each item's images under ``out_dir/<n>-<name>/`` (``None``: none).
        model: Any chat model (default: ``load_chat_model("offline")``).
        items: The questions to ask.
        profile: The protocol profile.
        on_start: Called with the item's number (from 1) and the item before it runs.
        code_timeout: Seconds one tool call may run (``None``: the kernel's own limit).
    """
    from .kernel import KernelPool
    from .loop.graph import create_codevision_graph
    from .model_spec import load_chat_model

    chosen = model if model is not None else load_chat_model("offline")
    with KernelPool(size=2) as pool:
        graph = create_codevision_graph(
            chosen, profile=profile, pool=pool, code_timeout=code_timeout
        )
        for number, item in enumerate(items, 1):
            if on_start is not None:
                on_start(number, item)
            image = item.transformed()
            timer = ModelTimer()
            started = time.perf_counter()
            state = graph.invoke(
                {"image": image, "question": item.question}, config={"callbacks": [timer]}
            )
            timings = episode_timings(state, timer, time.perf_counter() - started)
            answer = state.get("answer")
            correct = is_correct(answer, item.answers)
            result = DemoResult(item, dict(state), timings, correct)
            if out_dir is not None:
                result.folder = Path(out_dir) / f"{number}-{item.name}"
                result.images = save_episode_images(state.get("images") or [], result.folder)
            yield result
