"""The CodeVision graph's state, its input and output schemas, and its routing decision.

After each model turn the graph records one :data:`Decision` in ``state["pending"]``:
:class:`ExecuteDecision` (tool calls to run), :class:`ReflectDecision` (failures to answer),
:class:`FinishDecision` (an answer) or :class:`LimitDecision` (the turn limit). All are
plain ``TypedDict`` values so any checkpointer stores them; failures are
:class:`~langchain_codevision.protocol.Failure` records.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

from langchain_codevision.images import TrajectoryImage, serialisable_image_input
from langchain_codevision.protocol import Failure

__all__ = [
    "CodeVisionInput",
    "CodeVisionOutput",
    "CodeVisionState",
    "Decision",
    "ExecuteDecision",
    "FinishDecision",
    "LimitDecision",
    "PendingCall",
    "ReflectDecision",
    "Step",
]


class PendingCall(TypedDict):
    """One tool call read from a model turn, before validation."""

    name: str
    arguments: Any
    id: str | None
    notes: list[str]


class ExecuteDecision(TypedDict):
    """Run ``calls``; ``failures`` (invalid calls of the same turn) are answered too."""

    action: Literal["execute"]
    calls: list[PendingCall]
    failures: list[Failure]
    skipped: list[str | None]


class ReflectDecision(TypedDict):
    """Answer each failure with a correction, then ask the model again."""

    action: Literal["reflect"]
    failures: list[Failure]


class FinishDecision(TypedDict):
    """The episode ends with ``answer``; ``reason`` becomes the ``stop_reason``."""

    action: Literal["finish"]
    answer: str | None
    reason: Literal["answer", "no_tool_call"]


class LimitDecision(TypedDict):
    """The turn limit is reached; ``answer`` is what the last turn gave, if anything."""

    action: Literal["force_answer"]
    answer: str | None


Decision = ExecuteDecision | ReflectDecision | FinishDecision | LimitDecision


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
    """What ``graph.invoke`` returns (``trajectory_images(out)``: its images as PIL)."""

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
        images: Every image of the episode, full resolution: inputs first, then tool outputs
            (:class:`~langchain_codevision.images.TrajectoryImage`: pixels in memory, lossless
            PNG made only when a checkpointer or an export asks;
            :func:`~langchain_codevision.images.trajectory_images` gives PIL copies).
        steps: One record per tool call.
        answer: The final answer (``None`` until there is one).
        stop_reason: ``"answer"``, ``"turn_limit"``, or ``"no_tool_call"`` (a profile that
            ends the episode on a reply with neither a tool call nor an answer).
        turns: Assistant turns so far.
        episode_id: Key of the episode's kernel.
        pending: What the last node decided (a :data:`Decision`).
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
    pending: Decision | None
