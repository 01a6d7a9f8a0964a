r"""Protocol profiles: everything a model sees, as one frozen object.

A :class:`ProtocolProfile` owns the system prompt, the tool schema and how it is shown, the
layout of the user's turn, the reply texts, the names the code gets, where the result is
looked up, the turn-limit rule, the tool-text cap and the image pixel budget.

* :data:`RELEASE`: the CodeVision release byte for byte (its prompt, schema, ``# Tools``
  block, ``"<image>\nQuestion"`` user turn, reply texts, bound names ``PIL, numpy, cv, PI,
  E``, lookup ``result, output, processed_image, img, image``, 12 turns with no extra
  answer request, tool text capped at 10,240 characters, images up to 1024·8·28·28 px). For
  the release's fine-tuned models, its data and RL parity.
* :data:`DEFAULT`: this package's richer protocol (tracebacks, hints, printed output,
  persistent state, one last answer request at the limit) for API models.

Example:
    >>> import dataclasses
    >>> mine = dataclasses.replace(get_profile("release"), name="mine", max_turns=6)
    >>> mine.max_turns, get_profile(mine) is mine
    (6, True)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._release import release_system_prompt, release_tool_schema
from .prompts import FINAL_ANSWER_REQUEST, TEXT_SYSTEM_PROMPT, TOOLS_SYSTEM_PROMPT, Dialect
from .replies import NOT_RUN_TEXT, DefaultReplies, ReleaseReplies
from .schema import render_tools_block, tool_schema

__all__ = ["DEFAULT", "RELEASE", "ProtocolProfile", "get_profile"]

IMAGE_TOKEN = "<image>"

_COMMON_NAMES = (
    "Image",
    "ImageEnhance",
    "ImageFilter",
    "ImageOps",
    "ImageDraw",
    "ImageFont",
    "np",
    "math",
    "cv2",
    "image",
    "img",
    "draw",
)
_RELEASE_PREAMBLE = "import PIL\nimport numpy\ncv = cv2\nPI = math.pi\nE = math.e\n"


@dataclass(frozen=True)
class ProtocolProfile:
    r"""Everything the model sees, and the loop rules that go with it.

    Attributes:
        name: A short name (``"release"``, ``"default"``, or your own).
        system_prompt: The text dialect's system prompt (before any tools block).
        tools_system_prompt: The tools dialect's system prompt.
        tool_schema: The ``code_image_tool`` schema (OpenAI function format).
        tools_block_in_system: Text dialect: append the rendered ``# Tools`` block to the
            system prompt (as the release's chat template renders ``tools=[schema]``).
        image_prefix: ``None``: the user turn is ``[image, ..., question]``; a string such
            as ``"<image>\n"``: the turn is that string once per image, then the question,
            with each ``<image>`` replaced by the image (the release's ``"<image>\nQ"``).
        replies: Reply texts for success and each error.
        preamble: Code run once in each episode's kernel (extra bound names).
        bound_names: Names the code can use without import (documentation and checks).
        result_names: Where the result image is looked up, in order.
        max_turns: Assistant turns per episode (each extra tool call in one reply counts).
        answer_request: Sent once at the turn limit to ask for an answer without tools;
            ``None``: no extra request (a call in the last turn is simply not run).
        end_on_plain_reply: A text reply with neither a tool call nor an answer ends the
            episode (the release) instead of being answered with a correction.
        max_tool_text_chars: Cap on a tool reply's text (``None``: none).
        min_pixels: Smallest area of images shown to the model.
        max_pixels: Largest area of images shown to the model (the tool uses originals).
        max_code_chars: Longest code accepted.
        max_aspect_ratio: Results at or above this aspect ratio are rejected.
        not_run_text: Reply closing a tool call the turn budget does not allow.
    """

    name: str
    system_prompt: str
    tools_system_prompt: str
    tool_schema: dict[str, Any] = field(repr=False)
    tools_block_in_system: bool = False
    image_prefix: str | None = None
    replies: DefaultReplies | ReleaseReplies = field(default_factory=DefaultReplies)
    preamble: str = ""
    bound_names: tuple[str, ...] = _COMMON_NAMES
    result_names: tuple[str, ...] = ("result", "output", "image")
    max_turns: int = 12
    answer_request: str | None = FINAL_ANSWER_REQUEST
    end_on_plain_reply: bool = False
    max_tool_text_chars: int | None = None
    min_pixels: int | None = 4 * 28 * 28
    max_pixels: int | None = 1024 * 28 * 28
    max_code_chars: int = 2048
    max_aspect_ratio: float = 200.0
    not_run_text: str = NOT_RUN_TEXT

    def schema(self) -> dict[str, Any]:
        """A fresh copy of the tool schema (safe to hand to ``bind_tools``)."""
        return copy.deepcopy(self.tool_schema)

    def system_message(self, dialect: Dialect) -> str:
        """The system message's text for ``dialect`` (text: with the tools block if set)."""
        if dialect == "tools":
            return self.tools_system_prompt
        if self.tools_block_in_system:
            return self.system_prompt + render_tools_block([self.tool_schema])
        return self.system_prompt

    def question_content(
        self, image_blocks: Sequence[dict[str, Any]], question: str
    ) -> list[dict[str, Any]]:
        """The user turn's content blocks: the images and the question in this layout."""
        if self.image_prefix is None:
            return [*image_blocks, {"type": "text", "text": question}]
        text = self.image_prefix * len(image_blocks) + question
        pieces = text.split(IMAGE_TOKEN)
        if len(pieces) != len(image_blocks) + 1:
            raise ValueError(
                f"the question holds {len(pieces) - 1 - len(image_blocks)} stray "
                f"{IMAGE_TOKEN!r} placeholder(s)"
            )
        content: list[dict[str, Any]] = []
        for piece, block in zip(pieces, [*image_blocks, None], strict=True):
            if piece:
                content.append({"type": "text", "text": piece})
            if block is not None:
                content.append(dict(block))
        return content

    def cap_text(self, text: str) -> str:
        """``text`` cut at :attr:`max_tool_text_chars`."""
        limit = self.max_tool_text_chars
        return text if limit is None or len(text) <= limit else text[:limit]


DEFAULT = ProtocolProfile(
    name="default",
    system_prompt=TEXT_SYSTEM_PROMPT,
    tools_system_prompt=TOOLS_SYSTEM_PROMPT,
    tool_schema=tool_schema(),
)
"""This package's protocol: rich replies, hints, printed output, one answer request."""

RELEASE = ProtocolProfile(
    name="release",
    system_prompt=release_system_prompt(),
    tools_system_prompt=release_system_prompt(),
    tool_schema=release_tool_schema(),
    tools_block_in_system=True,
    image_prefix=IMAGE_TOKEN + "\n",
    replies=ReleaseReplies(),
    preamble=_RELEASE_PREAMBLE,
    bound_names=("PIL", "numpy", "cv", "PI", "E", *_COMMON_NAMES),
    result_names=("result", "output", "processed_image", "img", "image"),
    max_turns=12,
    answer_request=None,
    end_on_plain_reply=True,
    max_tool_text_chars=10_240,
    max_pixels=1024 * 8 * 28 * 28,
)
"""The CodeVision release's protocol, byte for byte."""

_NAMED = {"default": DEFAULT, "release": RELEASE}


def get_profile(profile: str | ProtocolProfile | None = None) -> ProtocolProfile:
    """Resolve a profile name (``"release"``, ``"default"``) or pass a profile through.

    Args:
        profile: A name, a :class:`ProtocolProfile`, or ``None`` (the default profile).

    Returns:
        The profile.

    Raises:
        ValueError: An unknown name.
    """
    if profile is None:
        return DEFAULT
    if isinstance(profile, ProtocolProfile):
        return profile
    try:
        return _NAMED[profile]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown protocol profile {profile!r}; use 'release', 'default' or a ProtocolProfile"
        ) from None
