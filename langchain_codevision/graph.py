"""The CodeVision graph: model -> execute -> reflect -> model, until an answer.

Example:
    >>> from langchain_openai import ChatOpenAI
    >>> graph = create_codevision_graph(ChatOpenAI(model="gpt-4o"))
    >>> out = graph.invoke({"image": "page.png", "question": "What is the title?"})
    >>> out["answer"], out["stop_reason"], len(out["steps"])

Nodes (see :mod:`.nodes`): ``prepare`` (load and validate input, open the episode),
``model`` (one assistant turn), ``execute`` (run tool calls in the episode's kernel),
``reflect`` (turn failures into feedback), ``force_answer`` (turn limit reached: one last
request without tools) and ``finish``. The episode's kernel comes from a
:class:`~langchain_codevision.kernel.KernelPool` and is always given back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph

from ._execution import ToolExecutor
from .checkpointing import image_aware
from .episodes import EpisodeKernels
from .images import ImageFormat, PixelBudget
from .kernel import KernelPool
from .nodes import CodeVisionNodes
from .protocol import (
    Dialect,
    default_system_prompt,
    tool_schema,
)
from .state import CodeVisionInput, CodeVisionOutput, CodeVisionState


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
