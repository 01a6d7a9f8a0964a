"""Score one prediction against an :class:`~langchain_codevision.eval.datasets.EvalItem`.

Every comparison goes through :mod:`langchain_codevision.protocol.answers`; this module only
picks the rule for the item and records which rule decided:

* ``answer`` items: the release's rules (``release:float``, ``release:exact``,
  ``release:choice``, ``release:number``, ``release:fraction``), then the normalised match
  (``normalised``), then an optional judge (``judge``);
* ``ocrbench`` items: OCRBench's rule (``ocrbench``);
* ``choice`` items: the option the prediction names, by letter (``choice:letter``) or by
  text (``choice:text``), compared with the truth by the normalised match;
* ``bbox`` items: the IoU of the first four numbers of the prediction with the item's box
  (``iou``, correct at ``iou >= threshold``).

A missing answer is ``no_answer``; a rule that ran without matching is ``<rule>:miss``.

Example:
    >>> from langchain_codevision.eval.datasets import EvalItem
    >>> from langchain_codevision.eval.scoring import score_item
    >>> score_item(EvalItem(id="1", question="?", answers=["345"]), "12,345").rule
    'release:number'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from langchain_codevision.eval.datasets import EvalItem
from langchain_codevision.protocol.answers import (
    match_answer,
    normalise_answer,
    normalised_match,
    ocrbench_match,
)

__all__ = ["DEFAULT_IOU", "Score", "box_iou", "read_box", "read_choice", "score_item"]

DEFAULT_IOU = 0.5
"""IoU at which a predicted box counts as correct."""
_NUMBER = re.compile(r"[-+]?\d*\.?\d+")
_LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Score:
    """The verdict on one prediction.

    Attributes:
        correct: Whether it counts as right.
        rule: The rule that decided (see the module docs).
        extracted: What the prediction was read as (a token, an option, a box), if any.
        iou: The box IoU for ``bbox`` items.
    """

    correct: bool
    rule: str
    extracted: str | None = None
    iou: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def read_box(text: str) -> list[float] | None:
    """The first four numbers of ``text`` as ``[x0, y0, x1, y1]``, or None."""
    numbers = [float(n) for n in _NUMBER.findall(text)]
    return numbers[:4] if len(numbers) >= 4 else None


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``[x0, y0, x1, y1]`` boxes (0 when either is empty)."""
    ax0, ay0, ax1, ay1 = (min(a[0], a[2]), min(a[1], a[3]), max(a[0], a[2]), max(a[1], a[3]))
    bx0, by0, bx1, by1 = (min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3]))
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def read_choice(prediction: str, choices: Sequence[str]) -> tuple[str | None, str]:
    """The option ``prediction`` names: ``(option, "letter" | "text")`` or ``(None, "none")``.

    A letter alone (``"B"``, ``"(B)"``, ``"B. rotate_180"``) names its option; otherwise the
    one option whose text occurs in the prediction (the longest, when several do).
    """
    folded = normalise_answer(prediction)
    letters = _LETTERS[: len(choices)].lower()
    words = folded.split()
    if words and len(words[0]) == 1 and words[0] in letters:
        return choices[letters.index(words[0])], "letter"
    named = [c for c in choices if ocrbench_match(folded, normalise_answer(c))]
    if named:
        return max(named, key=len), "text"
    return None, "none"


def _score_answer(item: EvalItem, prediction: str, judge: Any) -> Score:
    misses: list[str | None] = []
    for truth in item.answers:
        match = match_answer(prediction, truth)
        if match.matched:
            return Score(True, f"release:{match.rule}", match.extracted)
        misses.append(match.extracted)
    if any(normalised_match(prediction, truth) for truth in item.answers):
        return Score(True, "normalised", normalise_answer(prediction))
    if judge is not None:
        verdict, _reason = judge(
            answer=prediction, ground_truth=item.truth, question=item.question, task=item.qtype
        )
        return Score(verdict >= 0.5, "judge" if verdict >= 0.5 else "judge:miss")
    return Score(False, "release:miss", misses[0] if misses else None)


def score_item(
    item: EvalItem,
    prediction: str | None,
    *,
    judge: Any = None,
    iou_threshold: float = DEFAULT_IOU,
) -> Score:
    """Score ``prediction`` for ``item`` by the item's rule.

    Args:
        item: The item (its ``scoring`` picks the rule).
        prediction: The extracted answer (``None``: there was none).
        judge: Asked when the answer rules fail on ``answer`` items: a callable like
            :class:`~langchain_codevision.rewards.judge.ChatJudge` (cached on disk).
        iou_threshold: IoU at which a box is correct.
    """
    if prediction is None or not str(prediction).strip():
        return Score(False, "no_answer")
    prediction = str(prediction)
    if item.scoring == "ocrbench":
        ok = ocrbench_match(prediction, item.answers, dataset_name=item.dataset)
        return Score(ok, "ocrbench" if ok else "ocrbench:miss")
    if item.scoring == "choice":
        option, how = read_choice(prediction, item.choices or [])
        ok = option is not None and any(normalised_match(option, t) for t in item.answers)
        return Score(ok, f"choice:{how}" if ok else "choice:miss", option)
    if item.scoring == "bbox":
        box = read_box(prediction)
        if box is None or item.bbox is None:
            return Score(False, "iou:miss")
        iou = box_iou(box, item.bbox)
        ok = iou >= iou_threshold
        return Score(ok, "iou" if ok else "iou:miss", str(box), round(iou, 4))
    return _score_answer(item, prediction, judge)
