"""The reward's weights, its per-rollout breakdown and the group statistics.

Example:
    >>> RewardWeights().gamma, RewardWeights(gamma=0.0).gamma  # the "no penalty" ablation
    (0.5, 0.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any

__all__ = ["TERMS", "GroupStats", "RewardBreakdown", "RewardWeights"]

TERMS: tuple[str, ...] = (
    "accuracy",
    "format",
    "mandatory",
    "necessity",
    "usage_penalty",
    "spurious_penalty",
    "exact",
    "emerge",
    "repeat_penalty",
    "error_penalty",
)
"""Every term of a :class:`RewardBreakdown`, in the order of the total."""


@dataclass(frozen=True)
class RewardWeights:
    """How the terms add up; the defaults are the release's training weights.

    ``total = acc + fmt·format + alpha·mandatory + beta·necessity + exact + emerge
    - gamma·(usage + spurious) - repeat·repeats - error·unrepaired``.

    Attributes:
        alpha: Weight of the mandatory-tools term.
        beta: Weight of the group necessity term.
        gamma: Weight of the usage and spurious-op penalties (0 is the "no penalty" ablation).
        format: Weight of the format term.
        emerge: The bonus for a correct answer that also used a non-core op.
        exact: The bonus when the core ops used equal the expected ones.
        crop_gate: When a crop is expected and mandatory is below this, accuracy is
            multiplied by mandatory and necessity is 0.
        usage_free_calls: Calls that cost nothing (the penalty is
            ``max(0, k - max(usage_free_calls, |expected|))``).
        repeat: Opt-in (0 = off): penalty per call whose code repeats an earlier call's.
        error: Opt-in (0 = off): penalty when the last call failed and none succeeded after.
    """

    alpha: float = 1.0
    beta: float = 0.0
    gamma: float = 0.5
    format: float = 0.1
    emerge: float = 0.2
    exact: float = 0.1
    crop_gate: float = 0.1
    usage_free_calls: int = 2
    repeat: float = 0.0
    error: float = 0.0


@dataclass(frozen=True)
class GroupStats:
    """What the rollouts of one prompt say about needing tools (for ``necessity``).

    Attributes:
        value: ``max(0, acc_with_tools - acc_without)`` (0 when no rollout went without
            tools), as the release computes it.
        correct_without_tool: Correct rollouts that used no tool.
        total_without_tool: Rollouts that used no tool.
        correct_with_tool: Correct rollouts that used a tool.
        total_with_tool: Rollouts that used a tool.
    """

    value: float
    correct_without_tool: int
    total_without_tool: int
    correct_with_tool: int
    total_with_tool: int


@dataclass(frozen=True)
class RewardBreakdown:
    """One rollout's reward, term by term, with the reason each term took its value.

    Attributes:
        total: The weighted sum (see :class:`RewardWeights`).
        accuracy: 1/0 (or fractional after the crop gate, or a judge's score).
        format: 1 or 0.
        mandatory: Share of the expected fixes used (crop by its best IoU), at most 1.
        necessity: The group necessity term (0 without a group).
        usage_penalty: ``max(0, k - max(2, |expected|))``.
        spurious_penalty: Distinct orientation ops used when none was expected.
        exact: The exact-match bonus (0 or ``weights.exact``).
        emerge: The emergent-tool bonus (0 or ``weights.emerge``).
        repeat_penalty: Calls repeating an earlier call's code (opt-in weight).
        error_penalty: 1 when the rollout ends on failed calls (opt-in weight).
        ops_used: Every op used, in order.
        crop_boxes: Every crop box read, in order.
        expected: The expected fixes of the record.
        calls: ``k``, the calls that ran.
        correct: Whether the answer was judged correct (before the crop gate).
        used_tool: Whether any call ran.
        answer: The extracted answer.
        reasons: One sentence per term (keys: :data:`TERMS`, plus ``"calls"``).
        weights: The weights used.
        ops_mode: ``"release"`` or ``"ast"``.
    """

    total: float
    accuracy: float
    format: float
    mandatory: float
    necessity: float
    usage_penalty: float
    spurious_penalty: float
    exact: float
    emerge: float
    repeat_penalty: float = 0.0
    error_penalty: float = 0.0
    ops_used: tuple[str, ...] = ()
    crop_boxes: tuple[tuple[float, float, float, float], ...] = ()
    expected: tuple[str, ...] = ()
    calls: int = 0
    correct: bool = False
    used_tool: bool = False
    answer: str | None = None
    reasons: Mapping[str, str] = field(default_factory=dict)
    weights: RewardWeights = field(default_factory=RewardWeights)
    ops_mode: str = "release"

    def __post_init__(self) -> None:
        object.__setattr__(self, "reasons", MappingProxyType(dict(self.reasons)))

    def terms(self) -> dict[str, float]:
        """The terms by name (:data:`TERMS`)."""
        return {name: getattr(self, name) for name in TERMS}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything."""
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["ops_used"] = list(self.ops_used)
        data["crop_boxes"] = [list(box) for box in self.crop_boxes]
        data["expected"] = list(self.expected)
        data["reasons"] = dict(self.reasons)
        data["weights"] = asdict(self.weights)
        return data
