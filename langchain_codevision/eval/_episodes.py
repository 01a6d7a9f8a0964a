"""One item in one arm: run it (tool graph or no-tool baseline) and build its result row."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from langchain_codevision.eval.datasets import SOURCE, EvalItem
from langchain_codevision.eval.scoring import score_item
from langchain_codevision.images import (
    PixelBudget,
    encode_image,
    to_image_block,
)
from langchain_codevision.loop.messages import opening_messages
from langchain_codevision.protocol import ProtocolProfile
from langchain_codevision.protocol.answers import extract_answer
from langchain_codevision.rewards import score_rollout
from langchain_codevision.rewards.ops import CORE_OPS

__all__ = ["ARMS", "NO_TOOL_SYSTEM_PROMPT", "Arm", "row_key", "run_no_tool", "tool_row"]

ARMS = ("tool", "no_tool")
"""The two arms: the code-tool graph and the same model without the tool."""
Arm = str
NO_TOOL_SYSTEM_PROMPT = (
    "You are a careful visual reasoner. Look at the image and answer the question. First "
    "think inside <think> </think>, then give the final answer, short and exact, inside "
    "<answer> </answer>."
)
"""The no-tool arm's system prompt: the tool arm's protocol minus the tool."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def row_key(item_id: str, arm: str) -> str:
    """The key of one item in one arm in ``results.jsonl``."""
    return f"{item_id}|{arm}"


def _slug(key: str) -> str:
    return _UNSAFE.sub("_", key)[:120]


def _save_images(images: list[Any], out_dir: Path, key: str) -> list[dict[str, Any]]:
    """Write trajectory images as PNG under ``out_dir/images``; return their entries."""
    folder = out_dir / "images" / _slug(key)
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for entry in images:
        path = folder / f"{entry['index']}.png"
        path.write_bytes(entry["png"])
        saved.append(
            {
                "index": entry["index"],
                "origin": entry["origin"],
                "step": entry["step"],
                "path": str(path.relative_to(out_dir)),
                "size": [entry["width"], entry["height"]],
            }
        )
    return saved


def _base_row(item: EvalItem, arm: str, model_name: str) -> dict[str, Any]:
    return {
        "key": row_key(item.id, arm),
        "id": item.id,
        "arm": arm,
        "model": model_name,
        "dataset": item.dataset,
        "transform": item.transform,
        "qtype": item.qtype,
        "scoring": item.scoring,
        "question": item.question,
        "answers": list(item.answers),
        "choices": item.choices,
    }


def _scored(row: dict[str, Any], item: EvalItem, prediction: str | None, judge: Any) -> None:
    score = score_item(item, prediction, judge=judge)
    row.update(
        prediction=prediction,
        correct=score.correct,
        rule=score.rule,
        extracted=score.extracted,
        iou=score.iou,
        status="ok",
    )


def _tool_stats(state: dict[str, Any], item: EvalItem) -> dict[str, Any]:
    steps = state.get("steps") or []
    failed = [s for s in steps if not s.get("ok")]
    recovered = any(
        not a.get("ok") and any(b.get("ok") for b in steps[k + 1 :]) for k, a in enumerate(steps)
    )
    breakdown = score_rollout(
        state,
        ground_truth=item.truth,
        transform=None if item.transform == SOURCE else item.transform,
        bbox=item.bbox,
    )
    ops = list(breakdown.ops_used)
    return {
        "calls": len(steps),
        "errors": len(failed),
        "had_error": bool(failed),
        "recovered": recovered,
        "ops_used": ops,
        "emergent_ops": sorted({op for op in ops if op not in CORE_OPS}),
        "expected": list(item.expected),
    }


def tool_row(
    item: EvalItem,
    state: dict[str, Any],
    out_dir: Path,
    model_name: str,
    judge: Any = None,
) -> dict[str, Any]:
    """The result row of a finished tool-arm episode (images written under ``out_dir``)."""
    row = _base_row(item, "tool", model_name)
    _scored(row, item, state.get("answer"), judge)
    row["steps"] = [
        {
            "step": s.get("step"),
            "turn": s.get("turn"),
            "code": s.get("code", ""),
            "description": s.get("description", ""),
            "image_index": s.get("image_index"),
            "ok": bool(s.get("ok")),
            "error": s.get("error"),
            "stdout": s.get("stdout", ""),
            "output_indices": list(s.get("output_indices") or []),
            "duration_s": s.get("duration_s"),
        }
        for s in state.get("steps") or []
    ]
    row["images"] = _save_images(state.get("images") or [], out_dir, row["key"])
    row["turns"] = state.get("turns", 0)
    row["stop_reason"] = state.get("stop_reason")
    row["tool"] = _tool_stats(state, item)
    return row


async def run_no_tool(
    model: BaseChatModel,
    item: EvalItem,
    profile: ProtocolProfile,
    out_dir: Path,
    model_name: str,
    judge: Any = None,
) -> dict[str, Any]:
    """Ask ``model`` once, with the images and question laid out as ``profile`` says."""
    budget = None
    if profile.min_pixels or profile.max_pixels:
        budget = PixelBudget(profile.min_pixels or 1, profile.max_pixels or 10**12)
    blocks = [to_image_block(im, budget=budget) for im in item.images]
    messages = opening_messages(NO_TOOL_SYSTEM_PROMPT, blocks, item.question, profile)
    reply = await model.ainvoke(messages)
    text = reply.text if hasattr(reply, "text") else str(reply.content)
    row = _base_row(item, "no_tool", model_name)
    _scored(row, item, extract_answer(text), judge)
    inputs = [
        {
            "png": encode_image(im),
            "index": k,
            "origin": "input",
            "step": None,
            "width": im.size[0],
            "height": im.size[1],
        }
        for k, im in enumerate(item.images)
    ]
    row.update(
        steps=[],
        images=_save_images(inputs, out_dir, row["key"]),
        turns=1,
        stop_reason="answer" if "<answer>" in text else "no_tool_call",
        reply=text,
        tool=no_tool_use(item),
    )
    return row


def no_tool_use(item: Any) -> dict[str, Any]:
    """The tool-use statistics of an item that ran no tool call."""
    return {
        "calls": 0,
        "errors": 0,
        "had_error": False,
        "recovered": False,
        "ops_used": [],
        "emergent_ops": [],
        "expected": list(item.expected),
    }
