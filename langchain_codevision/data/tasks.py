"""Plan synthesis tasks: choose the task type and transform, write the teacher's plan, verify.

:func:`plan_task` turns a canonical :class:`SourceSample` into a :class:`SynthTask`: the task
type is chosen first (from configurable ratios), then the transform that makes its tools
necessary, then the teacher's replies and the images a correct run must produce.
:func:`verify` checks a finished run against that.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..protocol.answers import answers_match
from . import teacher as T
from .transforms import ORIENTATIONS, get_transform

TASK_TYPES = ("single_tool", "multi_tool", "coarse_to_fine", "error_handling", "no_tool")
DEFAULT_MIX: dict[str, float] = {
    "single_tool": 0.3,
    "multi_tool": 0.2,
    "coarse_to_fine": 0.15,
    "error_handling": 0.2,
    "no_tool": 0.15,
}
TRANSFORM_QUESTION = (
    "Which transformation was applied to this image? Answer with one of: rotate_90, "
    "rotate_180, rotate_270, flip_horizontal, flip_vertical."
)


@dataclass
class SourceSample:
    """What synthesis needs from a source: a canonical image, a question and its answer.

    Attributes:
        image: The canonical (upright, clean) image.
        question: The question.
        answer: The ground-truth answer.
        bbox: Where the answer is in ``image`` (``x0, y0, x1, y1``), if known.
        kind: The kind of source (``"document"``, ``"sign"``, ``"chart"``, ...).
    """

    image: Image.Image
    question: str
    answer: str
    bbox: tuple[float, float, float, float] | None = None
    kind: str = "document"


@dataclass
class SynthTask:
    """One planned task: the transformed input, the plan and what to verify."""

    index: int
    task_type: str
    transform: str | None
    sample: SourceSample
    image: Image.Image
    question: str
    answer: str
    plan: T.Plan
    expected: list[tuple[int, Image.Image]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def _rng(seed: int, index: int) -> random.Random:
    return random.Random(seed * 1_000_003 + index)


def _pad_box(
    box: Any, size: tuple[int, int], factor: float, minimum: int
) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w = max((x1 - x0) * factor / 2, minimum / 2)
    half_h = max((y1 - y0) * factor / 2, minimum / 2)
    left, top = max(int(cx - half_w), 0), max(int(cy - half_h), 0)
    right, bottom = min(int(np.ceil(cx + half_w)), size[0]), min(int(np.ceil(cy + half_h)), size[1])
    return left, top, right, bottom


def _choose_type(rng: random.Random, mix: Mapping[str, float], sample: SourceSample) -> str:
    names = [name for name in TASK_TYPES if mix.get(name, 0) > 0]
    if sample.bbox is None:
        names = [n for n in names if n not in ("multi_tool", "coarse_to_fine")] or ["single_tool"]
    weights = [mix[name] for name in names]
    return rng.choices(names, weights)[0]


def plan_task(sample: SourceSample, index: int, seed: int, mix: Mapping[str, float]) -> SynthTask:
    """Choose the task type and transform for ``sample``, and write the teacher's plan."""
    rng = _rng(seed, index)
    task_type = _choose_type(rng, mix, sample)
    canonical = sample.image
    question, expected_answer = sample.question, sample.answer
    transform: str | None = None
    replies: list[Any] = []
    expect_ok: list[bool] = []
    expected: list[tuple[int, Image.Image]] = []
    if task_type == "no_tool":
        replies = [T.answer(expected_answer, f"{T.describe(None)} I can read the answer directly.")]
    elif task_type == "single_tool":
        transform = rng.choice([*ORIENTATIONS, *ORIENTATIONS, "low_contrast", "dim"])
        code = T.fix_code(transform, rng)
        if transform in ORIENTATIONS and rng.random() < 0.2:
            question, expected_answer = TRANSFORM_QUESTION, transform
        think = f"{T.describe(transform)} I will fix that first."
        replies = [
            T.call(code, "restore the image", 0, think),
            T.answer(expected_answer, "The restored image is clear now."),
        ]
        expect_ok = [True]
        if transform in ORIENTATIONS:
            expected = [(1, canonical)]
    elif task_type == "multi_tool":
        transform = rng.choice(ORIENTATIONS)
        box = _pad_box(sample.bbox, canonical.size, 1.6, 24)
        fix = T.fix_code(transform, rng)
        think = f"{T.describe(transform)} The answer is in a small region, so I also crop it."
        if rng.random() < 0.5:
            code = fix.replace("result = ", "fixed = ", 1) + "\n" + T.crop_code(box, rng, "fixed")
            replies = [T.call(code, "restore and crop", 0, think)]
            expect_ok = [True]
            expected = [(1, canonical.crop(box))]
        else:
            replies = [
                T.call(fix, "restore the image", 0, think),
                T.call(T.crop_code(box, rng), "crop the answer region", 1, "Now crop the region."),
            ]
            expect_ok = [True, True]
            expected = [(1, canonical), (2, canonical.crop(box))]
        replies.append(T.answer(expected_answer, "The crop shows the answer clearly."))
    elif task_type == "coarse_to_fine":
        transform = rng.choice([None, *ORIENTATIONS])
        start = 0
        if transform:
            replies.append(
                T.call(T.fix_code(transform, rng), "restore the image", 0, T.describe(transform))
            )
            expect_ok.append(True)
            expected.append((1, canonical))
            start = 1
        coarse = _pad_box(sample.bbox, canonical.size, 4.0, 160)
        bx0, by0, bx1, by1 = sample.bbox  # type: ignore[misc]
        local = (bx0 - coarse[0], by0 - coarse[1], bx1 - coarse[0], by1 - coarse[1])
        size = (coarse[2] - coarse[0], coarse[3] - coarse[1])
        fine = _pad_box(local, size, 1.4, 16)
        replies.append(
            T.call(
                T.crop_code(coarse, rng),
                "wide crop around the region",
                start,
                "The detail is small. First a wide crop around where it should be.",
            )
        )
        w, h = fine[2] - fine[0], fine[3] - fine[1]
        fine_code = (
            f"result = image.crop(({fine[0]}, {fine[1]}, {fine[2]}, {fine[3]}))"
            f".resize(({w * 2}, {h * 2}))"
        )
        replies.append(
            T.call(
                fine_code,
                "tight crop, enlarged",
                start + 1,
                "The target is in this crop. Now a tight crop, enlarged to read it.",
            )
        )
        expect_ok += [True, True]
        coarse_image = canonical.crop(coarse)
        expected += [
            (start + 1, coarse_image),
            (start + 2, coarse_image.crop(fine).resize((w * 2, h * 2))),
        ]
        replies.append(T.answer(expected_answer, "The enlarged crop is legible."))
    else:  # error_handling
        transform = rng.choice(ORIENTATIONS)
        fix = T.fix_code(transform, rng)
        variant = rng.choice(["ndarray", "bad_index", "wrong_tool"])
        if variant == "ndarray" and transform.startswith("rotate_"):
            degrees = (360 - int(transform.split("_")[1])) % 360
            first = f"arr = np.array(image)\nresult = arr.rotate({degrees}, expand=True)"
            replies = [T.call(first, "restore the image", 0, T.describe(transform))]
            expect_ok = [False]
        elif variant == "bad_index":
            replies = [T.call(fix, "restore the image", 3, T.describe(transform))]
            expect_ok = [False]
        else:
            wrong = rng.choice([name for name in ORIENTATIONS if name != transform])
            replies = [T.call(T.fix_code(wrong, rng), "restore the image", 0, T.describe(wrong))]
            expect_ok = [True]
            variant = "wrong_tool"

        def repair(messages: list[Any], fix: str = fix, variant: str = variant) -> str:
            if variant == "wrong_tool":
                think = (
                    "The result still looks wrong: I misjudged the transformation. Going back "
                    "to the original image."
                )
            else:
                think = f"The tool reported: {T.last_error(messages)}. I will fix my call."
            return T.call(fix, "restore the image", 0, think)

        replies += [repair, T.answer(expected_answer, "Now the image is restored and readable.")]
        expect_ok.append(True)
        expected = [(len([ok for ok in expect_ok if ok]), canonical)]
    image = get_transform(transform).apply(canonical) if transform else canonical
    plan = T.Plan(replies=replies, expect_ok=expect_ok, task_type=task_type)
    metadata = {
        "index": index,
        "task_type": task_type,
        "transform": transform,
        "answer": expected_answer,
        "question": question,
        "kind": sample.kind,
    }
    return SynthTask(
        index,
        task_type,
        transform,
        sample,
        image,
        question,
        expected_answer,
        plan,
        expected,
        metadata,
    )


def verify(task: SynthTask, state: Mapping[str, Any]) -> str | None:
    """Why a finished run is rejected, or ``None`` when it shows what the task demands."""
    from ..images import decode_trajectory_image

    steps = state.get("steps", [])
    if [s["ok"] for s in steps] != task.plan.expect_ok:
        return f"steps ok={[s['ok'] for s in steps]}, expected {task.plan.expect_ok}"
    # The release's rule (the one its reward applies), so that every kept trajectory earns
    # the accuracy reward. Both sides are stripped first: the release compares a truth with
    # surrounding spaces exactly and would reject " OPEN" answered as "OPEN". No normalised
    # rule: the teacher answers with the truth itself, so case never differs.
    answer = (state.get("answer") or "").strip()
    if not answers_match(answer, task.answer.strip()):
        return f"answer {state.get('answer')!r} does not match {task.answer!r}"
    images = state.get("images", [])
    for index, wanted in task.expected:
        if index >= len(images):
            return f"image {index} was not produced"
        got = decode_trajectory_image(images[index])
        if got.size != wanted.size or not np.array_equal(
            np.asarray(got), np.asarray(wanted.convert(got.mode))
        ):
            return f"image {index} does not match the expected result"
    if task.transform in ("low_contrast", "dim"):
        before = np.asarray(decode_trajectory_image(images[0]).convert("L"), dtype=float)
        after = np.asarray(decode_trajectory_image(images[-1]).convert("L"), dtype=float)
        if after.std() <= before.std():
            return "the enhancement did not raise the contrast"
    return None
