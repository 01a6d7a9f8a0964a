"""A base for chat models that are policies written in code (they speak the text protocol).

The offline default model and the synthesis teachers decide their next reply from the
conversation so far; this base turns that decision into a LangChain chat model.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class TextPolicyModel(BaseChatModel):
    """A chat model whose reply is computed by :meth:`reply` (text dialect)."""

    @property
    def codevision_dialect(self) -> str:
        """Policies write the text protocol (``<think>``, ``<tool_call>``, ``<answer>``)."""
        return "text"

    def reply(self, messages: list[BaseMessage]) -> str | AIMessage:
        """The next assistant turn for ``messages``."""
        raise NotImplementedError

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        answer = self.reply(list(messages))
        if isinstance(answer, str):
            answer = AIMessage(answer, response_metadata={"model_name": self._llm_type})
        return ChatResult(generations=[ChatGeneration(message=answer)])
