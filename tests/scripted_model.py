"""A scripted chat model: replays fixed replies, records what it was sent.

The code inside the replies runs for real in the graph's kernel; only the model is scripted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from langchain_codevision.parsing import format_tool_call

Reply = str | AIMessage | Callable[[list[BaseMessage]], AIMessage | str]


def text_call(code: str, image_index: int = 0, think: str = "", description: str = "") -> str:
    """A text-dialect reply that calls the image tool."""
    call = format_tool_call(
        "code_image_tool",
        {"code": code, "description": description, "image_index": image_index},
    )
    return f"<think>{think}</think>\n{call}"


def tools_call(code: str, image_index: int = 0, call_id: str = "call_1") -> AIMessage:
    """A tools-dialect reply that calls the image tool."""
    return AIMessage(
        "",
        tool_calls=[
            {
                "name": "code_image_tool",
                "args": {"code": code, "description": "", "image_index": image_index},
                "id": call_id,
                "type": "tool_call",
            }
        ],
    )


class ScriptedChatModel(BaseChatModel):
    """Returns ``replies`` in order; the last one repeats once the script runs out."""

    replies: list[Any] = Field(default_factory=list)
    received: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[Any] = Field(default_factory=list)
    dialect: str | None = None
    position: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def codevision_dialect(self) -> str | None:
        return self.dialect

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        self.bound_tools = list(tools)
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.received.append(list(messages))
        if not self.replies:
            raise RuntimeError("the scripted model has no replies")
        reply = self.replies[min(self.position, len(self.replies) - 1)]
        self.position += 1
        if callable(reply):
            reply = reply(list(messages))
        if isinstance(reply, str):
            reply = AIMessage(reply)
        return ChatResult(generations=[ChatGeneration(message=reply.model_copy())])
