"""The CodeVision graph's state, input and output schemas."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

from .images import TrajectoryImage, serialisable_image_input


class Step(TypedDict, total=False):
    """One tool call, as recorded in ``state["steps"]``.

    Keys: ``step``, ``turn``, ``tool_call_id``, ``code`` (as run), ``original_code`` (when
    repaired), ``description``, ``image_index``, ``ok``, ``error``, ``output_indices``,
    ``stdout``, ``duration_s``, ``timed_out``, ``restarted``, ``repaired``.
    """

    step: int
    turn: int
    tool_call_id: str | None
    code: str
    original_code: str | None
    description: str
    image_index: int | None
    ok: bool
    error: str | None
    output_indices: list[int]
    stdout: str
    duration_s: float
    timed_out: bool
    restarted: bool
    repaired: list[str]


class CodeVisionInput(TypedDict, total=False):
    """What ``graph.invoke`` accepts: an image (or several) and a question, or messages."""

    image: Any
    question: str
    messages: list[AnyMessage]


class CodeVisionOutput(TypedDict, total=False):
    """What ``graph.invoke`` returns."""

    answer: str | None
    images: list[TrajectoryImage]
    messages: list[AnyMessage]
    steps: list[Step]
    stop_reason: str | None
    turns: int


class CodeVisionState(TypedDict, total=False):
    """The full working state of one episode.

    Attributes:
        messages: The conversation the model sees (system, user, AI, tool replies).
        image: The input image(s) as given (consumed by the first node).
        question: The user's question.
        images: Every image of the episode, full resolution: inputs first, then tool outputs.
        steps: One record per tool call.
        answer: The final answer (``None`` until there is one).
        stop_reason: ``"answer"``, ``"turn_limit"``.
        turns: Assistant turns so far.
        episode_id: Key of the episode's kernel.
        pending: What the last node decided (internal routing data).
    """

    messages: Annotated[list[AnyMessage], add_messages]
    image: Annotated[Any, serialisable_image_input]
    question: str
    images: list[TrajectoryImage]
    steps: list[Step]
    answer: str | None
    stop_reason: str | None
    turns: int
    episode_id: str
    pending: dict[str, Any] | None
