"""The offline demo: a rotated page, the CodeVision loop, and a check of the result."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


def run_demo(rotation: int = 90, out_dir: str | None = None, model: Any = None) -> dict[str, Any]:
    """Rotate a page, let the CodeVision graph restore it, and verify pixel for pixel."""
    from .graph import create_codevision_graph
    from .images import decode_trajectory_image
    from .model_spec import load_chat_model

    page, _ = render_page()
    rotated = page.rotate(rotation, expand=True)
    graph = create_codevision_graph(model or load_chat_model())
    started = time.perf_counter()
    state = graph.invoke({"image": rotated, "question": "How is this page rotated? Restore it."})
    elapsed = time.perf_counter() - started
    final = decode_trajectory_image(state["images"][-1])
    restored = final.size == page.size and np.array_equal(np.asarray(final), np.asarray(page))
    if out_dir:
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for item in state["images"]:
            decode_trajectory_image(item).save(folder / f"image-{item['index']}.png")
    return {
        "rotation": rotation,
        "answer": state["answer"],
        "stop_reason": state["stop_reason"],
        "steps": state["steps"],
        "restored": restored,
        "seconds": elapsed,
    }
