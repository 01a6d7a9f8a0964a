"""The ``code_image_tool`` schema and how it is shown to a text-dialect model.

In the text dialect the schema reaches the model as the hermes ``# Tools`` block that Qwen
chat templates (and the CodeVision release's template) render into the system turn;
:func:`render_tools_block` writes that block byte for byte and :func:`split_tools_block`
reads it back (so a template that renders tools itself can be given the schema instead).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field

__all__ = [
    "TOOLS_BLOCK_INTRO",
    "TOOLS_BLOCK_OUTRO",
    "TOOL_DESCRIPTION",
    "TOOL_NAME",
    "CodeImageToolInput",
    "render_tools_block",
    "split_tools_block",
    "tool_schema",
]

TOOL_NAME = "code_image_tool"
"""The name of the image-code tool in every profile."""

TOOL_DESCRIPTION = (
    "Run Python code on an image (rotate, flip, crop, zoom, enhance contrast, threshold, "
    "detect edges, draw, measure ...) and get the processed image back."
)

TOOLS_BLOCK_INTRO = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
"""What precedes the schemas (the system prompt comes right before it)."""

TOOLS_BLOCK_OUTRO = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
"""What follows the schemas (the system turn ends right after it)."""


class CodeImageToolInput(BaseModel):
    """Arguments of ``code_image_tool``."""

    code: str = Field(
        description=(
            "Python code to run on the selected image. The image is available as `image` "
            "(and `img`), a PIL copy; `draw` is an ImageDraw on it. PIL (Image, ImageEnhance, "
            "ImageFilter, ImageOps, ImageDraw, ImageFont), numpy as np, cv2 and math are "
            "imported. Put the processed PIL image in `result`. Variables persist between "
            "calls; print() output is returned."
        )
    )
    description: str = Field(default="", description="One line on what the code does.")
    image_index: int = Field(
        default=0,
        description=(
            "Which image to work on: 0 is the (first) input image, each successful tool call "
            "adds the next index."
        ),
    )


def tool_schema() -> dict[str, Any]:
    """The default profile's OpenAI-format function schema of ``code_image_tool``."""
    schema = convert_to_openai_tool(CodeImageToolInput)
    schema["function"]["name"] = TOOL_NAME
    schema["function"]["description"] = TOOL_DESCRIPTION
    return schema


def _tojson(value: Any) -> str:
    """JSON as Hugging Face chat templates' ``tojson`` writes it (key order kept)."""
    return json.dumps(value, ensure_ascii=False)


def render_tools_block(tools: Sequence[dict[str, Any]]) -> str:
    r"""The hermes tools block, starting with ``\n\n# Tools``.

    ``system_prompt + render_tools_block([schema])`` is exactly the system turn's text that
    the release's chat template renders for ``tools=[schema]``.

    Args:
        tools: OpenAI-format tool schemas.

    Returns:
        The block text.
    """
    return TOOLS_BLOCK_INTRO + "".join("\n" + _tojson(tool) for tool in tools) + TOOLS_BLOCK_OUTRO


def split_tools_block(text: str) -> tuple[str, list[dict[str, Any]]] | None:
    """Undo :func:`render_tools_block`: ``(system prompt, schemas)``, or ``None``.

    Args:
        text: A system message's text.

    Returns:
        The text before the block and the decoded schemas when ``text`` ends with a block
        this module renders, else ``None``.
    """
    if not text.endswith(TOOLS_BLOCK_OUTRO):
        return None
    start = text.rfind(TOOLS_BLOCK_INTRO)
    if start < 0:
        return None
    body = text[start + len(TOOLS_BLOCK_INTRO) : len(text) - len(TOOLS_BLOCK_OUTRO)]
    try:
        tools = [json.loads(line) for line in body.split("\n") if line]
    except json.JSONDecodeError:
        return None
    prompt = text[:start]
    if render_tools_block(tools) != text[start:]:
        return None
    return prompt, tools
