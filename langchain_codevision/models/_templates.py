"""Chat templates for the Qwen vision-language family, written for this package.

Two dialects matter for the local adapter:

* :data:`QWEN2_5_VL_TEMPLATE` renders like the template shipped with Qwen2.5-VL: a default
  system prompt, vision placeholders, and no notion of tools. The adapter renders tools,
  tool calls and tool results itself when a model ships a template like this one.
* :data:`QWEN_VL_TOOLS_TEMPLATE` renders like the Qwen3-VL template: a ``# Tools`` system
  block, assistant ``tool_calls`` as hermes ``<tool_call>`` JSON, and ``tool`` turns as
  ``<tool_response>`` blocks inside a user turn, with images allowed everywhere.

Both place ``<|vision_start|><|image_pad|><|vision_end|>`` where an image goes, which is
what the Qwen processors expand into image tokens.
"""

from __future__ import annotations

from langchain_codevision.protocol.schema import TOOLS_BLOCK_INTRO, TOOLS_BLOCK_OUTRO

__all__ = ["QWEN2_5_VL_TEMPLATE", "QWEN_VL_TOOLS_TEMPLATE", "qwen_vl_tools_template"]

# One macro renders a content list (text, images, videos) the same way in every role.
_CONTENT_MACRO = (
    "{% macro render_content(content, counts) %}"
    "{% if content is string %}{{ content }}"
    "{% else %}{% for part in content %}"
    "{% if part.type == 'image' or 'image' in part or 'image_url' in part %}"
    "{% set counts.image = counts.image + 1 %}"
    "{% if add_vision_id %}Picture {{ counts.image }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part.type == 'video' or 'video' in part %}"
    "{% set counts.video = counts.video + 1 %}"
    "{% if add_vision_id %}Video {{ counts.video }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part.text }}"
    "{% endif %}"
    "{% endfor %}{% endif %}"
    "{% endmacro %}"
)

QWEN2_5_VL_TEMPLATE = (
    _CONTENT_MACRO + "{% set counts = namespace(image=0, video=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message.role != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message.role }}\n"
    "{{ render_content(message.content, counts) }}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Renders like the stock Qwen2.5-VL template (no tools)."""

_TOOLS_PREAMBLE = TOOLS_BLOCK_INTRO.lstrip("\n")
_TOOLS_POSTAMBLE = TOOLS_BLOCK_OUTRO


def _jinja_literal(text: str) -> str:
    """Quote ``text`` as a Jinja string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _system_text() -> str:
    """The text parts of a system message (images are not rendered in a system turn)."""
    return (
        "{% if messages[0].content is string %}{{ messages[0].content }}"
        "{% else %}{% for part in messages[0].content %}"
        "{% if 'text' in part %}{{ part.text }}{% endif %}"
        "{% endfor %}{% endif %}"
    )


def qwen_vl_tools_template() -> str:
    """Build the tools-aware template (see the module docstring)."""
    system = _system_text()
    return (
        _CONTENT_MACRO + "{% if tools %}<|im_start|>system\n"
        "{% if messages and messages[0].role == 'system' %}" + system + "{{ '\\n\\n' }}{% endif %}"
        "{{ " + _jinja_literal(_TOOLS_PREAMBLE) + " }}"
        "{% for tool in tools %}{{ '\\n' }}{{ tool | tojson }}{% endfor %}"
        "{{ " + _jinja_literal(_TOOLS_POSTAMBLE) + " }}<|im_end|>\n"
        "{% elif messages and messages[0].role == 'system' %}<|im_start|>system\n"
        + system
        + "<|im_end|>\n"
        "{% endif %}"
        "{% set counts = namespace(image=0, video=0) %}"
        "{% for message in messages %}"
        "{% if message.role == 'user' %}"
        "<|im_start|>user\n{{ render_content(message.content, counts) }}<|im_end|>\n"
        "{% elif message.role == 'assistant' %}"
        "<|im_start|>assistant\n"
        "{% if message.content is string %}{{ message.content }}"
        "{% elif message.content %}{% for part in message.content %}"
        "{% if 'text' in part %}{{ part.text }}{% endif %}{% endfor %}"
        "{% endif %}"
        "{% for call in message.tool_calls or [] %}"
        "{% if not loop.first or message.content %}{{ '\\n' }}{% endif %}"
        "{% set fn = call.function if call.function else call %}"
        '<tool_call>\n{"name": "{{ fn.name }}", "arguments": '
        "{% if fn.arguments is string %}{{ fn.arguments }}"
        "{% else %}{{ fn.arguments | tojson }}{% endif %}"
        "}\n</tool_call>"
        "{% endfor %}"
        "<|im_end|>\n"
        "{% elif message.role == 'tool' %}"
        "{% if loop.first or messages[loop.index0 - 1].role != 'tool' %}"
        "<|im_start|>user{% endif %}"
        "{{ '\\n' }}<tool_response>\n"
        "{{ render_content(message.content, counts) }}\n</tool_response>"
        "{% if loop.last or messages[loop.index0 + 1].role != 'tool' %}"
        "<|im_end|>\n{% endif %}"
        "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


QWEN_VL_TOOLS_TEMPLATE = qwen_vl_tools_template()
"""Renders like the Qwen3-VL template (tools, tool calls, tool results with images)."""
