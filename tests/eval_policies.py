"""Scripted policies that worker processes can be given (picklable, importable by path).

The code in their replies runs for real in each worker's kernels; only the model is scripted.
"""

from __future__ import annotations

import os
from pathlib import Path

from langchain_core.messages import BaseMessage, SystemMessage

from langchain_codevision.eval._episodes import NO_TOOL_SYSTEM_PROMPT
from tests.scripted_model import ScriptedChatModel, text_call


class MarkingPolicy:
    """Tool arm: one call printing the image size, then the truth; no-tool arm: the truth
    for even items only. Each call leaves a file named after its process in ``marks``; an
    item in ``crash`` ends its process on the spot (``os._exit(3)``)."""

    def __init__(self, truths: dict[str, str], marks: str, crash: tuple[str, ...] = ()) -> None:
        self.truths, self.marks, self.crash = truths, marks, crash

    def __call__(self, messages: list[BaseMessage]) -> str:
        item_id = messages[1].text.rsplit("[", 1)[1].rstrip("]")
        (Path(self.marks) / str(os.getpid())).touch()
        if item_id in self.crash:
            os._exit(3)
        truth = self.truths[item_id]
        if isinstance(messages[0], SystemMessage) and messages[0].text == NO_TOOL_SYSTEM_PROMPT:
            good = int(item_id[-1]) % 2 == 0
            return f"<think>looking</think><answer>{truth if good else 'NO IDEA'}</answer>"
        if len(messages) <= 2:
            return text_call("print(image.size)\nresult = image", description="look")
        return f"<think>read it</think><answer>{truth}</answer>"


def marking_model(
    truths: dict[str, str], marks: str, crash: tuple[str, ...] = ()
) -> ScriptedChatModel:
    """A scripted model replying with :class:`MarkingPolicy` (also usable as a factory)."""
    return ScriptedChatModel(replies=[MarkingPolicy(truths, marks, crash)], dialect="text")
