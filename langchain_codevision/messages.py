"""Moved to :mod:`langchain_codevision.loop.messages`; this path keeps working."""

from .loop.messages import (
    IMAGE_ID_PREFIX,
    TOOL_TURN_MARK,
    encode_step_image,
    image_block,
    images_in_messages,
    model_view,
    opening_messages,
    tool_reply,
)

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
