"""Each reward term as a pure function returning its value and the reason for it.

The rules are the release's (``agent_loop.py`` tool reward, ``uvtr`` format reward,
``reward.py`` accuracy), re-implemented here; see the package docstring.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol.answers import match_answer, strip_tool_responses
from .breakdown import GroupStats
from .ops import CORE_OPS, ORIENTATION_OPS

__all__ = [
    "Term",
    "accuracy_term",
    "best_iou",
    "box_iou",
    "emerge_term",
    "error_term",
    "exact_term",
    "format_term",
    "group_stats",
    "mandatory_term",
    "necessity_term",
    "repeat_term",
    "spurious_term",
    "usage_term",
]

Box = Sequence[float]


@dataclass(frozen=True)
class Term:
    """A term's value and why it took it."""

    value: float
    reason: str


# -- outcome ------------------------------------------------------------------------------------
def accuracy_term(answer: str | None, ground_truth: Any) -> Term:
    """1 when the release's rule matches ``answer`` with ``ground_truth``, else 0."""
    if answer is None:
        return Term(0.0, "no answer could be extracted")
    if not isinstance(ground_truth, str):
        return Term(0.0, f"the ground truth is not a string ({type(ground_truth).__name__})")
    match = match_answer(answer, ground_truth)
    if match.matched:
        read = f", read as {match.extracted!r}" if match.extracted is not None else ""
        return Term(
            1.0, f"answer {answer[:80]!r} matches {ground_truth!r} by the {match.rule} rule{read}"
        )
    read = f" (read as {match.extracted!r})" if match.extracted is not None else ""
    return Term(0.0, f"answer {answer[:80]!r}{read} does not match {ground_truth!r}")


_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_ANSWER_BLOCK = re.compile(r"<answer>.*?</answer>", re.DOTALL)
_ANSWER_AT_END = re.compile(r"<answer>.*?</answer>\s*$", re.DOTALL)
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_THINK_THEN_ANSWER = re.compile(r"<think>.*?<answer>", re.DOTALL)


def format_term(text: Any) -> Term:
    """1 when the whole response has the release's format, else 0 (with the rule broken).

    Tool responses removed and the text stripped, it starts with ``<think>``, has as many
    ``<think>`` as ``</think>`` (at least one), exactly one ``<answer>...</answer>``, which
    ends the text, and no answer opened inside a think block.
    """
    if not isinstance(text, str):
        return Term(0.0, "the response is not text")
    body = strip_tool_responses(text).strip()
    if not body.startswith(_THINK_OPEN):
        return Term(0.0, "the response does not start with <think>")
    opened, closed = body.count(_THINK_OPEN), body.count(_THINK_CLOSE)
    if opened != closed:
        return Term(0.0, f"think tags do not balance ({opened} <think>, {closed} </think>)")
    answers = list(_ANSWER_BLOCK.finditer(body))
    if len(answers) != 1:
        return Term(0.0, f"{len(answers)} <answer>...</answer> blocks, not exactly one")
    if not _ANSWER_AT_END.search(body):
        return Term(0.0, "the answer does not end the response")
    start, end = answers[0].span()
    for think in _THINK_BLOCK.finditer(body):
        inside = think.start() < start < think.end() or think.start() < end < think.end()
        if inside and _THINK_THEN_ANSWER.search(body, think.start(), think.end()):
            return Term(0.0, "the answer is inside a think block")
    return Term(1.0, "starts with <think>, tags balance, one final answer")


# -- process ------------------------------------------------------------------------------------
def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes (the release's formula)."""
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    area_a = max(0.0, ax2 - ax1) * max(0.0, ay2 - ay1)
    area_b = max(0.0, bx2 - bx1) * max(0.0, by2 - by1)
    union = area_a + area_b - inter
    return inter / (union if union > 0 else 1e-6)


def best_iou(bbox: Box | None, boxes: Iterable[Box]) -> float:
    """The best IoU of any box with ``bbox`` (0 for no bbox, no boxes or unreadable ones)."""
    if bbox is None:
        return 0.0
    best = 0.0
    try:
        for box in boxes:
            if len(box) == 4:
                value = box_iou(bbox, box)
                if math.isfinite(value):
                    best = max(best, value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return best


def mandatory_term(
    expected: Iterable[str], used: Iterable[str], bbox: Box | None, boxes: Iterable[Box]
) -> Term:
    """Share of expected non-crop fixes used, plus the best crop IoU's share; at most 1."""
    expected_set, used_set = set(expected), set(used)
    if not expected_set:
        return Term(0.0, "no fix is expected")
    share = 1.0 / len(expected_set)
    hit = sorted((expected_set - {"crop"}) & used_set)
    value = len(hit) * share
    parts = [f"{len(hit)} of {len(expected_set)} expected fixes used ({', '.join(hit) or 'none'})"]
    if "crop" in expected_set:
        boxes = list(boxes)
        if "crop" not in used_set:
            parts.append("no crop used")
        elif bbox is None:
            parts.append("crop used but the record has no bbox (IoU counts 0)")
        else:
            iou = best_iou(bbox, boxes)
            value += iou * share
            parts.append(f"best crop IoU {iou:.3f} over {len(boxes)} boxes")
    value = min(value, 1.0)
    return Term(value, "; ".join(parts))


def usage_term(calls: int, expected: Sequence[str], free_calls: int = 2) -> Term:
    """``max(0, k - max(free_calls, |expected|))``."""
    threshold = max(free_calls, len(set(expected)))
    value = float(max(0, calls - threshold))
    return Term(value, f"{calls} calls, {threshold} free")


def spurious_term(expected: Iterable[str], used: Iterable[str]) -> Term:
    """Distinct orientation ops used when no orientation fix was expected."""
    if set(expected) & ORIENTATION_OPS:
        return Term(0.0, "an orientation fix is expected: nothing is spurious")
    spurious = sorted(set(used) & ORIENTATION_OPS)
    if not spurious:
        return Term(0.0, "no orientation op used")
    return Term(
        float(len(spurious)), f"orientation ops used though none expected: {', '.join(spurious)}"
    )


def exact_term(expected: Iterable[str], used: Iterable[str], bonus: float = 0.1) -> Term:
    """``bonus`` when the core ops used (orientation + crop) equal the expected core ops."""
    want, got = set(expected) & CORE_OPS, set(used) & CORE_OPS
    if not want:
        return Term(0.0, "no core op is expected")
    if want == got:
        return Term(bonus, f"core ops used equal the expected ({', '.join(sorted(want))})")
    return Term(0.0, f"core ops used {sorted(got)} differ from the expected {sorted(want)}")


def emerge_term(correct: bool, used: Iterable[str], weight: float = 0.2) -> Term:
    """``weight`` when the answer is correct and a non-core op was used."""
    extra = sorted(set(used) - CORE_OPS)
    if not extra:
        return Term(0.0, "no op beyond orientation and crop")
    if not correct:
        return Term(0.0, f"non-core ops {', '.join(extra)} used but the answer is wrong")
    if weight <= 0:
        return Term(0.0, "the emergent bonus is off")
    return Term(weight, f"correct with non-core ops: {', '.join(extra)}")


# -- group --------------------------------------------------------------------------------------
def group_stats(outcomes: Iterable[tuple[bool, bool]]) -> GroupStats:
    """The group statistics of ``(used_tool, correct)`` per rollout of one prompt."""
    items = list(outcomes)
    with_tool = [correct for used, correct in items if used]
    without = [correct for used, correct in items if not used]
    acc_tool = sum(with_tool) / len(with_tool) if with_tool else 0.0
    acc_without = sum(without) / len(without) if without else 0.0
    value = max(0.0, acc_tool - acc_without) if without else 0.0
    return GroupStats(value, sum(without), len(without), sum(with_tool), len(with_tool))


def necessity_term(correct: bool, used_tool: bool, group: GroupStats | None) -> Term:
    """The group's necessity value, or 0 (with why).

    Only correct rollouts that used tools receive it, and only when at most one rollout of
    the group was correct without tools.
    """
    if group is None:
        return Term(0.0, "no group given")
    if not (correct and used_tool):
        return Term(0.0, "only correct rollouts that used tools receive it")
    if group.correct_without_tool >= 2:
        return Term(0.0, f"{group.correct_without_tool} rollouts were correct without tools")
    return Term(
        group.value,
        f"tools {group.correct_with_tool}/{group.total_with_tool} vs "
        f"no tools {group.correct_without_tool}/{group.total_without_tool}",
    )


# -- opt-in -------------------------------------------------------------------------------------
def repeat_term(codes: Sequence[str]) -> Term:
    """Calls whose code repeats an earlier call's exactly (whitespace-trimmed)."""
    seen: set[str] = set()
    repeats = 0
    for code in codes:
        key = code.strip()
        repeats += key in seen
        seen.add(key)
    return Term(float(repeats), f"{repeats} calls repeat earlier code")


def error_term(errors: Sequence[bool]) -> Term:
    """1 when the last call failed (an error never repaired by a later success)."""
    if errors and errors[-1]:
        return Term(1.0, "the last call failed and nothing later succeeded")
    return Term(0.0, "no unrepaired error" if errors else "no calls")
