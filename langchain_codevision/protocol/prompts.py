"""System prompts of the default profile, the answer-now request, and prompt files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from .schema import TOOL_NAME

__all__ = [
    "FINAL_ANSWER_REQUEST",
    "TEXT_SYSTEM_PROMPT",
    "TOOLS_SYSTEM_PROMPT",
    "Dialect",
    "default_system_prompt",
    "load_system_prompt",
]

Dialect = Literal["text", "tools"]
"""``"text"``: tags parsed from the model's text; ``"tools"``: native tool calling."""

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
"""The default profile's one extra request at the turn limit (the release sends none)."""


def default_system_prompt(dialect: Dialect) -> str:
    """The default profile's system prompt for ``dialect``."""
    return TEXT_SYSTEM_PROMPT if dialect == "text" else TOOLS_SYSTEM_PROMPT


def load_system_prompt(path: str | Path) -> str:
    """Read a system prompt from a file (e.g. the reference release's prompt file).

    ``.json`` files may hold a string or ``{"system_prompt": ...}``/``{"prompt": ...}``.

    Args:
        path: A text or JSON file.

    Returns:
        The prompt (text files are stripped).

    Raises:
        FileNotFoundError: No such file.
        ValueError: A JSON file without a prompt string.
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
