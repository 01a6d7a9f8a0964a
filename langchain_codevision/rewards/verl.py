"""verl entry points: ``compute_score`` (one rollout) and ``compute_score_batch``.

Point verl's ``custom_reward_function.path`` at this module and ``name`` at
``compute_score``; keyword arguments in ``custom_reward_function.reward_kwargs`` (``alpha``,
``beta``, ``gamma``, ``format_weight``, ``emerge_weight``, ``ops_mode``, ...) reach it. The
score is the full tool-aware total; the breakdown's terms come back as extra keys, which
verl logs. ``necessity`` needs a prompt's whole group: :func:`compute_score_batch` (for
verl's batch reward manager) groups rollouts by ``extra_info["index"]``; the single-rollout
entry leaves it 0, which is what the release's weights (``beta = 0``) give anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .breakdown import RewardBreakdown, RewardWeights
from .score import Judge, score_group, score_rollout

__all__ = ["compute_score", "compute_score_batch", "result_dict"]

_WEIGHT_KEYS = {
    "alpha": "alpha",
    "beta": "beta",
    "gamma": "gamma",
    "format_weight": "format",
    "emerge_weight": "emerge",
    "exact_bonus": "exact",
    "repeat_weight": "repeat",
    "error_weight": "error",
}


def _weights(options: Mapping[str, Any]) -> RewardWeights:
    given = {field: float(options[key]) for key, field in _WEIGHT_KEYS.items() if key in options}
    return RewardWeights(**given)


def _record(extra_info: Any) -> dict[str, Any]:
    info = dict(extra_info) if isinstance(extra_info, Mapping) else {}
    bbox = info.get("bbox", info.get("bbox_2d"))
    size = info.get("image_size")
    if size is None and "width" in info and "height" in info:
        size = (info["width"], info["height"])
    return {
        "transform": info.get("transform"),
        "bbox": bbox,
        "image_size": size,
        "question": str(info.get("question") or ""),
    }


def result_dict(breakdown: RewardBreakdown) -> dict[str, Any]:
    """What verl receives: ``score`` plus each term and a few flat extras."""
    return {
        "score": breakdown.total,
        **breakdown.terms(),
        "correct": float(breakdown.correct),
        "calls": breakdown.calls,
        "ops_used": ",".join(breakdown.ops_used),
        "answer": breakdown.answer or "",
    }


def compute_score(
    data_source: Any,
    solution_str: Any,
    ground_truth: Any,
    extra_info: Any = None,
    *,
    judge: Judge | None = None,
    ops_mode: str = "release",
    **options: Any,
) -> dict[str, Any]:
    """Score one verl rollout; ``solution_str`` is the decoded response after the prompt."""
    record = _record(extra_info)
    breakdown = score_rollout(
        solution_str,
        ground_truth=ground_truth,
        transform=record["transform"],
        bbox=record["bbox"],
        image_size=record["image_size"],
        weights=_weights(options),
        judge=judge,
        question=record["question"],
        task=str(data_source or "general"),
        ops_mode="ast" if ops_mode == "ast" else "release",
    )
    return result_dict(breakdown)


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[Any],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Any] | None = None,
    *,
    judge: Judge | None = None,
    ops_mode: str = "release",
    **options: Any,
) -> list[dict[str, Any]]:
    """Score a batch, grouping the rollouts of one prompt (same ``extra_info["index"]``)."""
    infos = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    groups: dict[Any, list[int]] = {}
    for position, info in enumerate(infos):
        key = info.get("index", position) if isinstance(info, Mapping) else position
        groups.setdefault((str(data_sources[position]), str(key)), []).append(position)
    results: list[dict[str, Any]] = [{} for _ in solution_strs]
    weights = _weights(options)
    for members in groups.values():
        first = members[0]
        record = _record(infos[first])
        breakdowns = score_group(
            [solution_strs[i] for i in members],
            ground_truth=ground_truths[first],
            transform=record["transform"],
            bbox=record["bbox"],
            image_size=record["image_size"],
            weights=weights,
            judge=judge,
            question=record["question"],
            task=str(data_sources[first] or "general"),
            ops_mode="ast" if ops_mode == "ast" else "release",
        )
        for position, breakdown in zip(members, breakdowns, strict=True):
            results[position] = result_dict(breakdown)
    return results
