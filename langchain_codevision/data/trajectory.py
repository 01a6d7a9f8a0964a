"""A neutral form of one episode, read from any graph run's state, for the exporters.

:func:`trajectory_from_state` walks the messages of a finished run (either dialect) and
returns a :class:`Trajectory`: the system prompt, turns with ``<image>`` placeholders where
images stood, and the images themselves at full resolution (taken from the state's
trajectory images, not from the resized copies the model saw). Native tool calls are written
back in the text protocol, so every export teaches the same format.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from PIL import Image

from ..images import encode_image, image_from_block
from ..loop.messages import IMAGE_ID_PREFIX
from ..protocol import TOOL_TURN_MARK, format_tool_call, unwrap_tool_response

IMAGE_TOKEN = "<image>"
Role = Literal["user", "assistant", "tool"]


class ExportError(ValueError):
    """A trajectory cannot be exported as asked (it names the trajectory)."""


@dataclass
class Turn:
    """One turn: ``text`` holds an ``<image>`` placeholder where each image stood.

    Images are kept as lossless PNG bytes (``pngs``) so that exporting writes them without
    decoding and re-encoding; :attr:`images` decodes them.
    """

    role: Role
    text: str
    pngs: list[bytes] = field(default_factory=list)

    @classmethod
    def with_images(cls, role: Role, text: str, images: list[Image.Image]) -> Turn:
        """A turn from PIL images."""
        return cls(role, text, [encode_image(image, "png") for image in images])

    @property
    def images(self) -> list[Image.Image]:
        """The images, decoded."""
        return [_decode_png(data) for data in self.pngs]


def _decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@dataclass
class Trajectory:
    """One episode, ready to export.

    Attributes:
        system: The system prompt ("" when none).
        turns: The conversation after the system prompt.
        answer: The final answer.
        stop_reason: ``"answer"`` or ``"turn_limit"``.
        truncated: Whether the episode stopped at the turn limit (trainers may mask it).
        metadata: Free-form extras (record fields, task type, ...).
        name: An identifier used in error messages and file names.
    """

    system: str
    turns: list[Turn]
    answer: str | None = None
    stop_reason: str | None = None
    truncated: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str = "trajectory"

    @property
    def images(self) -> list[Image.Image]:
        """All images in order of appearance."""
        return [image for turn in self.turns for image in turn.images]

    @property
    def pngs(self) -> list[bytes]:
        """All images in order of appearance, as PNG bytes."""
        return [data for turn in self.turns for data in turn.pngs]

    def check(self) -> None:
        """Raise :class:`ExportError` when placeholders and images disagree."""
        for position, turn in enumerate(self.turns):
            count = turn.text.count(IMAGE_TOKEN)
            if count != len(turn.pngs):
                raise ExportError(
                    f"{self.name}: turn {position} ({turn.role}) has {count} {IMAGE_TOKEN} "
                    f"placeholders but {len(turn.pngs)} images"
                )


def _block_png(block: dict[str, Any], stored: list[Any]) -> bytes:
    """Full-resolution PNG bytes of the image a block shows (the stored original if known)."""
    block_id = str(block.get("id") or "")
    if block_id.startswith(IMAGE_ID_PREFIX):
        index = int(block_id[len(IMAGE_ID_PREFIX) :])
        if index < len(stored):
            return stored[index]["png"]
    return encode_image(image_from_block(block), "png")


def _render(message: BaseMessage, stored: list[Any], unwrap: bool) -> tuple[str, list[bytes]]:
    if isinstance(message.content, str):
        text = message.content
        return (unwrap_tool_response(text) if unwrap else text), []
    parts: list[str] = []
    images: list[bytes] = []
    for block in message.content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") in ("image", "image_url"):
            parts.append(IMAGE_TOKEN)
            images.append(_block_png(block, stored))
        elif block.get("type") == "text":
            parts.append(block.get("text", ""))
    text = "".join(parts)
    return (unwrap_tool_response(text) if unwrap else text), images


def _assistant_text(message: AIMessage) -> str:
    text = message.text
    for call in message.tool_calls:
        rendered = format_tool_call(call["name"], call["args"])
        text = f"{text}\n{rendered}" if text else rendered
    return text


def trajectory_from_state(
    state: dict[str, Any], *, name: str = "trajectory", metadata: dict[str, Any] | None = None
) -> Trajectory:
    """Build a :class:`Trajectory` from the output state of a CodeVision graph run."""
    messages: list[BaseMessage] = list(state.get("messages") or [])
    stored = list(state.get("images") or [])
    if not messages:
        raise ExportError(f"{name}: the state has no messages")
    system = ""
    turns: list[Turn] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            system = message.text
            continue
        if isinstance(message, AIMessage):
            turns.append(Turn("assistant", _assistant_text(message)))
            continue
        is_tool = isinstance(message, ToolMessage) or bool(
            isinstance(message, HumanMessage) and message.additional_kwargs.get(TOOL_TURN_MARK)
        )
        text, images = _render(message, stored, unwrap=is_tool)
        role: Role = "tool" if is_tool else "user"
        if turns and turns[-1].role != "assistant":
            previous = turns[-1]  # merge consecutive user-side turns (one side per turn)
            previous.text = f"{previous.text}\n{text}"
            previous.pngs.extend(images)
            continue
        turns.append(Turn(role, text, images))
    stop_reason = state.get("stop_reason")
    trajectory = Trajectory(
        system=system,
        turns=turns,
        answer=state.get("answer"),
        stop_reason=stop_reason,
        truncated=stop_reason == "turn_limit",
        metadata=dict(metadata or {}),
        name=name,
    )
    trajectory.check()
    return trajectory


def metadata_json(trajectory: Trajectory) -> str:
    """The trajectory's metadata as a JSON string (a flat column every loader accepts)."""
    return json.dumps(trajectory.metadata, sort_keys=True, default=str)


STORE_FILE = "trajectories.jsonl"


def trajectory_row(trajectory: Trajectory, folder: Path) -> dict[str, Any]:
    """Save a trajectory's images under ``folder/images`` and return its JSON row."""
    image_dir = folder / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    turns = []
    for position, turn in enumerate(trajectory.turns):
        paths = []
        for k, data in enumerate(turn.pngs):
            path = image_dir / f"{trajectory.name}-t{position}-{k}.png"
            path.write_bytes(data)
            paths.append(path.relative_to(folder).as_posix())
        turns.append({"role": turn.role, "text": turn.text, "images": paths})
    return {
        "name": trajectory.name,
        "system": trajectory.system,
        "turns": turns,
        "answer": trajectory.answer,
        "stop_reason": trajectory.stop_reason,
        "truncated": trajectory.truncated,
        "metadata": trajectory.metadata,
    }


def load_trajectories(folder: str | Path) -> list[Trajectory]:
    """Read the trajectories saved in ``folder`` (``trajectories.jsonl`` + ``images/``)."""
    folder = Path(folder)
    path = folder / STORE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {STORE_FILE} in {folder}")
    loaded = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            turns = []
            for turn in row["turns"]:
                pngs = [(folder / rel).read_bytes() for rel in turn["images"]]
                turns.append(Turn(turn["role"], turn["text"], pngs))
        except (OSError, KeyError, ValueError) as exc:
            raise ExportError(f"{path}:{number}: unreadable trajectory row: {exc}") from exc
        loaded.append(
            Trajectory(
                system=row.get("system", ""),
                turns=turns,
                answer=row.get("answer"),
                stop_reason=row.get("stop_reason"),
                truncated=bool(row.get("truncated")),
                metadata=row.get("metadata") or {},
                name=row.get("name", f"row-{number}"),
            )
        )
    return loaded
