"""A scripted policy for throughput runs: fixed tool calls in order, then an answer.

Its reply depends only on how many assistant turns the conversation already has, so one
instance serves any number of concurrent episodes. The code in its calls runs for real.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage

from langchain_codevision.models.policies import TextPolicyModel
from langchain_codevision.protocol import TOOL_NAME, format_tool_call

__all__ = ["ScriptedEpisodeModel"]


class ScriptedEpisodeModel(TextPolicyModel):
    """Calls the image tool with ``codes[k]`` in turn ``k`` (on the newest image), then answers."""

    codes: Sequence[str] = ()
    answer: str = "done"

    @property
    def _llm_type(self) -> str:
        return "scripted-episode"

    def reply(self, messages: list[BaseMessage]) -> str:
        """The next turn: the next call of the script, or the answer once it is used up."""
        turn = sum(isinstance(m, AIMessage) for m in messages)
        if turn >= len(self.codes):
            return f"<think>finished</think><answer>{self.answer}</answer>"
        call = format_tool_call(
            TOOL_NAME, {"code": self.codes[turn], "description": "step", "image_index": turn}
        )
        return f"<think>step {turn + 1}</think>\n{call}"
