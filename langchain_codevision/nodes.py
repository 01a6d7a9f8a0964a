"""The graph's node functions: prepare, model, execute, reflect, force_answer, finish.

Sync and async twins share everything but their I/O (model calls and kernel calls).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.graph.message import REMOVE_ALL_MESSAGES

from ._execution import ToolExecutor
from .episodes import EpisodeKernels
from .images import ImageFormat, ImageInputError, PixelBudget, load_image, trajectory_image
from .messages import (
    encode_step_image,
    images_in_messages,
    model_view,
    opening_messages,
    tool_reply,
)
from .parsing import parse_model_output
from .protocol import (
    FINAL_ANSWER_REQUEST,
    TOOL_NAME,
    Dialect,
    tool_schema,
)
from .reflect import failure_reply
from .state import CodeVisionState

Route = Literal["execute", "reflect", "force_answer", "finish"]


def extract_answer(text: str) -> str:
    """The content of ``<answer>`` tags if present, else the stripped text."""
    parsed = parse_model_output(text)
    return parsed.answer if parsed.answer is not None else text.strip()


class CodeVisionNodes:
    """The graph's node functions (sync and async twins share everything but I/O)."""

    def __init__(
        self,
        model: BaseChatModel,
        *,
        dialect: Dialect,
        system_prompt: str | None,
        max_turns: int,
        budget: PixelBudget | None,
        image_format: ImageFormat,
        max_images_in_context: int | None,
        tool_images_in_user_message: bool,
        executor: ToolExecutor,
        kernels: EpisodeKernels,
    ) -> None:
        self.model = model
        self.dialect = dialect
        self.bound = model.bind_tools([tool_schema()]) if dialect == "tools" else model
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
            pil = [load_image(src) for src in sources]
            encoded = [
                encode_step_image(img, i, self.budget, self.image_format)
                for i, img in enumerate(pil)
            ]
            blocks = [block for block, _ in encoded]
            images = [stored for _, stored in encoded]
            messages = opening_messages(self.system_prompt, blocks, question)
        else:
            pil = images_in_messages(given)
            messages = []
            if self.system_prompt and not any(m.type == "system" for m in given):
                messages.append(SystemMessage(self.system_prompt))
            messages.extend(given)
            images = [trajectory_image(img, i) for i, img in enumerate(pil)]
        episode_id = uuid.uuid4().hex
        self.kernels.remember(episode_id, dict(enumerate(pil)))
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
    def _view(self, state: CodeVisionState) -> list[Any]:
        inputs = sum(1 for item in state.get("images", []) if item["origin"] == "input")
        return model_view(state["messages"], self.max_images_in_context, inputs)

    def _decide(self, reply: AIMessage, state: CodeVisionState) -> dict[str, Any]:
        turns = state.get("turns", 0) + 1
        decide = self._decide_tools if self.dialect == "tools" else self._decide_text
        pending = decide(reply)
        if pending["action"] != "finish" and turns >= self.max_turns:
            pending = {**pending, "action": "force_answer"}
        return {"messages": [reply], "turns": turns, "pending": pending}

    def _decide_text(self, reply: AIMessage) -> dict[str, Any]:
        parsed = parse_model_output(reply.text)
        if parsed.kind == "tool_call":
            call = parsed.tool_calls[0]
            notes = [f"(Note: your tool call was read despite: {fix}.)" for fix in call.repaired]
            if len(parsed.tool_calls) > 1:
                notes.append("(Only the first of your tool calls was run: one call per turn.)")
            return {"action": "execute", "calls": [_call(call.name, call.arguments, None, notes)]}
        if parsed.kind == "answer":
            return {"action": "finish", "answer": parsed.answer}
        if parsed.kind == "malformed":
            message = "; ".join(parsed.errors) or "the tool call could not be read"
            return {"action": "reflect", "failures": [_failure(None, "Malformed", message)]}
        return {
            "action": "reflect",
            "failures": [
                _failure(None, "NoAction", "the reply has neither a <tool_call> nor an <answer>")
            ],
        }

    def _decide_tools(self, reply: AIMessage) -> dict[str, Any]:
        failures = [
            _failure(bad.get("id"), "Malformed", f"invalid tool call arguments: {bad.get('error')}")
            for bad in reply.invalid_tool_calls
        ]
        calls = [_call(tc["name"], tc["args"], tc.get("id"), []) for tc in reply.tool_calls]
        if calls:
            return {"action": "execute", "calls": calls, "failures": failures}
        if failures:
            return {"action": "reflect", "failures": failures}
        return {"action": "finish", "answer": extract_answer(reply.text)}

    def call_model(self, state: CodeVisionState) -> dict[str, Any]:
        """One assistant turn."""
        reply = self.bound.invoke(self._view(state))
        return self._decide(_as_ai(reply), state)

    async def acall_model(self, state: CodeVisionState) -> dict[str, Any]:
        """Async :meth:`call_model`."""
        reply = await self.bound.ainvoke(self._view(state))
        return self._decide(_as_ai(reply), state)

    # -- execute ------------------------------------------------------------------------
    def execute(self, state: CodeVisionState) -> dict[str, Any]:
        """Run the pending tool calls in the episode's kernel."""
        work = self.executor.plan(state, state.get("pending") or {})
        if work.needs_kernel:
            session = self.kernels.get(state["episode_id"], state.get("images", []))
            for call in work.runnable:
                result = session.execute(**work.kernel_kwargs(call))
                for index, image in work.record(call, result):
                    session.put_image(index, image)
        return work.update(self._reply)

    async def aexecute(self, state: CodeVisionState) -> dict[str, Any]:
        """Async :meth:`execute`."""
        work = self.executor.plan(state, state.get("pending") or {})
        if work.needs_kernel:
            session = await self.kernels.aget(state["episode_id"], state.get("images", []))
            for call in work.runnable:
                result = await session.aexecute(**work.kernel_kwargs(call))
                for index, image in work.record(call, result):
                    await session.aput_image(index, image)
        return work.update(self._reply)

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
        """Send each failure back to the model with a hint."""
        pending = state["pending"] or {}
        images = state.get("images", [])
        messages: list[Any] = []
        for item in pending.get("failures", []):
            text = failure_reply(item, images)
            if item["kind"] in ("Malformed", "NoAction") and self.dialect == "text":
                messages.append(HumanMessage(text))
            else:
                messages.extend(
                    self._reply([{"type": "text", "text": text}], item.get("tool_call_id"), True)
                )
        return {"messages": messages, "pending": None}

    # -- ending -------------------------------------------------------------------------
    def _force_messages(self, state: CodeVisionState) -> list[Any]:
        messages: list[Any] = []
        last = state["messages"][-1] if state.get("messages") else None
        if isinstance(last, AIMessage) and last.tool_calls:
            for call in last.tool_calls:
                messages.append(
                    ToolMessage(
                        "Not run: the tool-call limit is reached.",
                        tool_call_id=call.get("id") or "",
                        name=TOOL_NAME,
                        status="error",
                    )
                )
        messages.append(HumanMessage(FINAL_ANSWER_REQUEST))
        return messages

    def _forced(self, extra: list[Any], reply: Any) -> dict[str, Any]:
        reply = _as_ai(reply)
        answer = parse_model_output(reply.text).answer
        if answer is None and not reply.tool_calls and "<tool_call>" not in reply.text:
            answer = reply.text.strip() or None
        return {
            "messages": [*extra, reply],
            "answer": answer,
            "stop_reason": "turn_limit",
            "pending": None,
        }

    def force_answer(self, state: CodeVisionState) -> dict[str, Any]:
        """Turn limit reached: ask once more for an answer, without tools."""
        self.kernels.release(state.get("episode_id"))
        extra = self._force_messages(state)
        view = model_view([*state["messages"], *extra], self.max_images_in_context, 1)
        return self._forced(extra, self.model.invoke(view))

    async def aforce_answer(self, state: CodeVisionState) -> dict[str, Any]:
        """Async :meth:`force_answer`."""
        await self.kernels.arelease(state.get("episode_id"))
        extra = self._force_messages(state)
        view = model_view([*state["messages"], *extra], self.max_images_in_context, 1)
        return self._forced(extra, await self.model.ainvoke(view))

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
        return {"answer": pending.get("answer"), "stop_reason": "answer", "pending": None}

    # -- routing ------------------------------------------------------------------------
    @staticmethod
    def route(state: CodeVisionState) -> Route:
        """Where to go after ``model`` or ``execute``."""
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


def _call(name: str, arguments: Any, call_id: str | None, notes: list[str]) -> dict[str, Any]:
    return {"name": name, "arguments": arguments, "id": call_id, "notes": notes}


def _failure(call_id: str | None, kind: str, message: str) -> dict[str, Any]:
    return {"tool_call_id": call_id, "kind": kind, "message": message}


def _as_ai(reply: Any) -> AIMessage:
    if isinstance(reply, AIMessage):
        return reply
    content = getattr(reply, "content", reply)
    return AIMessage(content=content if isinstance(content, (str, list)) else str(content))
