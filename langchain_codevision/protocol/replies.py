"""What the model reads after a tool call: success and error texts of both profiles.

* :class:`DefaultReplies`: this package's richer replies (result sizes, printed output,
  tracebacks trimmed to the user's frames, targeted hints, notes on repairs).
* :class:`ReleaseReplies`: the CodeVision release's exact strings (``Here is the processed
  image. ...`` and its ``Error: ...`` heads, with or without the shared tail).

Both are frozen dataclasses with the same two methods, ``success`` and ``failure``; derive
new texts with :func:`dataclasses.replace`. In the text dialect a reply travels inside
``<tool_response>`` tags (:func:`wrap_tool_response`), as Qwen chat templates render a
``tool`` turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .hints import hint_for

__all__ = [
    "NOT_RUN_TEXT",
    "RELEASE_SUCCESS",
    "RELEASE_TAIL",
    "TOOL_RESPONSE_CLOSE",
    "TOOL_RESPONSE_OPEN",
    "TOOL_TURN_MARK",
    "DefaultReplies",
    "ReleaseReplies",
    "error_text",
    "success_text",
    "unwrap_tool_response",
    "wrap_tool_response",
]

TOOL_RESPONSE_OPEN = "<tool_response>\n"
TOOL_RESPONSE_CLOSE = "\n</tool_response>"
TOOL_TURN_MARK = "codevision_tool_response"
"""``additional_kwargs`` key marking a user turn that carries a tool reply (text dialect)."""

NOT_RUN_TEXT = "Not run: the tool-call limit is reached."
"""The reply closing a tool call that the turn budget does not allow to run."""

RELEASE_TAIL = (
    " Please keep thinking step-by-step inside the <think></think> tags to determine the next "
    "action. If additional tools are required, call them inside the <tool_calls></tool_calls> "
    "tags. Otherwise, provide your final answer within the <answer></answer> tags."
)
RELEASE_SUCCESS = "Here is the processed image. Now, analyze the returned results." + RELEASE_TAIL


def wrap_tool_response(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Wrap content blocks in ``<tool_response>`` tags (text dialect)."""
    return [
        {"type": "text", "text": TOOL_RESPONSE_OPEN},
        *blocks,
        {"type": "text", "text": TOOL_RESPONSE_CLOSE},
    ]


def unwrap_tool_response(text: str) -> str:
    """Remove the ``<tool_response>`` wrapping that :func:`wrap_tool_response` added."""
    if text.startswith(TOOL_RESPONSE_OPEN):
        text = text[len(TOOL_RESPONSE_OPEN) :]
    if text.endswith(TOOL_RESPONSE_CLOSE):
        text = text[: -len(TOOL_RESPONSE_CLOSE)]
    return text


def success_text(
    indices: Sequence[int], sizes: Sequence[tuple[int, int]], stdout: str, notes: Sequence[str]
) -> str:
    """The default profile's instruction after the images of a successful call."""
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
    """The default profile's reply to a failed call; starts with ``Error:``."""
    lines = [f"Error: {message.strip()}"]
    if stdout.strip():
        lines.append(f"Printed output before the error:\n{stdout.rstrip()}")
    if hint:
        lines.append(f"Hint: {hint}")
    lines.append("Fix the problem and call the tool again, or give the final answer.")
    return "\n".join(lines)


@dataclass(frozen=True)
class DefaultReplies:
    """This package's replies: sizes, printed output, trimmed tracebacks and hints."""

    def success(
        self,
        indices: Sequence[int],
        sizes: Sequence[tuple[int, int]],
        stdout: str,
        notes: Sequence[str],
    ) -> str:
        """The text after the result image(s)."""
        return success_text(indices, sizes, stdout, notes)

    def failure(self, failure: Mapping[str, Any], images: Sequence[Mapping[str, Any]]) -> str:
        """The ``Error: ...`` text for ``failure`` (``images``: the trajectory so far)."""
        kind, message = failure.get("kind", "Error"), failure.get("message", "")
        index = failure.get("image_index")
        size = None
        if isinstance(index, int) and 0 <= index < len(images):
            size = (images[index]["width"], images[index]["height"])
        hint = hint_for(
            failure,
            code=failure.get("code", ""),
            image_count=len(images),
            image_size=size,
            variables=failure.get("variables"),
        )
        trace = failure.get("traceback", "")
        if trace:
            body = f"{kind}: {message}\n{trace}"
        elif kind in ("Malformed", "NoAction", "BadArguments"):
            body = message
        else:
            body = f"{kind}: {message}" if message else kind
        return error_text(body, hint, failure.get("stdout", ""))


@dataclass(frozen=True)
class ReleaseReplies:
    """The CodeVision release's reply texts, exactly (``{...}`` fields are filled in)."""

    success_reply: str = RELEASE_SUCCESS
    tail: str = RELEASE_TAIL
    missing_code: str = "Error: 'code' parameter is missing or not a string."
    bad_index: str = "Error: 'image_index' must be a non-negative integer."
    index_range: str = "Error: image_index {index} is out of range. Available images: 0 to {last}."
    message: str = "Error: {message}."
    execution: str = "Code execution error: {error}"
    processing: str = "Error processing image {index}: {error}."
    no_image: str = "Error: Code must return a PIL Image object."
    bad_size: str = (
        "Error: The result has an invalid image size ({width}x{height}). Width and height "
        "must be positive. Please check your code."
    )
    bad_aspect: str = (
        "Error: The result has an invalid image aspect ratio ({width}x{height}, "
        "aspect={aspect:.2f}) >= {limit:.1f}. Please check your code."
    )
    max_aspect_ratio: float = 200.0

    def success(
        self,
        indices: Sequence[int],
        sizes: Sequence[tuple[int, int]],
        stdout: str,
        notes: Sequence[str],
    ) -> str:
        """The fixed text after the result image (printed output is not shown)."""
        return self.success_reply

    def failure(self, failure: Mapping[str, Any], images: Sequence[Mapping[str, Any]]) -> str:
        """The release's ``Error: ...`` text for ``failure``."""
        reason = failure.get("reason", "execution")
        width, height = [*(failure.get("size") or []), 0, 0][:2]
        if reason == "missing_code":
            return self.missing_code + self.tail
        if reason == "bad_index":
            return self.bad_index + self.tail
        if reason == "index_range":
            last = failure.get("available", len(images)) - 1
            return self.index_range.format(index=failure.get("image_index"), last=last) + self.tail
        if reason == "no_image":
            return self.no_image
        if reason == "bad_size":
            return self.bad_size.format(width=width, height=height)
        if reason == "bad_aspect":
            return self.bad_aspect.format(
                width=width,
                height=height,
                aspect=failure.get("aspect", 0.0),
                limit=self.max_aspect_ratio,
            )
        if reason == "processing":
            return (
                self.processing.format(
                    index=failure.get("image_index"), error=failure.get("message", "")
                )
                + self.tail
            )
        text = failure.get("message", "")
        if reason == "execution":
            text = self.execution.format(error=text or failure.get("kind", "error"))
        return self.message.format(message=text) + self.tail
