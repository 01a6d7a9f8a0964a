"""The CodeVision graph: model -> execute -> reflect -> model, until an answer.

Example:
    >>> from langchain_openai import ChatOpenAI
    >>> graph = create_codevision_graph(ChatOpenAI(model="gpt-4o"))
    >>> out = graph.invoke({"image": "page.png", "question": "What is the title?"})
    >>> out["answer"], out["stop_reason"], len(out["steps"])

Nodes: ``prepare`` (load and validate input, open the episode), ``model`` (one assistant
turn), ``execute`` (run tool calls in the episode's kernel), ``reflect`` (turn failures into
feedback), ``force_answer`` (turn limit reached: one last request without tools) and
``finish``. The episode's kernel comes from a :class:`~langchain_codevision.kernel.KernelPool`
and is always given back.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES

from ._execution import ToolExecutor
from .checkpointing import image_aware
from .episodes import EpisodeKernels
from .images import ImageFormat, ImageInputError, PixelBudget, load_image, trajectory_image
from .kernel import KernelPool
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
    default_system_prompt,
    tool_schema,
)
from .reflect import failure_reply
from .state import CodeVisionInput, CodeVisionOutput, CodeVisionState

Route = Literal["execute", "reflect", "force_answer", "finish"]


def resolve_dialect(model: BaseChatModel, dialect: str = "auto") -> Dialect:
    """Pick ``"text"`` or ``"tools"`` for ``model``.

    ``"auto"``: a model may declare ``codevision_dialect``; local adapters and ChatOpenAI
    pointed at a non-OpenAI server (vLLM, SGLang serving a fine-tuned model) speak text;
    other models that implement ``bind_tools`` use native tool calling.
    """
    if dialect in ("text", "tools"):
        return dialect  # type: ignore[return-value]
    if dialect != "auto":
        raise ValueError(f"dialect must be 'auto', 'text' or 'tools', got {dialect!r}")
    declared = getattr(model, "codevision_dialect", None)
    if declared in ("text", "tools"):
        return declared
    name = type(model).__name__
    if name in ("ChatLocalVLM", "ChatHuggingFace"):
        return "text"
    if name in ("ChatOpenAI", "AzureChatOpenAI"):
        base = str(getattr(model, "openai_api_base", None) or "")
        return "tools" if not base or "openai.com" in base or "azure" in base else "text"
    try:
        model.bind_tools([tool_schema()])
    except NotImplementedError:
        return "text"
    return "tools"


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


def _guarded(
    nodes: CodeVisionNodes, fn: Callable[..., Any], afn: Callable[..., Any] | None
) -> RunnableLambda:
    """Wrap a node so that the episode's kernel is released if the node raises."""

    @functools.wraps(fn)
    def sync(state: CodeVisionState) -> Any:
        try:
            return fn(state)
        except BaseException:
            nodes.kernels.release(state.get("episode_id"))
            raise

    if afn is None:
        return RunnableLambda(sync, name=fn.__name__)

    @functools.wraps(afn)
    async def run_async(state: CodeVisionState) -> Any:
        try:
            return await afn(state)
        except BaseException:
            await nodes.kernels.arelease(state.get("episode_id"))
            raise

    return RunnableLambda(sync, afunc=run_async, name=fn.__name__)


def create_codevision_graph(
    model: BaseChatModel,
    *,
    dialect: Literal["auto", "text", "tools"] = "auto",
    system_prompt: str | None = None,
    max_turns: int = 12,
    max_code_chars: int = 2048,
    max_aspect_ratio: float = 200.0,
    min_pixels: int | None = 4 * 28 * 28,
    max_pixels: int | None = 1024 * 28 * 28,
    image_format: ImageFormat = "png",
    max_images_in_context: int | None = 8,
    tool_images_in_user_message: bool = False,
    repair: bool = False,
    code_timeout: float | None = None,
    pool: KernelPool | None = None,
    checkpointer: Any = None,
    name: str = "codevision",
) -> Any:
    """Build the CodeVision graph around any LangChain chat model.

    Args:
        model: The chat model (ChatOpenAI, a local ``ChatLocalVLM``, ...).
        dialect: ``"text"`` (tags in plain text), ``"tools"`` (native tool calling) or
            ``"auto"`` (see :func:`resolve_dialect`).
        system_prompt: Overrides the built-in prompt of the dialect (``""`` for none).
        max_turns: Assistant turns before the final answer is requested (reference: 12).
        max_code_chars: Longest code accepted in a tool call (reference: 2048).
        max_aspect_ratio: Tool outputs at or above this aspect ratio are rejected (200).
        min_pixels: Smallest area of images shown to the model.
        max_pixels: Largest area of images shown to the model (the tool uses originals).
        image_format: Encoding of images sent to the model (``"png"`` keeps text sharp).
        max_images_in_context: Most images in one model request (inputs always kept; the
            oldest intermediate images are replaced by a note). ``None``: no cap.
        tool_images_in_user_message: Send tool images in a following user message, for
            servers that reject images inside ``role: tool`` (tools dialect).
        repair: Repair code before running it (fences, indentation, crop boxes).
        code_timeout: Seconds per tool call (default: the pool's kernel limit).
        pool: Kernel pool (default: a shared pool of 2 warm kernels).
        checkpointer: A LangGraph checkpointer (state, images included, serialises).
        name: The graph's name.

    Returns:
        A compiled LangGraph: ``invoke({"image": ..., "question": ...})`` returns
        ``answer``, ``images``, ``messages``, ``steps``, ``stop_reason`` and ``turns``.
    """
    if max_turns < 1:
        raise ValueError(f"max_turns must be >= 1, got {max_turns}")
    chosen = resolve_dialect(model, dialect)
    budget = None
    if min_pixels is not None or max_pixels is not None:
        budget = PixelBudget(min_pixels or 1, max_pixels or 10**12)
    prompt = default_system_prompt(chosen) if system_prompt is None else system_prompt
    nodes = CodeVisionNodes(
        model,
        dialect=chosen,
        system_prompt=prompt or None,
        max_turns=max_turns,
        budget=budget,
        image_format=image_format,
        max_images_in_context=max_images_in_context,
        tool_images_in_user_message=tool_images_in_user_message,
        executor=ToolExecutor(
            max_code_chars=max_code_chars,
            max_aspect_ratio=max_aspect_ratio,
            repair=repair,
            timeout=code_timeout,
            budget=budget,
            image_format=image_format,
        ),
        kernels=EpisodeKernels(pool),
    )
    builder = StateGraph(
        CodeVisionState, input_schema=CodeVisionInput, output_schema=CodeVisionOutput
    )
    builder.add_node("prepare", _guarded(nodes, nodes.prepare, None))
    builder.add_node("model", _guarded(nodes, nodes.call_model, nodes.acall_model))
    builder.add_node("execute", _guarded(nodes, nodes.execute, nodes.aexecute))
    builder.add_node("reflect", _guarded(nodes, nodes.reflect, None))
    builder.add_node("force_answer", _guarded(nodes, nodes.force_answer, nodes.aforce_answer))
    builder.add_node("finish", _guarded(nodes, nodes.finish, nodes.afinish))
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "model")
    builder.add_conditional_edges("model", nodes.route)
    builder.add_conditional_edges("execute", nodes.after_execute)
    builder.add_edge("reflect", "model")
    builder.add_edge("force_answer", END)
    builder.add_edge("finish", END)
    if checkpointer not in (None, True, False):
        checkpointer = image_aware(checkpointer)
    graph = builder.compile(checkpointer=checkpointer, name=name)
    graph.codevision_nodes = nodes  # for tools and tests: dialect, kernels, executor
    return graph
