r"""Score rollouts: :func:`score_rollout` for one, :func:`score_group` for a prompt's group.

Example:
    >>> text = ('<think>upside down</think><tool_call>\n{"name": "code_image_tool", '
    ...         '"arguments": {"code": "result = image.rotate(180)", "description": "rotate", '
    ...         '"image_index": 0}}\n</tool_call>user\n<tool_response>\nHere is the processed '
    ...         'image.\n</tool_response>\nassistant\n<think>ok</think><answer>42</answer>')
    >>> b = score_rollout(text, ground_truth="42", transform=["rotate_180"])
    >>> b.total, b.ops_used
    (2.2, ('rotate_180',))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..data.transforms import expected_fixes
from ..protocol.answers import extract_answer
from .breakdown import GroupStats, RewardBreakdown, RewardWeights
from .ops import OpsMode, parse_ops
from .response import CallRule, Rollout, decode_response
from .terms import (
    Term,
    accuracy_term,
    emerge_term,
    error_term,
    exact_term,
    format_term,
    group_stats,
    mandatory_term,
    necessity_term,
    repeat_term,
    spurious_term,
    usage_term,
)

__all__ = ["Judge", "score_group", "score_rollout"]

Judge = Callable[..., Any]
"""``judge(answer=..., ground_truth=..., question=..., task=...) -> float | (float, reason)``;
:class:`~langchain_codevision.rewards.judge.ChatJudge` is one."""


@dataclass(frozen=True)
class _Outcome:
    rollout: Rollout
    answer: str | None
    accuracy: Term
    correct: bool
    used_tool: bool


def _expected(transform: Any) -> tuple[tuple[str, ...], str | None]:
    try:
        return tuple(expected_fixes(transform)), None
    except (TypeError, ValueError) as exc:
        return (), f"the transform could not be read ({exc}): no fix expected"


def _bbox(bbox: Any) -> tuple[tuple[float, ...] | None, str | None]:
    if isinstance(bbox, str):  # the JSON text parquet rows may hold, read as the release does
        try:
            bbox = json.loads(bbox)
        except ValueError:
            return None, f"the bbox text {bbox!r:.60} is no JSON: treated as none"
    if bbox is None:
        return None, None
    try:
        values = tuple(float(v) for v in (bbox.tolist() if hasattr(bbox, "tolist") else bbox))
    except (TypeError, ValueError):
        return None, f"the bbox {bbox!r:.60} is unreadable: treated as none"
    if len(values) != 4:
        return None, f"the bbox has {len(values)} values, not 4: treated as none"
    return values, None


def _size(image_size: Any) -> tuple[int, int] | None:
    try:
        width, height = (int(v) for v in image_size)
    except (TypeError, ValueError):
        return None
    return (width, height) if width > 0 and height > 0 else None


def _judged(judge: Judge, answer: str, truth: Any, question: str, task: str) -> Term:
    try:
        result = judge(answer=answer, ground_truth=str(truth), question=question, task=task)
    except Exception as exc:  # the judge is outside code: it degrades to 0
        return Term(0.0, f"the rules failed and the judge raised {type(exc).__name__}: {exc}")
    score, why = (result if isinstance(result, tuple) else (result, ""))[:2]
    try:
        value = 1.0 if float(score) > 0.5 else 0.0
    except (TypeError, ValueError):
        return Term(0.0, f"the rules failed and the judge gave no score ({score!r:.40})")
    return Term(
        value, f"the rules failed; the judge says {int(value)}{': ' + str(why) if why else ''}"
    )


def _outcome(
    response: Any,
    ground_truth: Any,
    judge: Judge | None,
    question: str,
    task: str,
    call_rule: CallRule,
) -> _Outcome:
    rollout = (
        response
        if isinstance(response, Rollout)
        else decode_response(response, call_rule=call_rule)
    )
    try:
        answer = extract_answer(rollout.text)
    except TypeError:
        answer = None
    accuracy = accuracy_term(answer, ground_truth)
    if accuracy.value == 0.0 and answer is not None and judge is not None:
        accuracy = _judged(judge, answer, ground_truth, question, task)
    return _Outcome(rollout, answer, accuracy, accuracy.value > 0.5, bool(rollout.calls))


def score_rollout(
    response: Any,
    *,
    ground_truth: Any,
    transform: Any,
    bbox: Any = None,
    image_size: Any = None,
    weights: RewardWeights | None = None,
    judge: Judge | None = None,
    group: GroupStats | None = None,
    question: str = "",
    task: str = "general",
    ops_mode: OpsMode = "release",
    call_rule: CallRule = "release",
) -> RewardBreakdown:
    """The reward of one rollout, term by term (never raises on malformed input).

    Args:
        response: A verl response string, a graph output state, messages, a trajectory or
            an exported row (see :mod:`.response`), or a decoded ``Rollout``.
        ground_truth: The record's answer.
        transform: The record's transform(s), in list or string form.
        bbox: Where the answer is, ``[x1, y1, x2, y2]`` in the original image's pixels.
        image_size: ``(width, height)`` of the input image (used by ``ops_mode="ast"``).
        weights: The weights (default: the release's training weights).
        judge: Asked when the answer rules fail (see :data:`Judge`).
        group: The prompt's :class:`GroupStats` for the necessity term.
        question: The question (for the judge).
        task: The data source or task type (selects the judge's instructions).
        ops_mode: ``"release"`` (default, the release's heuristic) or ``"ast"``.
        call_rule: ``"release"`` (default) or ``"tolerant"`` (see :mod:`.response`).
    """
    outcome = _outcome(response, ground_truth, judge, question, task, call_rule)
    return _compose(
        outcome, transform, bbox, image_size, weights or RewardWeights(), group, ops_mode
    )


def _compose(
    outcome: _Outcome,
    transform: Any,
    bbox: Any,
    image_size: Any,
    weights: RewardWeights,
    group: GroupStats | None,
    ops_mode: OpsMode,
) -> RewardBreakdown:
    rollout = outcome.rollout
    expected, transform_problem = _expected(transform)
    box, bbox_problem = _bbox(bbox)
    size = _size(image_size)
    used: list[str] = []
    boxes: list[tuple[float, float, float, float]] = []
    call_notes: list[str] = []
    for number, call in enumerate(rollout.calls, 1):
        if ops_mode == "ast" and call.error:
            call_notes.append(f"call {number} failed: its ops do not count (ast mode)")
            continue
        ops = parse_ops(call.code, call.description, mode=ops_mode, image_size=size)
        used.extend(ops.ops)
        boxes.extend(ops.boxes)
        call_notes.extend(f"call {number}: {note}" for note in ops.notes)
    ops_used = tuple(dict.fromkeys(used))
    k = len(rollout.calls)

    accuracy = outcome.accuracy
    mandatory = mandatory_term(expected, ops_used, box, boxes)
    necessity = necessity_term(outcome.correct, outcome.used_tool, group)
    if "crop" in expected and mandatory.value < weights.crop_gate:
        gated = accuracy.value * mandatory.value
        accuracy = Term(
            gated,
            f"{accuracy.reason}; crop expected but mandatory "
            f"{mandatory.value:.3f} < {weights.crop_gate}: multiplied by it",
        )
        if necessity.value:
            necessity = Term(0.0, "crop gate: necessity is 0")
    fmt = format_term(rollout.text)
    usage = usage_term(k, expected, weights.usage_free_calls)
    spurious = spurious_term(expected, ops_used)
    exact = exact_term(expected, ops_used, weights.exact)
    emerge = emerge_term(outcome.correct, ops_used, weights.emerge)
    repeat = repeat_term([call.code for call in rollout.calls])
    error = error_term([call.error for call in rollout.calls])
    total = (
        accuracy.value
        + weights.format * fmt.value
        + weights.alpha * mandatory.value
        + weights.beta * necessity.value
        + exact.value
        + emerge.value
        - weights.gamma * (usage.value + spurious.value)
        - weights.repeat * repeat.value
        - weights.error * error.value
    )
    terms = {
        "accuracy": accuracy,
        "format": fmt,
        "mandatory": mandatory,
        "necessity": necessity,
        "usage_penalty": usage,
        "spurious_penalty": spurious,
        "exact": exact,
        "emerge": emerge,
        "repeat_penalty": repeat,
        "error_penalty": error,
    }
    reasons = {name: term.reason for name, term in terms.items()}
    notes = [n for t in rollout.turns for n in t.notes] + call_notes
    notes += [p for p in (transform_problem, bbox_problem, *rollout.problems) if p]
    reasons["calls"] = f"{k} calls ran" + ("; " + "; ".join(dict.fromkeys(notes)) if notes else "")
    return RewardBreakdown(
        total=round(total, 10),
        **{name: term.value for name, term in terms.items()},
        ops_used=ops_used,
        crop_boxes=tuple(boxes),
        expected=expected,
        calls=k,
        correct=outcome.correct,
        used_tool=outcome.used_tool,
        answer=outcome.answer,
        reasons=reasons,
        weights=weights,
        ops_mode=ops_mode,
    )


def score_group(
    responses: Sequence[Any],
    *,
    ground_truth: Any,
    transform: Any,
    bbox: Any = None,
    image_size: Any = None,
    weights: RewardWeights | None = None,
    judge: Judge | None = None,
    question: str = "",
    task: str = "general",
    ops_mode: OpsMode = "release",
    call_rule: CallRule = "release",
) -> list[RewardBreakdown]:
    """Score the rollouts of one prompt together (the group decides ``necessity``).

    Takes the same arguments as :func:`score_rollout` (``responses`` instead of
    ``response``, no ``group``) and returns one breakdown per rollout, in order.
    """
    outcomes = [_outcome(r, ground_truth, judge, question, task, call_rule) for r in responses]
    stats = group_stats((o.used_tool, o.correct) for o in outcomes)
    chosen = weights or RewardWeights()
    return [_compose(o, transform, bbox, image_size, chosen, stats, ops_mode) for o in outcomes]
