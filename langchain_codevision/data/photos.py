"""Real photographs as backgrounds, and pasting rendered panels onto them.

The photographs are the ones scikit-image ships (``astronaut``, ``coffee``, ``chelsea``,
``rocket``, ...), so nothing is downloaded. Each is resized once (cached) to cover the
largest canvas, and backgrounds are random windows of it.

Example:
    >>> import random
    >>> from langchain_codevision.data.photos import photo_background
    >>> image, name = photo_background(random.Random(0), (640, 480))
    >>> image.size
    (640, 480)
"""

from __future__ import annotations

import random
from dataclasses import replace
from functools import lru_cache

from PIL import Image

from langchain_codevision.data.render import Rendered

PHOTOS: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "brick",
    "grass",
    "hubble_deep_field",
    "immunohistochemistry",
)
"""scikit-image photographs used as backgrounds."""
MAX_CANVAS = 1024
"""Largest background side supported."""


@lru_cache(maxsize=len(PHOTOS))
def _cover(name: str) -> Image.Image:
    photo = load_photo(name)
    scale = (MAX_CANVAS + 64) / min(photo.size)
    size = (round(photo.width * scale), round(photo.height * scale))
    return photo.resize(size, Image.Resampling.BICUBIC)


def load_photo(name: str) -> Image.Image:
    """Photo ``name`` at its original size (RGB).

    Raises:
        ValueError: ``name`` is not in :data:`PHOTOS`.
    """
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - scikit-image ships with the extras
        raise ImportError(
            "photo backgrounds need scikit-image: pip install 'langchain-codevision[eval]'"
        ) from exc
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; valid names: {', '.join(PHOTOS)}")
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def photo_background(
    rng: random.Random, size: tuple[int, int], name: str | None = None
) -> tuple[Image.Image, str]:
    """A random ``size`` window of a photograph (``name`` or a random one), and its name.

    Raises:
        ValueError: ``size`` exceeds :data:`MAX_CANVAS` or ``name`` is unknown.
    """
    width, height = size
    if max(size) > MAX_CANVAS or min(size) <= 0:
        raise ValueError(f"background size must be within 1..{MAX_CANVAS}, got {size}")
    name = name or rng.choice(PHOTOS)
    cover = _cover(name)
    x = rng.randint(0, cover.width - width)
    y = rng.randint(0, cover.height - height)
    return cover.crop((x, y, x + width, y + height)), name


def place(panel: Rendered, background: Image.Image, xy: tuple[int, int]) -> Rendered:
    """Paste ``panel`` onto a copy of ``background`` at ``xy``; its boxes move with it.

    ``meta["panel_box"]`` records where the panel went.

    Raises:
        ValueError: The panel does not fit inside the background there.
    """
    x, y = xy
    w, h = panel.image.size
    if x < 0 or y < 0 or x + w > background.width or y + h > background.height:
        raise ValueError(
            f"a {w}x{h} panel at {xy} does not fit the {background.width}x{background.height} "
            "background"
        )
    canvas = background.convert("RGB")
    canvas.paste(panel.image.convert("RGB"), (x, y))
    lines = [line.shifted(x, y) for line in panel.lines]
    meta = {**panel.meta, "panel_box": (float(x), float(y), float(x + w), float(y + h))}
    return replace(panel, image=canvas, lines=lines, meta=meta)


def random_position(
    rng: random.Random, panel: tuple[int, int], canvas: tuple[int, int], margin: int = 8
) -> tuple[int, int]:
    """A random top-left corner that keeps a ``panel`` inside ``canvas`` with ``margin``."""
    max_x = canvas[0] - panel[0] - margin
    max_y = canvas[1] - panel[1] - margin
    if max_x < margin or max_y < margin:
        raise ValueError(f"a {panel} panel does not fit a {canvas} canvas")
    return rng.randint(margin, max_x), rng.randint(margin, max_y)
