"""LangChain tools: the whole CodeVision loop as one tool, and the image-code tool itself.

* :class:`CodeVisionTool` answers a question about an image by running the CodeVision graph
  with its own (vision) model; any agent can delegate visual questions to it.
* :class:`ImageCodeTool` is ``code_image_tool`` for any tool-calling agent: it runs code on
  an image in a persistent sandboxed kernel and returns text plus image content blocks.

Example:
    >>> from langchain.agents import create_agent
    >>> tool = ImageCodeTool(images=["page.png"])
    >>> agent = create_agent(model, tools=[tool])
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ._execution import ToolExecutor
from .images import decode_trajectory_image, load_image, trajectory_image
from .kernel import KernelLimits, KernelSession
from .kernel._loop import run_async, run_sync
from .protocol import TOOL_DESCRIPTION, TOOL_NAME, CodeImageToolInput
from .reflect import failure_reply


class CodeVisionToolInput(BaseModel):
    """Arguments of :class:`CodeVisionTool`."""

    image: str = Field(description="The image: a file path, http(s) URL, data URL or base64.")
    question: str = Field(description="The question to answer about the image.")


class CodeVisionTool(BaseTool):
    """Answer a question about an image with a vision model that can run image code.

    The tool's content is the answer text; its artifact is the trajectory: ``answer``,
    ``stop_reason``, ``steps`` and the episode's ``images``.

    Args:
        model: The vision-language chat model that drives the CodeVision graph.
        graph_kwargs: Extra arguments for :func:`create_codevision_graph`.
    """

    name: str = "codevision"
    description: str = (
        "Answer a question about an image. A vision model inspects the image and can run "
        "Python image code (rotate, crop, zoom, enhance) before it answers. Use it for "
        "reading text, small details, or rotated, mirrored or low-contrast images."
    )
    args_schema: type[BaseModel] = CodeVisionToolInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    model: BaseChatModel
    graph_kwargs: dict[str, Any] = Field(default_factory=dict)
    _graph: Any = PrivateAttr(default=None)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def graph(self) -> Any:
        """The compiled CodeVision graph (built on first use)."""
        if self._graph is None:
            from .graph import create_codevision_graph

            self._graph = create_codevision_graph(self.model, **self.graph_kwargs)
        return self._graph

    @staticmethod
    def _package(state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        answer = state.get("answer")
        content = answer if answer else f"No answer (stopped: {state.get('stop_reason')})."
        artifact = {
            "answer": answer,
            "stop_reason": state.get("stop_reason"),
            "steps": state.get("steps", []),
            "images": state.get("images", []),
        }
        return content, artifact

    def _run(
        self,
        image: str,
        question: str,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, dict[str, Any]]:
        config = {"callbacks": run_manager.get_child()} if run_manager else {}
        state = self.graph.invoke({"image": image, "question": question}, config=config)
        return self._package(state)

    async def _arun(
        self,
        image: str,
        question: str,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[str, dict[str, Any]]:
        config = {"callbacks": run_manager.get_child()} if run_manager else {}
        state = await self.graph.ainvoke({"image": image, "question": question}, config=config)
        return self._package(state)


class ImageCodeTool(BaseTool):
    """``code_image_tool`` for any tool-calling agent: run code on an image, see the result.

    The kernel is persistent: variables survive between calls, and every successful result
    becomes a new image index. The tool's content is a list of content blocks (the result
    image(s) and a text); the artifact holds the full-resolution ``images`` (PIL), the
    ``output_indices`` and the ``step`` record.

    Args:
        images: Initial images (anything :func:`~langchain_codevision.images.load_image`
            accepts); indices 0..k-1.
        kernel_limits: Limits for the tool's own kernel.
        isolation: Isolation policy of the tool's own kernel.
        max_code_chars: Longest code accepted.
        repair: Repair code before running it.
    """

    name: str = TOOL_NAME
    description: str = TOOL_DESCRIPTION
    args_schema: type[BaseModel] = CodeImageToolInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    images: list[Any] = Field(default_factory=list)
    kernel_limits: KernelLimits | None = None
    isolation: str = "auto"
    max_code_chars: int = 2048
    repair: bool = False
    _state: dict[str, Any] = PrivateAttr(default_factory=dict)
    _session: KernelSession | None = PrivateAttr(default=None)
    _executor: ToolExecutor = PrivateAttr()

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def model_post_init(self, context: Any, /) -> None:
        """Load the initial images and set up the executor."""
        self._executor = ToolExecutor(
            max_code_chars=self.max_code_chars, repair=self.repair, budget=None
        )
        loaded = [load_image(source) for source in self.images]
        self._state = {
            "images": [trajectory_image(img, i) for i, img in enumerate(loaded)],
            "steps": [],
            "turns": 0,
        }

    def add_image(self, image: Any) -> int:
        """Add an image; returns its index."""
        pil = load_image(image)
        index = len(self._state["images"])
        self._state["images"].append(trajectory_image(pil, index))
        if self._session is not None:
            self._session.put_image(index, pil)
        return index

    @property
    def steps(self) -> list[dict[str, Any]]:
        """Every call made so far."""
        return list(self._state["steps"])

    def close(self) -> None:
        """Stop the tool's kernel."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def _plan(self, code: str, description: str, image_index: int) -> Any:
        call = {
            "name": TOOL_NAME,
            "arguments": {"code": code, "description": description, "image_index": image_index},
            "id": None,
        }
        return self._executor.plan(self._state, {"calls": [call]})

    def _new_session(self) -> KernelSession:
        return KernelSession(limits=self.kernel_limits, isolation=self.isolation)

    def _finish(self, work: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Store the new state; build the tool's content and artifact."""
        self._state["images"] = work.images
        self._state["steps"] = work.steps
        step = work.steps[-1]
        if work.failures:
            text = failure_reply(work.failures[-1], work.images)
            return [{"type": "text", "text": text}], {
                "images": [],
                "output_indices": [],
                "step": step,
            }
        blocks, _ = work.replies[-1]
        outputs = [decode_trajectory_image(work.images[i]) for i in step["output_indices"]]
        artifact = {"images": outputs, "output_indices": step["output_indices"], "step": step}
        return blocks, artifact

    async def _call(
        self, code: str, description: str, image_index: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """One call, written once; runs on the kernel I/O loop for both facades."""
        work = self._plan(code, description, image_index)
        if work.needs_kernel:
            if self._session is None:
                self._session = self._new_session()
                for item in self._state["images"]:
                    await self._session.aput_image(item["index"], decode_trajectory_image(item))
            result = await self._session.aexecute(**work.kernel_kwargs(work.runnable[0]))
            for index, image in work.record(work.runnable[0], result):
                await self._session.aput_image(index, image)
        return self._finish(work)

    def _run(
        self,
        code: str,
        description: str = "",
        image_index: int = 0,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return run_sync(self._call(code, description, image_index))

    async def _arun(
        self,
        code: str,
        description: str = "",
        image_index: int = 0,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return await run_async(self._call(code, description, image_index))
