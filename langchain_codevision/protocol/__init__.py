"""The CodeVision protocol: system prompts, the tool schema and the tool's reply texts.

Two dialects share one executor:

* ``"text"``: the model writes ``<think>``, ``<tool_call>{json}</tool_call>`` and
  ``<answer>`` tags in plain text (fine-tuned CodeVision models, Qwen chat templates, vLLM).
  Tool replies are user turns wrapped in ``<tool_response>`` tags, which is exactly what the
  Qwen chat templates render for a ``tool`` turn.
* ``"tools"``: native tool calling (GPT-4o, Claude, Gemini): the same schema is bound as a
  tool and replies are ``ToolMessage`` objects with image content blocks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field

Dialect = Literal["text", "tools"]
TOOL_NAME = "code_image_tool"
RESULT_NAMES = ("result", "output", "image")
"""Where the tool looks for the processed image, in order (``image`` is the bound copy)."""


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


TOOL_DESCRIPTION = (
    "Run Python code on an image (rotate, flip, crop, zoom, enhance contrast, threshold, "
    "detect edges, draw, measure ...) and get the processed image back."
)


def tool_schema() -> dict[str, Any]:
    """The OpenAI-format function schema of ``code_image_tool``."""
    schema = convert_to_openai_tool(CodeImageToolInput)
    schema["function"]["name"] = TOOL_NAME
    schema["function"]["description"] = TOOL_DESCRIPTION
    return schema


_SHARED_RULES = """\
The code runs in a persistent Python kernel. In it, `image` (also `img`) is a PIL copy of the \
image you select with `image_index`, and `draw` is a PIL ImageDraw on that copy. Already \
imported: Image, ImageEnhance, ImageFilter, ImageOps, ImageDraw, ImageFont (PIL), numpy as np, \
cv2, math. Leave the processed PIL image in the variable `result`. If you set neither \
`result` nor `output`, the (possibly drawn-on) copy is returned. Variables you define persist \
between calls, and print() output is shown to you.

Image indices: 0 is the input image (with several inputs: 0, 1, ...); every successful call \
adds its result as the next index, so you can zoom into a crop you made earlier.

Use code when the image needs it: fix a rotated or mirrored image before reading it, crop \
and enlarge small regions, raise contrast or brightness, denoise, or detect edges. Work \
coarse to fine: first a wide crop, then a tighter one. Do not try every possible \
transformation; reason about what the image shows and choose. If your code fails, read the \
error and fix it."""

TEXT_SYSTEM_PROMPT = f"""\
You are a careful visual reasoner who can write Python to inspect and transform images.

First think inside <think> </think>. Then do exactly one of the following:
1. Call the image tool, with JSON inside <tool_call> </tool_call>:
<tool_call>
{{"name": "{TOOL_NAME}", "arguments": {{"code": "result = image.rotate(90, expand=True)", \
"description": "rotate the page upright", "image_index": 0}}}}
</tool_call>
2. Give the final answer inside <answer> </answer>, short and exact.

{_SHARED_RULES}"""

TOOLS_SYSTEM_PROMPT = f"""\
You are a careful visual reasoner who can write Python to inspect and transform images with \
the `{TOOL_NAME}` tool.

{_SHARED_RULES}

When you are done, reply without a tool call and put the final answer, short and exact, \
inside <answer> </answer>."""

FINAL_ANSWER_REQUEST = (
    "You have used all your tool calls. Do not call the tool again. Based on what you have "
    "seen, give your final answer now inside <answer> </answer>."
)


def default_system_prompt(dialect: Dialect) -> str:
    """The built-in system prompt for ``dialect``."""
    return TEXT_SYSTEM_PROMPT if dialect == "text" else TOOLS_SYSTEM_PROMPT


def load_system_prompt(path: str | Path) -> str:
    """Read a system prompt from a file (e.g. the reference release's prompt file).

    ``.json`` files may hold a string or ``{"system_prompt": ...}``/``{"prompt": ...}``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"system prompt file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        if isinstance(data, dict):
            for key in ("system_prompt", "prompt", "system"):
                if isinstance(data.get(key), str):
                    return data[key]
            raise ValueError(f"{path}: no 'system_prompt', 'prompt' or 'system' string in it")
        if not isinstance(data, str):
            raise ValueError(f"{path}: expected a JSON string or object")
        return data
    return text.strip()


def success_text(
    indices: list[int], sizes: list[tuple[int, int]], stdout: str, notes: list[str]
) -> str:
    """The instruction that follows the images of a successful tool call."""
    shown = ", ".join(f"image {i} ({w}x{h})" for i, (w, h) in zip(indices, sizes, strict=True))
    lines = [f"The code ran. Result: {shown}." if shown else "The code ran."]
    if stdout.strip():
        lines.append(f"Printed output:\n{stdout.rstrip()}")
    lines.extend(notes)
    lines.append(
        "Look at the result and think. Call the tool again if more is needed; otherwise give "
        "the final answer inside <answer> </answer>."
    )
    return "\n".join(lines)


def error_text(message: str, hint: str | None, stdout: str = "") -> str:
    """The reply to a failed tool call; starts with ``Error:`` as the reference expects."""
    lines = [f"Error: {message.strip()}"]
    if stdout.strip():
        lines.append(f"Printed output before the error:\n{stdout.rstrip()}")
    if hint:
        lines.append(f"Hint: {hint}")
    lines.append("Fix the problem and call the tool again, or give the final answer.")
    return "\n".join(lines)


def wrap_tool_response(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Wrap content blocks in ``<tool_response>`` tags (text dialect)."""
    return [
        {"type": "text", "text": "<tool_response>\n"},
        *blocks,
        {"type": "text", "text": "\n</tool_response>"},
    ]
