"""Episodes for concurrency tests: each one's answer is read back from its own kernel."""

from __future__ import annotations

import re

from langchain_core.messages import BaseMessage
from PIL import Image

from tests.scripted_model import ScriptedChatModel, text_call

CODE = "print(f'W={image.size[0]}')\nresult = image.rotate(90, expand=True)"


def episode_inputs(count: int, start: int = 0) -> list[dict]:
    """Inputs whose images differ in width: episode ``k`` is ``40 + k`` pixels wide."""
    return [
        {"image": Image.new("RGB", (40 + k, 24), "white"), "question": f"episode {k}"}
        for k in range(start, start + count)
    ]


def expected_answer(k: int) -> str:
    return str(40 + k)


def width_model(code: str = CODE) -> ScriptedChatModel:
    """One real tool call printing the image width, then that width as the answer."""

    def reply(messages: list[BaseMessage]) -> str:
        seen = re.search(r"W=(\d+)", messages[-1].text)
        if seen:
            return f"<think>read it</think><answer>{seen.group(1)}</answer>"
        return text_call(code, description="measure")

    return ScriptedChatModel(replies=[reply], dialect="text")
