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

from .images import decode_trajectory_image, load_image, trajectory_image
from .kernel import KernelLimits, KernelSession
from .loop.executor import ExecutionWork, ToolExecutor
from .protocol import TOOL_DESCRIPTION, TOOL_NAME, CodeImageToolInput, ProtocolProfile, get_profile

__all__ = ["CodeVisionTool", "CodeVisionToolInput", "ImageCodeTool"]


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
        profile: The protocol profile the graph speaks (``"default"``, ``"release"``, or a
            :class:`~langchain_codevision.protocol.ProtocolProfile`).
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
    profile: str | ProtocolProfile = "default"
    graph_kwargs: dict[str, Any] = Field(default_factory=dict)
    _graph: Any = PrivateAttr(default=None)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def graph(self) -> Any:
        """The compiled CodeVision graph (built on first use)."""
        if self._graph is None:
            from .loop.graph import create_codevision_graph

            kwargs = {"profile": self.profile, **self.graph_kwargs}
            self._graph = create_codevision_graph(self.model, **kwargs)
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
        profile: The protocol profile: reply texts, bound names (its kernel preamble),
            result lookup order, text cap and the tool's description.
        kernel_limits: Limits for the tool's own kernel.
        isolation: Isolation policy of the tool's own kernel.
        max_code_chars: Longest code accepted (default: the profile's).
        repair: Repair code before running it.
    """

    name: str = TOOL_NAME
    description: str = TOOL_DESCRIPTION
    args_schema: type[BaseModel] = CodeImageToolInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    images: list[Any] = Field(default_factory=list)
    profile: str | ProtocolProfile = "default"
    kernel_limits: KernelLimits | None = None
    isolation: str = "auto"
    max_code_chars: int | None = None
    repair: bool = False
    _state: dict[str, Any] = PrivateAttr(default_factory=dict)
    _session: KernelSession | None = PrivateAttr(default=None)
    _executor: ToolExecutor = PrivateAttr()

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def model_post_init(self, context: Any, /) -> None:
        """Load the initial images and set up the executor."""
        profile = get_profile(self.profile)
        if profile.name != "default" and self.description == TOOL_DESCRIPTION:
            self.description = profile.tool_schema["function"]["description"]
        self._executor = ToolExecutor(
            profile=profile,
            max_code_chars=self.max_code_chars or profile.max_code_chars,
            max_aspect_ratio=profile.max_aspect_ratio,
            repair=self.repair,
            budget=None,
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

    def _pending(self, code: str, description: str, image_index: int) -> dict[str, Any]:
        call = {
            "name": TOOL_NAME,
            "arguments": {"code": code, "description": description, "image_index": image_index},
            "id": None,
            "notes": [],
        }
        return {"calls": [call]}

    def _new_session(self) -> KernelSession:
        preamble = self._executor.profile.preamble
        extra = {"preamble": preamble} if preamble else {}
        return KernelSession(limits=self.kernel_limits, isolation=self.isolation, **extra)

    async def _open_session(self) -> KernelSession:
        """The tool's kernel, started and loaded with the images on first use."""
        if self._session is None:
            session = self._new_session()
            for item in self._state["images"]:
                await session.aput_image(item["index"], decode_trajectory_image(item))
            self._session = session
        return self._session

    def _finish(self, work: ExecutionWork) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Store the new state; build the tool's content and artifact."""
        self._state["images"] = work.images
        self._state["steps"] = work.steps
        step = work.steps[-1]
        if work.failures:
            text = self._executor.failure_text(work.failures[-1], work.images)
            return [{"type": "text", "text": text}], {
                "images": [],
                "output_indices": [],
                "step": step,
            }
        blocks, _ = work.replies[-1]
        outputs = [decode_trajectory_image(work.images[i]) for i in step["output_indices"]]
        artifact = {"images": outputs, "output_indices": step["output_indices"], "step": step}
        return blocks, artifact

    def _run(
        self,
        code: str,
        description: str = "",
        image_index: int = 0,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        pending = self._pending(code, description, image_index)
        return self._finish(self._executor.run(self._state, pending, self._open_session))

    async def _arun(
        self,
        code: str,
        description: str = "",
        image_index: int = 0,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        pending = self._pending(code, description, image_index)
        work = await self._executor.arun_anywhere(self._state, pending, self._open_session)
        return self._finish(work)
