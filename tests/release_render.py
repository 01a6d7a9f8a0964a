"""Render conversations with the CodeVision release's chat template, as training did.

The release rendered prompts through Hugging Face ``apply_chat_template``: a sandboxed Jinja
environment with ``trim_blocks`` and ``lstrip_blocks`` and a ``tojson`` that keeps key order
and non-ASCII text. The same environment renders the stock Qwen2.5-VL template that an
OpenAI-compatible server (vLLM) applies to what the graph sends over the wire.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

from langchain_codevision.models._templates import QWEN2_5_VL_TEMPLATE
from langchain_codevision.protocol import release_chat_template, release_tool_schema

TAIL = (
    " Please keep thinking step-by-step inside the <think></think> tags to determine the next "
    "action. If additional tools are required, call them inside the <tool_calls></tool_calls> "
    "tags. Otherwise, provide your final answer within the <answer></answer> tags."
)
SUCCESS = "Here is the processed image. Now, analyze the returned results." + TAIL


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    return env


def render_release(messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> str:
    """The release template's rendering of ``messages`` with ``tools=[schema]``."""
    template = _environment().from_string(release_chat_template())
    return template.render(
        messages=messages,
        tools=[release_tool_schema()],
        add_generation_prompt=add_generation_prompt,
    )


def render_release_server(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], *, add_generation_prompt: bool
) -> str:
    """What a server applying the release's template renders for a request with ``tools``."""
    template = _environment().from_string(release_chat_template())
    return template.render(
        messages=messages, tools=tools, add_generation_prompt=add_generation_prompt
    )


def render_stock(messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> str:
    """The stock Qwen2.5-VL template's rendering (what a vLLM server applies)."""
    template = _environment().from_string(QWEN2_5_VL_TEMPLATE)
    return template.render(messages=messages, add_generation_prompt=add_generation_prompt)


def release_user_turn(question: str, images: int) -> dict[str, Any]:
    """The release's user turn: ``"<image>\\n" * k + question`` split at the placeholders."""
    content: list[dict[str, Any]] = []
    for piece in re.split("(<image>)", "<image>\n" * images + question):
        if piece == "<image>":
            content.append({"type": "image"})
        elif piece:
            content.append({"type": "text", "text": piece})
    return {"role": "user", "content": content}


def release_tool_turn(text: str, image: bool) -> dict[str, Any]:
    """A tool turn as the release's loop appends it (the image first, then the text)."""
    content = [{"type": "image"}] if image else []
    return {"role": "tool", "content": [*content, {"type": "text", "text": text}]}
