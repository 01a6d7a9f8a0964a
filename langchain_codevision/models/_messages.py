"""Turn LangChain messages into a chat-template conversation plus the images it shows.

Hugging Face processors render a conversation (``[{"role": ..., "content": [...]}]``) with
their Jinja chat template, writing one ``<|image_pad|>`` placeholder per image, and then
expand each placeholder for the matching image in a flat ``images`` list. This module
builds both from LangChain messages, reading every content block through
``message.content_blocks`` (so OpenAI ``image_url`` parts, standard ``image`` blocks with
``base64`` or ``url``, and plain strings all work).

Templates differ in what they know about tools. :class:`TemplateFeatures` says what the
checkpoint's template renders; whatever it does not render (a tools block, assistant
tool calls, ``tool`` turns) is written here in the same hermes format that Qwen's
tool-aware templates produce, so the model sees the same prompt either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from PIL import Image

from langchain_codevision.images import load_image as decode_image
from langchain_codevision.protocol import (
    format_tool_call,
    split_tools_block,
    wrap_tool_response,
)
from langchain_codevision.protocol import render_tools_block as _hermes_block

__all__ = [
    "ImageLoader",
    "Prompt",
    "TemplateFeatures",
    "convert_messages",
    "load_image",
    "render_tools_block",
]

ImageLoader = Callable[[str], Any]
"""Fetches a remote image URL; returns a PIL image, bytes, or a local path."""


@dataclass(frozen=True)
class TemplateFeatures:
    """What a chat template renders by itself.

    Attributes:
        tools: Renders the ``tools=`` argument (a tools block in the system turn).
        tool_calls: Renders ``tool_calls`` on assistant messages.
        tool_role: Renders ``role: tool`` messages as ``<tool_response>`` blocks.
    """

    tools: bool = False
    tool_calls: bool = False
    tool_role: bool = False


@dataclass
class Prompt:
    """A conversation ready for ``processor.apply_chat_template`` and its images.

    Attributes:
        conversation: Messages in the Hugging Face chat format.
        images: The images, in the order their placeholders appear.
        tools: OpenAI-format tool schemas to pass as ``tools=`` (``None`` when the template
            does not render tools, or no tools are bound).
    """

    conversation: list[dict[str, Any]]
    images: list[Image.Image] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


def render_tools_block(tools: Sequence[dict[str, Any]]) -> str:
    """Write the hermes tools block that Qwen's tool-aware templates put in the system turn.

    Args:
        tools: OpenAI-format tool schemas (``{"type": "function", "function": {...}}``).

    Returns:
        The block text, starting with ``# Tools``.
    """
    return _hermes_block(tools).lstrip("\n")


def convert_messages(
    messages: Sequence[BaseMessage],
    *,
    features: TemplateFeatures,
    tools: Sequence[dict[str, Any]] | None = None,
    image_loader: ImageLoader | None = None,
) -> Prompt:
    """Convert LangChain messages for a processor's chat template.

    Args:
        messages: The conversation.
        features: What the template renders by itself.
        tools: OpenAI-format schemas of the bound tools, if any.
        image_loader: Fetches ``http(s)`` image URLs; without it they are refused.

    Returns:
        The conversation, its images in placeholder order, and the ``tools=`` argument.

    Raises:
        ValueError: An unsupported content block, or an image that cannot be loaded.
    """
    tools = list(tools or [])
    conversation: list[dict[str, Any]] = []
    images: list[Image.Image] = []
    for index, message in enumerate(messages):
        where = f"message {index} ({message.type})"
        if isinstance(message, SystemMessage):
            conversation.append({"role": "system", "content": _plain_text(message)})
        elif isinstance(message, AIMessage):
            conversation.append(_assistant_turn(message, features))
        elif isinstance(message, ToolMessage):
            parts = _user_parts(message, images, image_loader, where)
            if features.tool_role:
                conversation.append({"role": "tool", "content": parts})
            else:
                _append_tool_response(conversation, parts)
        elif isinstance(message, HumanMessage):
            parts = _user_parts(message, images, image_loader, where)
            conversation.append({"role": "user", "content": parts})
        elif isinstance(message, ChatMessage):
            parts = _user_parts(message, images, image_loader, where)
            conversation.append({"role": message.role, "content": parts})
        else:
            raise ValueError(f"{where}: unsupported message type {type(message).__name__}")

    for turn in conversation:
        turn.pop("_tool_responses", None)
    has_system = bool(conversation) and conversation[0]["role"] == "system"
    if tools and not features.tools:
        if has_system:
            system = conversation[0]["content"]
            conversation[0] = {"role": "system", "content": system + _hermes_block(tools)}
        else:
            conversation.insert(0, {"role": "system", "content": render_tools_block(tools)})
    elif not tools and features.tools and has_system:
        # A text-dialect client sent the tools block inside the system prompt: hand the
        # schemas to the template, which renders the same block itself (and a template
        # such as the CodeVision release's renders no system turn without ``tools``).
        split = split_tools_block(conversation[0]["content"])
        if split is not None:
            conversation[0] = {"role": "system", "content": split[0]}
            return Prompt(conversation, images, split[1])
    return Prompt(conversation, images, tools if tools and features.tools else None)


def load_image(block: dict[str, Any], image_loader: ImageLoader | None = None) -> Image.Image:
    """Load the image of a standard ``image`` content block.

    Decoding goes through :func:`langchain_codevision.images.load_image` (size limits,
    corrupt-file messages); remote URLs are only fetched through ``image_loader``.

    Args:
        block: ``{"type": "image", "base64": ..., "mime_type": ...}`` or
            ``{"type": "image", "url": ...}`` where the URL is a ``data:`` URL, a
            ``file://`` URL, a local path, or (with ``image_loader``) an ``http(s)`` URL.
        image_loader: Fetches remote URLs.

    Returns:
        The decoded image, fully loaded.

    Raises:
        ValueError: The block has no usable source or the bytes are not an image.
    """
    if block.get("base64"):
        mime = block.get("mime_type") or "image/png"
        return decode_image(f"data:{mime};base64,{block['base64']}")
    url = block.get("url")
    if not url:
        if block.get("file_id"):
            raise ValueError("image blocks that reference a provider file id are not supported")
        raise ValueError("the image block has neither 'base64' nor 'url'")
    if urlparse(url).scheme in ("http", "https"):
        if image_loader is None:
            raise ValueError(
                f"cannot fetch the remote image {url!r}: local models run offline. Pass the "
                "image as base64 or a local path, or give ChatLocalVLM(image_loader=...) a "
                "function that fetches URLs."
            )
        loaded = image_loader(url)
        if isinstance(loaded, str) and urlparse(loaded).scheme in ("http", "https"):
            raise ValueError(f"image_loader returned a URL again for {url!r}")
        return decode_image(loaded)
    return decode_image(url)


# --------------------------------------------------------------------------- helpers


def _plain_text(message: BaseMessage) -> str:
    return "".join(
        block["text"]
        for block in message.content_blocks
        if block["type"] in ("text", "text-plain") and isinstance(block.get("text"), str)
    )


def _user_parts(
    message: BaseMessage,
    images: list[Image.Image],
    image_loader: ImageLoader | None,
    where: str,
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in message.content_blocks:
        kind = block["type"]
        if kind in ("text", "text-plain"):
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image" or _is_openai_image(block):
            source = block if kind == "image" else _openai_image_block(block)
            try:
                images.append(load_image(source, image_loader))
            except ValueError as exc:
                raise ValueError(f"{where}, image {len(images)}: {exc}") from exc
            parts.append({"type": "image"})
        else:
            raise ValueError(
                f"{where}: content blocks of type {_block_name(block)!r} are not supported "
                "by local vision-language models (text and images are)"
            )
    return parts


def _assistant_turn(message: AIMessage, features: TemplateFeatures) -> dict[str, Any]:
    text = _plain_text(message)
    calls = [(call["name"], call.get("args") or {}) for call in message.tool_calls]
    if calls and features.tool_calls:
        return {
            "role": "assistant",
            "content": text,
            "tool_calls": [
                {"type": "function", "function": {"name": name, "arguments": args}}
                for name, args in calls
            ],
        }
    rendered = [format_tool_call(name, args) for name, args in calls]
    return {"role": "assistant", "content": "\n".join([text, *rendered] if text else rendered)}


def _append_tool_response(conversation: list[dict[str, Any]], parts: list[dict[str, Any]]) -> None:
    """Write a tool result as Qwen does: ``<tool_response>`` blocks inside one user turn."""
    wrapped = wrap_tool_response(parts)
    previous = conversation[-1] if conversation else None
    if previous is not None and previous.get("_tool_responses"):
        previous["content"] = [*previous["content"], {"type": "text", "text": "\n"}, *wrapped]
        return
    conversation.append({"role": "user", "content": wrapped, "_tool_responses": True})


def _is_openai_image(block: dict[str, Any]) -> bool:
    value = block.get("value")
    return (
        block["type"] == "non_standard"
        and isinstance(value, dict)
        and value.get("type") == "image_url"
    )


def _openai_image_block(block: dict[str, Any]) -> dict[str, Any]:
    image_url = block["value"].get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    return {"type": "image", "url": url}


def _block_name(block: dict[str, Any]) -> str:
    value = block.get("value")
    if block["type"] == "non_standard" and isinstance(value, dict):
        return str(value.get("type", "non_standard"))
    return str(block["type"])
