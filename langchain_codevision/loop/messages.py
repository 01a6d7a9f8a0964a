"""Build the messages of an episode: the opening turn, tool replies, the model's view.

Every image block the graph creates carries an ``id`` of the form ``cv-image-N`` (N is the
trajectory index), so that the model's view can drop old intermediate images when the
per-turn image cap is reached, while the trajectory keeps them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from PIL import Image

from langchain_codevision._core_speedups import install as _install_core_speedups
from langchain_codevision.images import (
    ImageFormat,
    PixelBudget,
    PixelSource,
    TrajectoryImage,
    base64_text,
    encode_view,
    image_from_block,
    to_image_block,
    trajectory_image,
)
from langchain_codevision.protocol import (
    DEFAULT,
    TOOL_NAME,
    TOOL_TURN_MARK,
    Dialect,
    ProtocolProfile,
    wrap_tool_response,
)

_install_core_speedups()  # every model call with these image blocks would pay for it

__all__ = [
    "IMAGE_ID_PREFIX",
    "TOOL_TURN_MARK",
    "encode_step_image",
    "image_block",
    "images_in_messages",
    "model_view",
    "opening_messages",
    "tool_reply",
]

IMAGE_ID_PREFIX = "cv-image-"


def image_block(
    image: Image.Image, index: int, budget: PixelBudget | None, fmt: ImageFormat
) -> dict[str, Any]:
    """A standard image block for trajectory image ``index``, resized into ``budget``."""
    block = to_image_block(image, budget=budget, fmt=fmt)
    block["id"] = f"{IMAGE_ID_PREFIX}{index}"
    return block


def encode_step_image(
    image: PixelSource,
    index: int,
    budget: PixelBudget | None,
    fmt: ImageFormat,
    origin: str = "input",
    step: int | None = None,
) -> tuple[dict[str, Any], TrajectoryImage]:
    """The model's image block and the trajectory's copy of one image: one encode at most.

    The model's copy is resized into ``budget`` first, then encoded once; the trajectory
    keeps the full-resolution pixels and encodes them only when asked (a checkpointer, an
    export). When the image already fits and the model gets PNG, the trajectory reuses the
    model's PNG bytes, so it is never encoded again.
    """
    data, resized = encode_view(image, budget, fmt)
    block = {
        "type": "image",
        "base64": base64_text(data),
        "mime_type": f"image/{fmt}",
        "id": f"{IMAGE_ID_PREFIX}{index}",
    }
    shared = data if fmt == "png" and not resized else None
    return block, trajectory_image(image, index, origin, step, png=shared)


def opening_messages(
    system_prompt: str | None,
    image_blocks: list[dict[str, Any]],
    question: str,
    profile: ProtocolProfile = DEFAULT,
) -> list[BaseMessage]:
    """System prompt plus the user's turn, laid out as ``profile`` says.

    The default layout is ``[image, ..., question]``; the release's is one ``<image>``
    placeholder and a newline per image before the question.
    """
    messages: list[BaseMessage] = []
    if system_prompt:
        messages.append(SystemMessage(system_prompt))
    messages.append(HumanMessage(profile.question_content(image_blocks, question)))
    return messages


def images_in_messages(messages: Sequence[BaseMessage]) -> list[Image.Image]:
    """Decode every image in the human turns of ``messages`` (for ``messages``-only input)."""
    found = []
    for message in messages:
        if not isinstance(message, HumanMessage):
            continue
        for block in message.content_blocks:
            if block.get("type") in ("image", "image_url"):
                found.append(image_from_block(dict(block)))
    return found


def tool_reply(
    dialect: Dialect,
    blocks: list[dict[str, Any]],
    *,
    tool_call_id: str | None,
    images_in_user_message: bool = False,
    is_error: bool = False,
) -> list[BaseMessage]:
    """The message(s) that carry a tool result (image blocks, then text) back to the model.

    Text dialect: one user turn wrapped in ``<tool_response>`` tags (marked with
    :data:`TOOL_TURN_MARK`); tools dialect: a ``ToolMessage`` (images optionally repeated in
    a following user message for servers that reject images in ``role: tool``).
    """
    if dialect == "text":
        return [
            HumanMessage(
                wrap_tool_response(blocks),
                additional_kwargs={TOOL_TURN_MARK: True},
            )
        ]
    images = [b for b in blocks if b.get("type") == "image"]
    texts = [b for b in blocks if b.get("type") != "image"]
    if images_in_user_message and images:
        note = {"type": "text", "text": "(The result images follow in the next message.)"}
        return [
            ToolMessage(
                [*texts, note],
                tool_call_id=tool_call_id or "",
                name=TOOL_NAME,
                status="error" if is_error else "success",
            ),
            HumanMessage([*images, {"type": "text", "text": "Images from the tool call above."}]),
        ]
    return [
        ToolMessage(
            [*images, *texts] if images else texts,
            tool_call_id=tool_call_id or "",
            name=TOOL_NAME,
            status="error" if is_error else "success",
        )
    ]


def _block_index(block: dict[str, Any]) -> int | None:
    block_id = str(block.get("id") or "")
    if block_id.startswith(IMAGE_ID_PREFIX):
        try:
            return int(block_id[len(IMAGE_ID_PREFIX) :])
        except ValueError:
            return None
    return None


def model_view(
    messages: Sequence[AnyMessage], max_images: int | None, input_count: int
) -> list[AnyMessage]:
    """The messages to send: inputs always shown, only the newest intermediate images kept.

    An omitted image is replaced by a short text so the model knows it can still use it by
    its ``image_index``.
    """
    if max_images is None:
        return list(messages)
    indices = [
        index
        for message in messages
        if isinstance(message.content, list)
        for block in message.content
        if isinstance(block, dict) and (index := _block_index(block)) is not None
    ]
    intermediate = sorted({i for i in indices if i >= input_count})
    budget = max(max_images - min(input_count, max_images), 0)
    keep = set(intermediate[-budget:]) if budget else set()
    drop = set(intermediate) - keep
    if not drop:
        return list(messages)
    view: list[AnyMessage] = []
    for message in messages:
        if not isinstance(message.content, list) or isinstance(message, AIMessage):
            view.append(message)
            continue
        content = []
        changed = False
        for block in message.content:
            index = _block_index(block) if isinstance(block, dict) else None
            if index is not None and index in drop:
                changed = True
                content.append(
                    {
                        "type": "text",
                        "text": f"[image {index} omitted to save context; it can still be "
                        f"used with image_index {index}]",
                    }
                )
            else:
                content.append(block)
        view.append(message.model_copy(update={"content": content}) if changed else message)
    return view
