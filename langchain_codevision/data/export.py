"""Export trajectories to the formats training stacks read.

* :func:`export_sharegpt`: LLaMA-Factory ShareGPT (``conversations`` with ``from``/``value``,
  roles human/gpt/observation, ``images`` as saved files, ``system``) plus its
  ``dataset_info.json`` entry;
* :func:`export_trl`: TRL conversational JSONL (``messages`` + ``images``; tool turns kept, with
  their images inline, so a collator can mask them);
* :func:`export_openai`: OpenAI fine-tuning JSONL (images as data URLs, text protocol);
* verl RL parquet: see :func:`langchain_codevision.data.records.write_parquet`.

Every row carries ``truncated`` (the episode hit the turn limit) and ``metadata`` (JSON).
The number of ``<image>`` placeholders always equals the number of images; a trajectory
where they disagree is an error that names it. With ``on_error="skip"`` a bad trajectory is
reported and the others are still written.

Example:
    >>> trajectories = [trajectory_from_state(graph.invoke(...), name="ep-0")]
    >>> export_sharegpt(trajectories, "out/llamafactory", dataset_name="codevision")
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..images import data_url
from ..protocol import TOOL_RESPONSE_CLOSE, TOOL_RESPONSE_OPEN
from .trajectory import IMAGE_TOKEN, ExportError, Trajectory, metadata_json

OnError = Literal["raise", "skip"]


@dataclass
class ExportReport:
    """What an export wrote."""

    path: Path
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] or "trajectory"


def _save_images(pngs: list[bytes], folder: Path, stem: str, root: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for position, data in enumerate(pngs):
        path = folder / f"{_safe(stem)}-{position}.png"
        path.write_bytes(data)
        paths.append(path.relative_to(root).as_posix())
    return paths


def _rows(
    trajectories: Iterable[Trajectory], convert: Any, on_error: OnError, report: ExportReport
) -> list[dict[str, Any]]:
    rows = []
    for trajectory in trajectories:
        try:
            trajectory.check()
            rows.append(convert(trajectory))
        except (ExportError, OSError, ValueError) as exc:
            if on_error == "raise":
                raise ExportError(f"{trajectory.name}: {exc}") from exc
            report.skipped.append((trajectory.name, str(exc)))
    report.written = len(rows)
    return rows


def export_sharegpt(
    trajectories: Iterable[Trajectory],
    out_dir: str | Path,
    *,
    dataset_name: str = "codevision",
    observation_tag: str = "observation",
    on_error: OnError = "raise",
) -> ExportReport:
    """Write ``{dataset_name}.json`` (LLaMA-Factory ShareGPT) and update ``dataset_info.json``."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    tags = {"user": "human", "assistant": "gpt", "tool": observation_tag}
    report = ExportReport(root / f"{dataset_name}.json")

    def convert(trajectory: Trajectory) -> dict[str, Any]:
        turns = [{"from": tags[t.role], "value": t.text} for t in trajectory.turns]
        if not turns or turns[0]["from"] != "human":
            raise ExportError("a ShareGPT conversation must start with a human turn")
        images = _save_images(trajectory.pngs, root / "images", trajectory.name, root)
        return {
            "conversations": turns,
            "images": images,
            "system": trajectory.system,
            "truncated": trajectory.truncated,
            "metadata": metadata_json(trajectory),
        }

    rows = _rows(trajectories, convert, on_error, report)
    report.path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    info_path = root / "dataset_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    info[dataset_name] = {
        "file_name": report.path.name,
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "images", "system": "system"},
        "tags": {
            "role_tag": "from",
            "content_tag": "value",
            "user_tag": "human",
            "assistant_tag": "gpt",
            "observation_tag": observation_tag,
            "function_tag": "function_call",
            "system_tag": "system",
        },
    }
    info_path.write_text(json.dumps(info, indent=2))
    return report


def _split_parts(
    text: str,
    text_part: Callable[[str], dict[str, Any]],
    image_part: Callable[[int], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Content parts of ``text``: text pieces between ``<image>`` placeholders, and images."""
    parts: list[dict[str, Any]] = []
    pieces = text.split(IMAGE_TOKEN)
    for position, piece in enumerate(pieces):
        if piece:
            parts.append(text_part(piece))
        if position < len(pieces) - 1:
            parts.append(image_part(position))
    return parts


def _trl_parts(text: str, inline: list[str] | None) -> list[dict[str, Any]]:
    """TRL parts; every part has the same keys so that datasets infers one schema."""
    return _split_parts(
        text,
        lambda piece: {"type": "text", "text": piece, "image": None},
        lambda k: {"type": "image", "text": None, "image": inline[k] if inline else None},
    )


def export_trl(
    trajectories: Iterable[Trajectory],
    out_dir: str | Path,
    *,
    dataset_name: str = "codevision",
    on_error: OnError = "raise",
) -> ExportReport:
    """Write ``{dataset_name}.jsonl`` in TRL's conversational format.

    User-turn images are ``{"type": "image"}`` placeholders filled from the ``images`` column
    (paths, in order); tool-turn images carry their path inline (``"image"``), because the
    ``images`` column only fills user turns. Tool turns keep ``role: "tool"``.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    report = ExportReport(root / f"{dataset_name}.jsonl")

    def convert(trajectory: Trajectory) -> dict[str, Any]:
        messages = []
        if trajectory.system:
            messages.append({"role": "system", "content": _trl_parts(trajectory.system, None)})
        column: list[str] = []
        for position, turn in enumerate(trajectory.turns):
            paths = _save_images(turn.pngs, root / "images", f"{trajectory.name}-t{position}", root)
            if turn.role == "tool":
                content = _trl_parts(turn.text, paths)
            else:
                column.extend(paths)
                content = _trl_parts(turn.text, None)
            messages.append({"role": turn.role, "content": content})
        return {
            "messages": messages,
            "images": column,
            "truncated": trajectory.truncated,
            "metadata": metadata_json(trajectory),
        }

    rows = _rows(trajectories, convert, on_error, report)
    with report.path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return report


def export_openai(
    trajectories: Iterable[Trajectory], path: str | Path, *, on_error: OnError = "raise"
) -> ExportReport:
    """Write OpenAI fine-tuning JSONL: images as data URLs, tool replies as user turns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    report = ExportReport(path)

    def convert(trajectory: Trajectory) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if trajectory.system:
            messages.append(
                {"role": "system", "content": [{"type": "text", "text": trajectory.system}]}
            )
        for turn in trajectory.turns:
            if turn.role == "assistant":
                messages.append(
                    {"role": "assistant", "content": [{"type": "text", "text": turn.text}]}
                )
                continue
            text = turn.text
            if turn.role == "tool":
                text = f"{TOOL_RESPONSE_OPEN}{text}{TOOL_RESPONSE_CLOSE}"
            parts = _split_parts(
                text,
                lambda piece: {"type": "text", "text": piece},
                lambda k, turn=turn: {
                    "type": "image_url",
                    "image_url": {"url": data_url(turn.pngs[k])},
                },
            )
            messages.append({"role": "user", "content": parts})
        return {"messages": messages}

    rows = _rows(trajectories, convert, on_error, report)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return report
