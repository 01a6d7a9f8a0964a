"""The benchmark's image workloads: the code a model would write, and the pixels it must give.

Every workload is a list of steps. A step's code reads ``image`` and leaves its output in
``result``; in a chained step ``image`` is the previous step's ``result`` (the executor
arranges that its own way). :func:`expected` computes the right output in-process, so each
executor's answer is checked pixel for pixel before it is timed.

* ``rotate``: one step, the page turned upright (``rotate(90, expand=True)``);
* ``crop_contrast``: one step, a crop followed by a contrast boost;
* ``episode``: five chained steps on the page (rotate, crop, contrast, sharpen, grey).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

__all__ = ["WORKLOADS", "Step", "Workload", "expected", "page"]


@dataclass(frozen=True)
class Step:
    """One tool call: ``code``; ``chained``: ``image`` is the previous step's ``result``."""

    code: str
    chained: bool = False


@dataclass(frozen=True)
class Workload:
    """A named list of steps."""

    name: str
    title: str
    steps: tuple[Step, ...]


ROTATE = Step("result = image.rotate(90, expand=True)")
CROP_CONTRAST = Step(
    "w, h = image.size\n"
    "box = (w // 10, h // 10, w * 7 // 10, h * 6 // 10)\n"
    "result = ImageEnhance.Contrast(image.crop(box)).enhance(1.8)"
)
EPISODE = (
    ROTATE,
    Step(CROP_CONTRAST.code.replace("enhance(1.8)", "enhance(1.0)"), chained=True),
    Step("result = ImageEnhance.Contrast(image).enhance(1.6)", chained=True),
    Step("result = image.filter(ImageFilter.SHARPEN)", chained=True),
    Step("result = ImageOps.grayscale(image)", chained=True),
)
WORKLOADS = (
    Workload("rotate", "rotate", (ROTATE,)),
    Workload("crop_contrast", "crop + contrast", (CROP_CONTRAST,)),
    Workload("episode", "5-step episode", EPISODE),
)
"""The workloads, in report order."""


def page(size: int = 1000) -> Image.Image:
    """A ``size`` x ``size`` document page of real rendered text lines."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    for row in range(max(1, (size - 20) // 22)):
        line = f"{row:02d} Invoice item {row * 7} total {row * 3.5:.2f}"
        draw.text((30, 10 + row * 22), line, fill="black")
    box = (size * 6 // 10, size * 7 // 10, size * 9 // 10, size * 9 // 10)
    draw.rectangle(box, outline="red", width=4)
    return image.convert("RGB")


def _run_here(code: str, image: Image.Image) -> Image.Image:
    names = {
        "image": image,
        "Image": Image,
        "ImageEnhance": ImageEnhance,
        "ImageFilter": ImageFilter,
        "ImageOps": ImageOps,
    }
    exec(code, names)  # trusted: the benchmark's own code
    return names["result"]


def expected(workload: Workload, image: Image.Image) -> list[Image.Image]:
    """The output of every step of ``workload`` on ``image``, computed in this process."""
    outputs: list[Image.Image] = []
    current = image
    for step in workload.steps:
        source = outputs[-1] if step.chained and outputs else image
        current = _run_here(step.code, source)
        outputs.append(current)
    return outputs
