"""The CodeVision reward as a TRL reward function: group-aware, every term logged.

TRL calls the reward with the batch's prompts, completions (messages), completion token ids,
the dataset's columns and the rollouts' environments. Each completion is decoded the way
verl decodes a response (``skip_special_tokens=True``: assistant turns and tool replies),
consecutive rollouts of one prompt are scored together with
``langchain_codevision.rewards.score_group`` (the group decides ``R_necessity``), each
rollout's stop reason is read (``answer``, ``no_tool_call``, ``turn_limit``, ``length``),
the terms are logged, and every rollout's kernel goes back to the pool.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_codevision.rewards.breakdown import TERMS

__all__ = ["BREAKDOWN_TERMS", "CodeVisionReward"]

BREAKDOWN_TERMS = ("total", *TERMS)
"""The reward terms logged per step (means) and per rollout (``rewards.jsonl``)."""


def _score_api() -> tuple[Any, Any] | None:
    try:
        from langchain_codevision.rewards import score_group, score_rollout
    except ImportError:
        return None
    return score_group, score_rollout


def _as_dict(breakdown: Any) -> dict[str, Any]:
    if isinstance(breakdown, dict):
        return dict(breakdown)
    if hasattr(breakdown, "to_dict"):
        return breakdown.to_dict()
    import dataclasses

    if dataclasses.is_dataclass(breakdown):
        return dataclasses.asdict(breakdown)
    names = (*BREAKDOWN_TERMS, "ops_used", "crop_boxes", "reasons")
    return {name: getattr(breakdown, name, None) for name in names}


def _weights(weights: Any) -> Any:
    """A ``RewardWeights`` from a mapping of overrides (objects pass through)."""
    if weights is None or not isinstance(weights, dict):
        return weights
    from langchain_codevision.rewards import RewardWeights

    return RewardWeights(**weights)


def _stand_in(response: str, truth: str) -> dict[str, Any]:
    from langchain_codevision.protocol import answers_match, extract_answer

    accuracy = float(answers_match(extract_answer(response), truth))
    return {
        "total": accuracy,
        "accuracy": accuracy,
        "reasons": ["langchain_codevision.rewards is not installed: accuracy only"],
    }


def _stop_reason(
    messages: Sequence[dict[str, Any]], env: Any, length: int, max_length: int | None
) -> str:
    """``turn_limit``, ``length`` (token budget), ``answer`` or ``no_tool_call``."""
    last = messages[-1] if messages else {}
    if last.get("role") == "assistant" and last.get("tool_calls"):
        return "turn_limit" if env is not None and env.at_turn_limit else "length"
    if max_length is not None and length >= max_length:
        return "length"
    text = _text(last)
    return "answer" if "<answer>" in text else "no_tool_call"


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return str(content or "")


@dataclass
class CodeVisionReward:
    """The CodeVision reward as a TRL reward function, group-aware, with every term logged.

    Args:
        tokenizer: Decodes each completion (assistant turns and tool replies) the way verl
            does (``skip_special_tokens=True``): that string is what the reward reads.
        num_generations: Rollouts per prompt; each consecutive block is one group.
        weights: Reward weights (``None``: the release's).
        judge: Optional LangChain chat model judging answers the rules cannot decide.
        log_path: JSONL file each rollout's breakdown is appended to.
        keep_responses: Also keep each decoded response in :attr:`history`.
        max_completion_length: The token budget (a rollout that used it all stopped for
            ``"length"``).

    Attributes:
        history: Every scored rollout: ``step``, ``stop_reason``, ``tool_calls``, the
            breakdown's terms, ``ops_used`` and ``reasons``.
        stand_in: Whether ``langchain_codevision.rewards`` was missing (accuracy only).
    """

    tokenizer: Any
    num_generations: int
    weights: Any = None
    judge: Any = None
    log_path: str | Path | None = None
    keep_responses: bool = False
    max_completion_length: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    stand_in: bool = False

    def __post_init__(self) -> None:
        self.__name__ = "codevision"  # TRL names the reward's log columns after it

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Any],
        completion_ids: list[list[int]],
        **columns: Any,
    ) -> list[float]:
        """Score one batch (TRL passes the dataset columns and the environments)."""
        environments = columns.get("environments") or [None] * len(completions)
        responses = [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in completion_ids]
        try:
            scored = self._score(responses, columns)
        finally:
            for env in environments:
                if env is not None:
                    env._release()
        state = columns.get("trainer_state")
        step = getattr(state, "global_step", None)
        rows = []
        for position, (breakdown, messages, env, ids) in enumerate(
            zip(scored, completions, environments, completion_ids, strict=True)
        ):
            reason = _stop_reason(messages, env, len(ids), self.max_completion_length)
            row = {
                "step": step,
                "position": position,
                "index": _column(columns, "index", position),
                "stop_reason": reason,
                "tool_calls": env.calls if env is not None else None,
                **{term: breakdown.get(term) for term in BREAKDOWN_TERMS},
                "ops_used": breakdown.get("ops_used"),
                "reasons": breakdown.get("reasons"),
            }
            rows.append(row)
        self._log(rows, columns)
        if self.keep_responses:
            for row, response in zip(self.history[-len(rows) :], responses, strict=True):
                row["response"] = response
        return [float(row["total"]) for row in rows]

    def _score(self, responses: list[str], columns: dict[str, Any]) -> list[dict[str, Any]]:
        api = _score_api()
        self.stand_in = api is None
        out: list[dict[str, Any]] = []
        for start, stop in _groups(columns, len(responses), max(self.num_generations, 1)):
            group = responses[start:stop]
            truth = _column(columns, "ground_truth", start)
            if api is None:
                out.extend(_stand_in(response, truth) for response in group)
                continue
            score_group, _ = api
            extra = {}
            if "question" in inspect.signature(score_group).parameters:
                extra["question"] = _column(columns, "question", start) or ""
            breakdowns = score_group(
                group,
                ground_truth=truth,
                transform=_column(columns, "transform", start),
                bbox=_column(columns, "bbox", start),
                image_size=_column(columns, "image_size", start),
                weights=_weights(self.weights),
                judge=self.judge,
                **extra,
            )
            out.extend(_as_dict(b) for b in breakdowns)
        return out

    def _log(self, rows: list[dict[str, Any]], columns: dict[str, Any]) -> None:
        self.history.extend(rows)
        log_metric, log_extra = columns.get("log_metric"), columns.get("log_extra")
        if log_metric is not None:
            for term in BREAKDOWN_TERMS:
                values = [r[term] for r in rows if isinstance(r[term], (int, float))]
                if values:
                    log_metric(f"codevision/{term}", sum(values) / len(values))
            limit = sum(r["stop_reason"] == "turn_limit" for r in rows) / max(len(rows), 1)
            log_metric("codevision/turn_limit_rate", limit)
        if log_extra is not None:
            log_extra("stop_reason", [r["stop_reason"] for r in rows])
            log_extra("accuracy", [r["accuracy"] for r in rows])
        if self.log_path is not None:
            path = Path(self.log_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row, default=_jsonable) + "\n")


def _groups(columns: dict[str, Any], count: int, size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each group: consecutive rollouts of one prompt, at most ``size``.

    TRL repeats each prompt ``num_generations`` times in a row, but a process may hold only
    part of a group (when its share of the batch is no multiple of the group size); the
    prompt's identity (``index``, ``question``, ``ground_truth``) decides.
    """
    keys = [
        tuple(_column(columns, name, i) for name in ("index", "question", "ground_truth"))
        for i in range(count)
    ]
    groups: list[tuple[int, int]] = []
    start = 0
    for i in range(1, count + 1):
        if i == count or keys[i] != keys[start] or i - start == size:
            groups.append((start, i))
            start = i
    return groups


def _column(columns: dict[str, Any], name: str, position: int) -> Any:
    values = columns.get(name)
    return values[position] if values is not None else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)
