"""The graph's node functions: prepare, model, execute, reflect, force_answer, finish.

Nodes only decide and route; tool calls run through the one
:class:`~langchain_codevision.loop.executor.ToolExecutor`, texts come from the
:class:`~langchain_codevision.protocol.ProtocolProfile`. Sync and async twins share
everything but their I/O (model calls and kernel calls).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.graph.message import REMOVE_ALL_MESSAGES

from langchain_codevision.images import (
    ImageFormat,
    ImageInputError,
    PixelBudget,
    TrajectoryImage,
    as_trajectory_image,
    frozen_pixels,
    load_image,
    trajectory_image,
)
from langchain_codevision.protocol import (
    ANSWER_OPEN,
    TOOL_NAME,
    Dialect,
    ProtocolProfile,
    extract_answer,
    make_failure,
    parse_model_output,
)

from .executor import ToolExecutor
from .kernels import EpisodeKernels
from .messages import (
    encode_step_image,
    images_in_messages,
    model_view,
    opening_messages,
    tool_reply,
)
from .state import CodeVisionState, Decision, PendingCall

__all__ = ["CodeVisionNodes", "Route"]

Route = Literal["execute", "reflect", "force_answer", "finish"]


class CodeVisionNodes:
    """The graph's node functions (sync and async twins share everything but I/O)."""

    def __init__(
        self,
        model: BaseChatModel,
        *,
        dialect: Dialect,
        profile: ProtocolProfile,
        system_prompt: str | None,
        max_turns: int,
        budget: PixelBudget | None,
        image_format: ImageFormat,
        max_images_in_context: int | None,
        tool_images_in_user_message: bool,
        executor: ToolExecutor,
        kernels: EpisodeKernels,
        tools_in_request: bool = False,
    ) -> None:
        self.model = model
        self.dialect = dialect
        self.profile = profile
        if dialect == "tools":
            self.bound = model.bind_tools([profile.schema()])
        elif tools_in_request:  # the server's chat template renders the tools block
            self.bound = model.bind(tools=[profile.schema()], tool_choice="none")
        else:
            self.bound = model
        self.system_prompt = system_prompt
        self.max_turns = max_turns
        self.budget = budget
        self.image_format = image_format
        self.max_images_in_context = max_images_in_context
        self.tool_images_in_user_message = tool_images_in_user_message
        self.executor = executor
        self.kernels = kernels

    # -- prepare ------------------------------------------------------------------------
    def prepare(self, state: CodeVisionState) -> dict[str, Any]:
        """Validate and load the input; build the opening messages."""
        question = state.get("question")
        raw = state.get("image")
        given = list(state.get("messages") or [])
        if raw is None and not given:
            raise ValueError("pass an 'image' and a 'question', or 'messages'")
        if raw is not None:
            if not isinstance(question, str) or not question.strip():
                raise ValueError("'question' must be a non-empty string")
            sources = list(raw) if isinstance(raw, (list, tuple)) else [raw]
            if not sources:
                raise ImageInputError("'image' is an empty list")
            pixels = [_input_pixels(src) for src in sources]
            encoded = [
                encode_step_image(img, i, self.budget, self.image_format)
                for i, img in enumerate(pixels)
            ]
            blocks = [block for block, _ in encoded]
            images = [stored for _, stored in encoded]
            messages = opening_messages(self.system_prompt, blocks, question, self.profile)
        else:
            pixels = images_in_messages(given)
            messages = []
            if self.system_prompt and not any(m.type == "system" for m in given):
                messages.append(SystemMessage(self.system_prompt))
            messages.extend(given)
            images = [trajectory_image(img, i) for i, img in enumerate(pixels)]
        episode_id = uuid.uuid4().hex
        self.kernels.remember(episode_id, dict(enumerate(pixels)))
        update: dict[str, Any] = {
            "images": images,
            "steps": [],
            "turns": 0,
            "answer": None,
            "stop_reason": None,
            "pending": None,
            "episode_id": episode_id,
            "image": None,
        }
        if raw is not None or messages != given:
            update["messages"] = [RemoveMessage(id=REMOVE_ALL_MESSAGES), *messages]
        return update

    # -- model --------------------------------------------------------------------------
    def _view(self, messages: list[Any], state: CodeVisionState) -> list[Any]:
        inputs = sum(1 for item in state.get("images", []) if item["origin"] == "input")
        return model_view(messages, self.max_images_in_context, inputs)

    def _decide(self, reply: AIMessage, state: CodeVisionState) -> dict[str, Any]:
        turn = state.get("turns", 0) + 1
        decide = self._decide_tools if self.dialect == "tools" else self._decide_text
        decision = decide(reply)
        if decision["action"] == "finish":
            return {"messages": [reply], "turns": turn, "pending": decision}
        if turn >= self.max_turns:
            # an answer written beside the unrun call still counts (the release's rule)
            answer = extract_answer(reply.text) if ANSWER_OPEN in reply.text else None
            limit: Decision = {"action": "force_answer", "answer": answer}
            return {"messages": [reply], "turns": turn, "pending": limit}
        used = turn
        if decision["action"] == "execute":
            # Each tool call takes a turn: run only what the budget allows, close the rest.
            allowed = self.max_turns - turn
            calls = decision["calls"]
            if len(calls) > allowed:
                decision["skipped"] = [call["id"] for call in calls[allowed:]]
                decision["calls"] = calls[:allowed]
            used = turn + len(decision["calls"]) - 1
        return {"messages": [reply], "turns": used, "pending": decision}

    def _decide_text(self, reply: AIMessage) -> Decision:
        parsed = parse_model_output(reply.text)
        if parsed.kind == "tool_call":
            call = parsed.tool_calls[0]
            notes = [f"(Note: your tool call was read despite: {fix}.)" for fix in call.repaired]
            if len(parsed.tool_calls) > 1:
                notes.append("(Only the first of your tool calls was run: one call per turn.)")
            pending = _call(call.name, call.arguments, None, notes)
            return {"action": "execute", "calls": [pending], "failures": [], "skipped": []}
        if parsed.kind == "answer" or self.profile.end_on_plain_reply:
            reason = "answer" if parsed.kind == "answer" else "no_tool_call"
            return {"action": "finish", "answer": extract_answer(reply.text), "reason": reason}
        if parsed.kind == "malformed":
            message = "; ".join(parsed.errors) or "the tool call could not be read"
            failure = make_failure("Malformed", message, "malformed", tool_call_id=None)
        else:
            message = "the reply has neither a <tool_call> nor an <answer>"
            failure = make_failure("NoAction", message, "no_action", tool_call_id=None)
        return {"action": "reflect", "failures": [failure]}

    def _decide_tools(self, reply: AIMessage) -> Decision:
        failures = [
            make_failure(
                "Malformed",
                f"invalid tool call arguments: {bad.get('error')}",
                "malformed",
                tool_call_id=bad.get("id"),
            )
            for bad in reply.invalid_tool_calls
        ]
        calls = [_call(tc["name"], tc["args"], tc.get("id"), []) for tc in reply.tool_calls]
        if calls:
            return {"action": "execute", "calls": calls, "failures": failures, "skipped": []}
        if failures:
            return {"action": "reflect", "failures": failures}
        return {"action": "finish", "answer": extract_answer(reply.text), "reason": "answer"}

    def call_model(self, state: CodeVisionState) -> dict[str, Any]:
        """One assistant turn."""
        reply = self.bound.invoke(self._view(state["messages"], state))
        return self._decide(_as_ai(reply), state)

    async def acall_model(self, state: CodeVisionState) -> dict[str, Any]:
        """Async :meth:`call_model`."""
        reply = await self.bound.ainvoke(self._view(state["messages"], state))
        return self._decide(_as_ai(reply), state)

    # -- execute ------------------------------------------------------------------------
    def _open(self, state: CodeVisionState) -> Any:
        return lambda: self.kernels.aget(state["episode_id"], state.get("images", []))

    def execute(self, state: CodeVisionState) -> dict[str, Any]:
        """Run the pending tool calls in the episode's kernel."""
        pending = state.get("pending") or {}
        work = self.executor.run(state, pending, self._open(state))
        return self._executed(work.update(self._reply), pending)

    async def aexecute(self, state: CodeVisionState) -> dict[str, Any]:
        """Async :meth:`execute`."""
        pending = state.get("pending") or {}
        work = await self.executor.arun_anywhere(state, pending, self._open(state))
        return self._executed(work.update(self._reply), pending)

    def _executed(self, update: dict[str, Any], pending: Any) -> dict[str, Any]:
        skipped = pending.get("skipped") or []
        update["messages"] = [*update["messages"], *self._not_run(skipped)]
        return update

    def _not_run(self, call_ids: list[str | None]) -> list[ToolMessage]:
        return [
            ToolMessage(
                self.profile.not_run_text,
                tool_call_id=call_id or "",
                name=TOOL_NAME,
                status="error",
            )
            for call_id in call_ids
        ]

    def _reply(self, blocks: list[dict[str, Any]], call_id: str | None, error: bool) -> list[Any]:
        return tool_reply(
            self.dialect,
            blocks,
            tool_call_id=call_id,
            images_in_user_message=self.tool_images_in_user_message,
            is_error=error,
        )

    # -- reflect ------------------------------------------------------------------------
    def reflect(self, state: CodeVisionState) -> dict[str, Any]:
        """Send each failure back to the model in the profile's words."""
        pending = state.get("pending") or {}
        images = state.get("images", [])
        messages: list[Any] = []
        for item in pending.get("failures", []):
            text = self.executor.failure_text(item, images)
            if item["kind"] in ("Malformed", "NoAction") and self.dialect == "text":
                messages.append(HumanMessage(text))
            else:
                messages.extend(
                    self._reply([{"type": "text", "text": text}], item.get("tool_call_id"), True)
                )
        return {"messages": messages, "pending": None}

    # -- ending -------------------------------------------------------------------------
    def _limit_messages(self, state: CodeVisionState) -> list[Any]:
        last = state["messages"][-1] if state.get("messages") else None
        messages: list[Any] = []
        if isinstance(last, AIMessage) and last.tool_calls:
            messages.extend(self._not_run([call.get("id") for call in last.tool_calls]))
        if self.profile.answer_request is not None:
            messages.append(HumanMessage(self.profile.answer_request))
        return messages

    def _forced(self, state: CodeVisionState, extra: list[Any], reply: Any) -> dict[str, Any]:
        if reply is None:  # the profile sends no answer request: the episode just ends
            pending = state.get("pending") or {}
            return {
                "messages": extra,
                "answer": pending.get("answer"),
                "stop_reason": "turn_limit",
                "pending": None,
            }
        reply = _as_ai(reply)
        answer = None
        if not reply.tool_calls and "<tool_call>" not in reply.text:
            answer = extract_answer(reply.text)
        return {
            "messages": [*extra, reply],
            "answer": answer or None,
            "stop_reason": "turn_limit",
            "pending": None,
        }

    def force_answer(self, state: CodeVisionState) -> dict[str, Any]:
        """Turn limit reached: close open calls and, if the profile says so, ask once more."""
        self.kernels.release(state.get("episode_id"))
        extra = self._limit_messages(state)
        if self.profile.answer_request is None:
            return self._forced(state, extra, None)
        reply = self.model.invoke(self._view([*state["messages"], *extra], state))
        return self._forced(state, extra, reply)

    async def aforce_answer(self, state: CodeVisionState) -> dict[str, Any]:
        """Async :meth:`force_answer`."""
        await self.kernels.arelease(state.get("episode_id"))
        extra = self._limit_messages(state)
        if self.profile.answer_request is None:
            return self._forced(state, extra, None)
        reply = await self.model.ainvoke(self._view([*state["messages"], *extra], state))
        return self._forced(state, extra, reply)

    def finish(self, state: CodeVisionState) -> dict[str, Any]:
        """Record the answer and give the kernel back."""
        self.kernels.release(state.get("episode_id"))
        return self._finished(state)

    async def afinish(self, state: CodeVisionState) -> dict[str, Any]:
        """Async :meth:`finish`."""
        await self.kernels.arelease(state.get("episode_id"))
        return self._finished(state)

    @staticmethod
    def _finished(state: CodeVisionState) -> dict[str, Any]:
        pending = state.get("pending") or {}
        reason = pending.get("reason") or "answer"
        return {"answer": pending.get("answer"), "stop_reason": reason, "pending": None}

    # -- routing ------------------------------------------------------------------------
    @staticmethod
    def route(state: CodeVisionState) -> Route:
        """Where to go after ``model``."""
        pending = state.get("pending") or {}
        action = pending.get("action")
        if action in ("execute", "force_answer", "finish"):
            return action
        return "reflect"

    @staticmethod
    def after_execute(state: CodeVisionState) -> Literal["reflect", "model", "force_answer"]:
        """Failures go to ``reflect``; otherwise back to the model."""
        pending = state.get("pending") or {}
        return "reflect" if pending.get("failures") else "model"


def _pixels_of(source: Any) -> Any:
    """An input kept by the state's reducer (a lazy trajectory image) as its pixels."""
    if isinstance(source, TrajectoryImage):
        return source.image
    if isinstance(source, Mapping) and "png" in source and "index" in source:
        return as_trajectory_image(source).image  # a stored one: decoded, once
    return source


def _input_pixels(source: Any) -> Any:
    """The episode's own pixels of one input: a read-only array where nothing is lost.

    A caller's PIL image is never kept itself (the trajectory keeps pixels, not a live
    object); an array is what the model's view, the kernel and the trajectory all read.
    """
    if isinstance(source, TrajectoryImage) and isinstance(source.pixels, np.ndarray):
        return source.pixels  # an earlier episode's output: read-only already
    image = load_image(_pixels_of(source))
    given = source.image if isinstance(source, TrajectoryImage) else source
    pixels = frozen_pixels(image)
    return image.copy() if pixels is image and image is given else pixels


def _call(name: str, arguments: Any, call_id: str | None, notes: list[str]) -> PendingCall:
    return {"name": name, "arguments": arguments, "id": call_id, "notes": notes}


def _as_ai(reply: Any) -> AIMessage:
    if isinstance(reply, AIMessage):
        return reply
    content = getattr(reply, "content", reply)
    return AIMessage(content=content if isinstance(content, (str, list)) else str(content))
