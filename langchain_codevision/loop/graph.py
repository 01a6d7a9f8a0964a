"""The CodeVision graph: model -> execute -> reflect -> model, until an answer.

Example:
    >>> from langchain_openai import ChatOpenAI
    >>> graph = create_codevision_graph(ChatOpenAI(model="gpt-4o"))
    >>> out = graph.invoke({"image": "page.png", "question": "What is the title?"})
    >>> out["answer"], out["stop_reason"], len(out["steps"])

Nodes (see :mod:`.nodes`): ``prepare`` (load and validate input, open the episode),
``model`` (one assistant turn), ``execute`` (run tool calls in the episode's kernel),
``reflect`` (turn failures into feedback), ``force_answer`` (turn limit reached: open calls
are closed, and the default profile asks once more for an answer without tools; the release
profile sends no such request) and ``finish``. What the model sees comes from the
``profile`` (:mod:`langchain_codevision.protocol.profiles`). The episode's kernel comes from a
:class:`~langchain_codevision.kernel.KernelPool` and is always given back.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph

from langchain_codevision._heap import tune_heap
from langchain_codevision.images import ImageFormat, PixelBudget
from langchain_codevision.kernel import KernelPool
from langchain_codevision.protocol import Dialect, ProtocolProfile, get_profile

from .checkpointing import image_aware
from .executor import ToolExecutor
from .kernels import EpisodeKernels
from .nodes import CodeVisionNodes
from .release import EpisodeReleaser
from .state import CodeVisionInput, CodeVisionOutput, CodeVisionState

__all__ = ["FROM_PROFILE", "create_codevision_graph", "resolve_dialect"]


class _FromProfile:
    def __repr__(self) -> str:
        return "FROM_PROFILE"


FROM_PROFILE: Any = _FromProfile()
"""Default of the limits of :func:`create_codevision_graph`: take the profile's value."""


def resolve_dialect(
    model: BaseChatModel, dialect: str = "auto", profile: str | ProtocolProfile | None = None
) -> Dialect:
    """Pick ``"text"`` or ``"tools"`` for ``model``.

    ``"auto"`` decides by capability, never by class name:

    1. a model may declare ``codevision_dialect`` (``ChatLocalVLM`` and the policies in
       :mod:`langchain_codevision.models.policies` declare ``"text"``);
    2. with ``profile="release"`` the answer is ``"text"``: the release's models were trained
       on the text protocol (pass ``dialect="tools"`` to bind its schema instead);
    3. ``ChatHuggingFace`` (it renders a chat template) speaks text, and an OpenAI-client
       model pointed at a server other than OpenAI or Azure (vLLM, SGLang
       serving a fine-tuned model) speaks text;
    4. a model whose ``bind_tools`` works uses native tool calling, others text.
    """
    if dialect in ("text", "tools"):
        return dialect  # type: ignore[return-value]
    if dialect != "auto":
        raise ValueError(f"dialect must be 'auto', 'text' or 'tools', got {dialect!r}")
    declared = getattr(model, "codevision_dialect", None)
    if declared in ("text", "tools"):
        return declared
    if get_profile(profile).name == "release":
        return "text"
    if _is_huggingface_chat(model):
        return "text"
    base = _openai_base_url(model)
    if base is not None:
        return "tools" if not base or "openai.com" in base or "azure" in base else "text"
    try:
        model.bind_tools([get_profile(profile).schema()])
    except NotImplementedError:
        return "text"
    return "tools"


def _is_huggingface_chat(model: BaseChatModel) -> bool:
    """Whether ``model`` is ``langchain_huggingface.ChatHuggingFace`` (a chat template)."""
    try:
        from langchain_huggingface import ChatHuggingFace
    except ImportError:
        return False
    return isinstance(model, ChatHuggingFace)


def _openai_base_url(model: BaseChatModel) -> str | None:
    """The server URL of an OpenAI-client model (``""``: the default), else ``None``."""
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        return None
    if not isinstance(model, BaseChatOpenAI):
        return None
    endpoint = getattr(model, "azure_endpoint", None)
    return str(endpoint or getattr(model, "openai_api_base", None) or "")


class _NodeLambda(RunnableLambda):
    """A graph node. It calls no runnable of its own, so it has no dependencies to find.

    LangGraph looks for subgraphs in every ``RunnableLambda`` node through ``deps``, which
    reads and parses the source of the function: ~5 ms per node, on every graph built.
    """

    @property
    def deps(self) -> list[Any]:  # type: ignore[override]
        return []


def _node(name: str, sync: Callable[..., Any], run_async: Callable[..., Any]) -> Any:
    """The node runnable: LangGraph's own wrapper for function nodes, where it has one.

    That is what ``add_node`` makes of a plain function (untraced itself: LangGraph traces
    the node's task), and it inspects the functions once, where a ``RunnableLambda`` does
    on every call (~1 ms per node step). Without it, a ``RunnableLambda`` does the job.
    """
    try:
        from langgraph._internal._runnable import RunnableCallable
    except ImportError:  # pragma: no cover - another LangGraph layout
        return _NodeLambda(sync, afunc=run_async, name=name)
    return RunnableCallable(sync, run_async, name=name, trace=False)


def _guarded(nodes: CodeVisionNodes, fn: Callable[..., Any], afn: Callable[..., Any] | None) -> Any:
    """Wrap a node so that the episode's kernel is released if the node raises.

    A node without a coroutine runs in a worker thread under ``ainvoke``, never on the
    event loop.
    """

    @functools.wraps(fn)
    def sync(state: CodeVisionState) -> Any:
        try:
            return fn(state)
        except BaseException:
            nodes.kernels.release(state.get("episode_id"))
            raise

    async def run_async(state: CodeVisionState) -> Any:
        try:
            if afn is None:
                return await asyncio.to_thread(fn, state)  # carries the context along
            return await afn(state)
        except BaseException:
            await nodes.kernels.arelease(state.get("episode_id"))
            raise

    functools.update_wrapper(run_async, afn or fn)
    return _node(fn.__name__, sync, run_async)


def create_codevision_graph(
    model: BaseChatModel,
    *,
    profile: str | ProtocolProfile = "default",
    dialect: Literal["auto", "text", "tools"] = "auto",
    system_prompt: str | None = None,
    max_turns: int = FROM_PROFILE,
    max_code_chars: int = FROM_PROFILE,
    max_aspect_ratio: float = FROM_PROFILE,
    min_pixels: int | None = FROM_PROFILE,
    max_pixels: int | None = FROM_PROFILE,
    image_format: ImageFormat = "png",
    max_images_in_context: int | None = 8,
    tool_images_in_user_message: bool = False,
    tools_in_request: bool = False,
    repair: bool = False,
    code_timeout: float | None = None,
    pool: KernelPool | None = None,
    kernel: str | None = None,
    checkpointer: Any = None,
    name: str = "codevision",
) -> Any:
    """Build the CodeVision graph around any LangChain chat model.

    Args:
        model: The chat model (ChatOpenAI, a local ``ChatLocalVLM``, ...).
        profile: What the model sees (:class:`~langchain_codevision.protocol.ProtocolProfile`):
            ``"default"`` (this package's richer protocol, for API models) or ``"release"``
            (the CodeVision release byte for byte, for its fine-tuned models), or your own.
        dialect: ``"text"`` (tags in plain text), ``"tools"`` (native tool calling) or
            ``"auto"`` (see :func:`resolve_dialect`; ``"release"`` picks ``"text"``).
        system_prompt: Overrides the profile's system message (``""`` for none).
        max_turns: Assistant turns per episode; several tool calls in one reply count one
            turn each (default: the profile's, 12).
        max_code_chars: Longest code accepted in a tool call (the profile's: 2048).
        max_aspect_ratio: Tool outputs at or above this aspect ratio are rejected (200).
        min_pixels: Smallest area of images shown to the model (``None``: no minimum).
        max_pixels: Largest area of images shown to the model (the tool uses originals;
            default: the profile's, 1024·28·28 or the release's 1024·8·28·28).
        image_format: Encoding of images sent to the model (``"png"`` keeps text sharp).
        max_images_in_context: Most images in one model request (inputs always kept; the
            oldest intermediate images are replaced by a note). ``None``: no cap.
        tool_images_in_user_message: Send tool images in a following user message, for
            servers that reject images inside ``role: tool`` (tools dialect).
        tools_in_request: Text dialect: send the tool schema as the request's ``tools``
            (with ``tool_choice="none"``, so replies stay text) and the bare system prompt,
            for an OpenAI-compatible server whose chat template renders the tools block
            itself (vLLM serving the release's own template). Default: the block is
            rendered into the system message, for servers with the stock Qwen template.
        repair: Repair code before running it (fences, indentation, crop boxes).
        code_timeout: Seconds per tool call (default: the pool's kernel limit).
        pool: Kernel pool (default: a shared pool of 2 warm kernels per profile preamble).
        kernel: Kernel spec for a pool of this graph's own when ``pool`` is not given
            (``"gateway+http://host:8888"``: remote kernels; see ``kernel/provider.py``).
        checkpointer: A LangGraph checkpointer (state, images included, serialises).
        name: The graph's name.

    Returns:
        A compiled LangGraph: ``invoke({"image": ..., "question": ...})`` returns
        ``answer``, ``images``, ``messages``, ``steps``, ``stop_reason`` and ``turns``.
    """
    tune_heap()  # freed pixel buffers are reused, not faulted in again (see _heap)
    chosen_profile = get_profile(profile)

    def pick(value: Any, default: Any) -> Any:
        return default if value is FROM_PROFILE else value

    max_turns = pick(max_turns, chosen_profile.max_turns)
    if max_turns < 1:
        raise ValueError(f"max_turns must be >= 1, got {max_turns}")
    min_pixels = pick(min_pixels, chosen_profile.min_pixels)
    max_pixels = pick(max_pixels, chosen_profile.max_pixels)
    max_aspect_ratio = pick(max_aspect_ratio, chosen_profile.max_aspect_ratio)
    chosen = resolve_dialect(model, dialect, chosen_profile)
    budget = None
    if min_pixels is not None or max_pixels is not None:
        budget = PixelBudget(min_pixels or 1, max_pixels or 10**12)
    if tools_in_request and chosen == "text" and system_prompt is None:
        prompt = chosen_profile.system_prompt
    elif system_prompt is None:
        prompt = chosen_profile.system_message(chosen)
    else:
        prompt = system_prompt
    nodes = CodeVisionNodes(
        model,
        dialect=chosen,
        profile=chosen_profile,
        system_prompt=prompt or None,
        max_turns=max_turns,
        budget=budget,
        image_format=image_format,
        max_images_in_context=max_images_in_context,
        tool_images_in_user_message=tool_images_in_user_message,
        tools_in_request=tools_in_request,
        executor=ToolExecutor(
            profile=chosen_profile,
            max_code_chars=pick(max_code_chars, chosen_profile.max_code_chars),
            max_aspect_ratio=max_aspect_ratio,
            repair=repair,
            timeout=code_timeout,
            budget=budget,
            image_format=image_format,
        ),
        kernels=EpisodeKernels(
            pool
            if pool is not None or kernel in (None, "local")
            else KernelPool(kernel=kernel, preamble=chosen_profile.preamble),
            preamble=chosen_profile.preamble,
        ),
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
    # a run that ends between nodes (cancelled, interrupted) still gives its kernel back
    releaser = EpisodeReleaser(nodes.kernels, builder.nodes)
    graph.config = {**(graph.config or {}), "callbacks": [releaser]}
    graph.codevision_nodes = nodes  # for tools and tests: dialect, kernels, executor
    return graph
