"""The one failure record of the loop: what went wrong in a tool call or a reply.

A :class:`Failure` is a plain ``TypedDict`` (graph state holds it, so it must serialise
with any checkpointer). ``kind`` names the exception or protocol failure; ``reason`` is the
machine-readable cause that profiles map to their reply texts.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

__all__ = ["Failure", "FailureReason", "make_failure"]

FailureReason = Literal[
    "missing_code",
    "bad_index",
    "index_range",
    "code_too_long",
    "unknown_tool",
    "not_object",
    "execution",
    "no_image",
    "bad_size",
    "bad_aspect",
    "bad_image",
    "processing",
    "malformed",
    "no_action",
]


class Failure(TypedDict, total=False):
    """What went wrong in one tool call (or one reply).

    Attributes:
        kind: Exception name, or a protocol failure (``"BadArguments"``, ``"NoImage"``,
            ``"BadImage"``, ``"Malformed"``, ``"NoAction"``).
        message: One-line description.
        reason: The cause, for reply texts (see :data:`FailureReason`).
        traceback: Trimmed traceback text.
        tool_call_id: The call it belongs to (tools dialect).
        code: The code as it was run.
        image_index: The image the call selected.
        variables: What the result variables held (from the kernel).
        stdout: Printed output before the failure.
        size: ``[width, height]`` of a rejected result.
        aspect: Aspect ratio of a rejected result.
        available: How many images existed when the call was made.
    """

    kind: str
    message: str
    reason: str
    traceback: str
    tool_call_id: str | None
    code: str
    image_index: Any
    variables: list[dict[str, Any]]
    stdout: str
    size: list[int]
    aspect: float
    available: int


def make_failure(kind: str, message: str, reason: str | None = None, **details: Any) -> Failure:
    """Build a :class:`Failure`.

    Args:
        kind: Exception name or protocol failure kind.
        message: One-line description.
        reason: The cause (defaults to ``"execution"`` for exception kinds).
        **details: Further :class:`Failure` keys.

    Returns:
        The failure record.
    """
    record: Failure = {"kind": kind, "message": message, "reason": reason or "execution"}
    record.update(details)  # type: ignore[typeddict-item]
    return record
