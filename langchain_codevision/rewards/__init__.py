"""Dense tool-aware rewards for CodeVision rollouts, the release's rules by default.

One rollout (a verl response string, a graph output state or an exported trajectory) gets a
:class:`RewardBreakdown`: every term with the reason it took its value.

* ``accuracy``: the release's answer rules (``protocol.answers``); an optional judge when
  they fail (:class:`ChatJudge`).
* ``format``: starts with ``<think>``, think tags balance, one ``<answer>`` that ends it.
* ``mandatory``: share of the expected fixes used (a crop by its best IoU with the bbox);
  ``necessity`` (group): tools helped this prompt; ``usage_penalty``: calls beyond
  ``max(2, |expected|)``; ``spurious_penalty``: orientation ops nobody asked for;
  ``exact``: the core ops used are exactly the expected ones; ``emerge``: correct with
  another op too. A crop record whose mandatory is below 0.1 has its accuracy multiplied by
  it.
* Ops are read by the release's heuristic (``ops_mode="release"``, default, blind spots
  kept) or from the syntax tree (``ops_mode="ast"``).

Example:
    >>> from langchain_codevision.rewards import RewardWeights, score_rollout
    >>> b = score_rollout("<think>fine</think><answer>7</answer>", ground_truth="7",
    ...                   transform=["rotate_90"])
    >>> b.accuracy, b.format, b.mandatory, b.total
    (1.0, 1.0, 0.0, 1.1)
"""

from __future__ import annotations

from .breakdown import TERMS, GroupStats, RewardBreakdown, RewardWeights
from .judge import ChatJudge, parse_verdict, task_type
from .ops import CORE_OPS, ORIENTATION_OPS, CallOps, OpsMode, parse_ops
from .response import CallRule, Rollout, RolloutTurn, ToolCall, decode_response, render_response
from .score import Judge, score_group, score_rollout
from .terms import Term, best_iou, box_iou, group_stats
from .verl import compute_score, compute_score_batch

__all__ = [
    "CORE_OPS",
    "ORIENTATION_OPS",
    "TERMS",
    "CallOps",
    "CallRule",
    "ChatJudge",
    "GroupStats",
    "Judge",
    "OpsMode",
    "RewardBreakdown",
    "RewardWeights",
    "Rollout",
    "RolloutTurn",
    "Term",
    "ToolCall",
    "best_iou",
    "box_iou",
    "compute_score",
    "compute_score_batch",
    "decode_response",
    "group_stats",
    "parse_ops",
    "parse_verdict",
    "render_response",
    "score_group",
    "score_rollout",
    "task_type",
]
