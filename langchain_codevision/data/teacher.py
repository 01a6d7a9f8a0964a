"""The teacher: a deterministic policy that knows a task's metadata and writes its replies.

As in the paper's data recipe, the task type and the tools it needs are chosen first; the
teacher then writes, turn by turn, the reasoning and the code a good model would write for
that task, in the text protocol. It varies its idioms (``rotate``/``transpose``/``np.rot90``/
``cv2.rotate``, crops by PIL or by numpy slicing) and, for error-handling tasks, makes a
deliberate first mistake that it repairs after reading the real error text.

:class:`TeacherModel` wraps a plan as a LangChain chat model so that the trajectory runs
through the real graph and kernel. Any chat model can be a teacher instead (see
:func:`langchain_codevision.data.synth.synthesize`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from pydantic import ConfigDict

from ..models.policies import TextPolicyModel
from ..protocol import TOOL_NAME, format_tool_call

Reply = Callable[[list[BaseMessage]], str]

_ROTATE_IDIOMS: dict[int, list[str]] = {
    90: [
        "result = image.rotate(90, expand=True)",
        "result = image.transpose(Image.Transpose.ROTATE_90)",
        "result = Image.fromarray(np.rot90(np.array(image), k=1))",
        "result = Image.fromarray(cv2.rotate(np.array(image), cv2.ROTATE_90_COUNTERCLOCKWISE))",
    ],
    180: [
        "result = image.rotate(180, expand=True)",
        "result = image.transpose(Image.Transpose.ROTATE_180)",
        "result = Image.fromarray(np.rot90(np.array(image), k=2))",
        "result = Image.fromarray(cv2.rotate(np.array(image), cv2.ROTATE_180))",
    ],
    270: [
        "result = image.rotate(270, expand=True)",
        "result = image.transpose(Image.Transpose.ROTATE_270)",
        "result = Image.fromarray(np.rot90(np.array(image), k=3))",
        "result = Image.fromarray(cv2.rotate(np.array(image), cv2.ROTATE_90_CLOCKWISE))",
    ],
}
_FLIP_IDIOMS: dict[str, list[str]] = {
    "flip_horizontal": [
        "result = ImageOps.mirror(image)",
        "result = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)",
        "result = Image.fromarray(np.ascontiguousarray(np.fliplr(np.array(image))))",
    ],
    "flip_vertical": [
        "result = ImageOps.flip(image)",
        "result = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)",
        "result = Image.fromarray(np.ascontiguousarray(np.flipud(np.array(image))))",
    ],
}
_ENHANCE_IDIOMS: dict[str, list[str]] = {
    "low_contrast": [
        "result = ImageOps.autocontrast(image, cutoff=1)",
        "result = ImageEnhance.Contrast(image).enhance(3.0)",
    ],
    "dim": [
        "result = ImageOps.autocontrast(image)",
        "result = ImageEnhance.Brightness(image).enhance(2.5)",
    ],
    "bright": ["result = ImageOps.autocontrast(image)"],
    "blur": ["result = image.filter(ImageFilter.UnsharpMask(radius=2, percent=200))"],
    "noise": ["result = image.filter(ImageFilter.MedianFilter(3))"],
}

_SEEING = {
    "rotate_90": "The text runs vertically, bottom to top: the image is turned 90 degrees "
    "counter-clockwise.",
    "rotate_180": "The text is upside down.",
    "rotate_270": "The text runs vertically, top to bottom: the image is turned 90 degrees "
    "clockwise.",
    "flip_horizontal": "The letters are mirrored left to right.",
    "flip_vertical": "The image is mirrored top to bottom; the letters are upside down and "
    "reversed.",
    "low_contrast": "The image is washed out; the text is hard to tell from the background.",
    "dim": "The image is very dark.",
    "bright": "The image is over-exposed.",
    "blur": "The image is blurry.",
    "noise": "The image is noisy.",
}


def fix_code(transform: str, rng: random.Random) -> str:
    """Code (one idiom, chosen by ``rng``) that undoes ``transform`` on ``image``."""
    if transform.startswith("rotate_"):
        applied = int(transform.split("_")[1])
        return rng.choice(_ROTATE_IDIOMS[(360 - applied) % 360])
    if transform in _FLIP_IDIOMS:
        return rng.choice(_FLIP_IDIOMS[transform])
    if transform in _ENHANCE_IDIOMS:
        return rng.choice(_ENHANCE_IDIOMS[transform])
    raise ValueError(f"the teacher has no fix for transform {transform!r}")


def crop_code(box: tuple[int, int, int, int], rng: random.Random, source: str = "image") -> str:
    """Code that crops ``box`` out of ``source`` (PIL ``crop`` or numpy slicing)."""
    left, top, right, bottom = box
    if rng.random() < 0.5:
        return f"result = {source}.crop(({left}, {top}, {right}, {bottom}))"
    return f"result = Image.fromarray(np.array({source})[{top}:{bottom}, {left}:{right}])"


def describe(transform: str | None) -> str:
    """What the teacher "sees" for a transform."""
    return _SEEING.get(transform or "", "The image looks upright and readable.")


def call(code: str, description: str, image_index: int, think: str) -> str:
    """A text-protocol reply with a tool call."""
    arguments = {"code": code, "description": description, "image_index": image_index}
    return f"<think>{think}</think>\n{format_tool_call(TOOL_NAME, arguments)}"


def answer(text: str, think: str) -> str:
    """A text-protocol reply with the final answer."""
    return f"<think>{think}</think>\n<answer>{text}</answer>"


def last_error(messages: list[BaseMessage]) -> str:
    """The first line of the newest ``Error:`` reply in ``messages`` (for repair turns)."""
    for message in reversed(messages):
        text = message.text if hasattr(message, "text") else str(message.content)
        for line in text.splitlines():
            if line.startswith("Error:"):
                return line[len("Error:") :].strip()
    return "an error"


@dataclass
class Plan:
    """The teacher's replies for one task, and what the run must show to be kept.

    Attributes:
        replies: One entry per assistant turn (text, or a function of the messages so far).
        expect_ok: For each tool step, whether it is meant to succeed.
        task_type: The task family.
        checks: Named facts the synthesiser verifies after the run.
    """

    replies: list[str | Reply]
    expect_ok: list[bool]
    task_type: str
    checks: dict[str, Any] = field(default_factory=dict)


class TeacherModel(TextPolicyModel):
    """Plays a :class:`Plan` as a chat model (text dialect)."""

    plan: Plan
    position: int = 0
    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def _llm_type(self) -> str:
        return "codevision-teacher"

    def reply(self, messages: list[BaseMessage]) -> str:
        """The plan's next reply."""
        replies = self.plan.replies
        reply = replies[min(self.position, len(replies) - 1)]
        self.position += 1
        return reply(messages) if callable(reply) else reply


def task_brief(metadata: dict[str, Any]) -> str:
    """What a model teacher is told about a task (the facts the rule teacher knows)."""
    lines = [
        "You are writing a demonstration for training data. Facts about this task, which "
        "the demonstration must never mention directly:",
        f"- task type: {metadata.get('task_type')}",
        f"- transform applied to the image: {metadata.get('transform') or 'none'}",
        f"- correct answer: {metadata.get('answer')}",
    ]
    if metadata.get("bbox"):
        lines.append(f"- answer region in the upright image (x0, y0, x1, y1): {metadata['bbox']}")
    lines.append(
        "Reason from what you see, use the image tool where the task type calls for it, and "
        "finish with the correct answer inside <answer> </answer>."
    )
    return "\n".join(lines)


class BriefedTeacher(TextPolicyModel):
    """Any chat model as a teacher: the task's facts are added to its system prompt.

    The paper had a frontier model write trajectories conditioned on each record's metadata;
    this wrapper does that for any LangChain chat model (text protocol).
    """

    model: BaseChatModel
    brief: str
    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def _llm_type(self) -> str:
        return "codevision-briefed-teacher"

    def _briefed(self, messages: list[BaseMessage]) -> list[BaseMessage]:
        if messages and isinstance(messages[0], SystemMessage):
            system = SystemMessage(f"{messages[0].text}\n\n{self.brief}")
            return [system, *messages[1:]]
        return [SystemMessage(self.brief), *messages]

    def reply(self, messages: list[BaseMessage]) -> AIMessage:
        """The wrapped model's reply, with the brief in its system prompt."""
        answer = self.model.invoke(self._briefed(messages))
        return answer if isinstance(answer, AIMessage) else AIMessage(str(answer.content))


def briefed_teacher(model: BaseChatModel) -> Callable[[Any], BriefedTeacher]:
    """A ``teacher=`` factory for :func:`~.synth.synthesize` built on ``model``."""

    def make(task: Any) -> BriefedTeacher:
        facts = dict(task.metadata)
        if task.sample.bbox is not None:
            facts["bbox"] = [round(float(v)) for v in task.sample.bbox]
        return BriefedTeacher(model=model, brief=task_brief(facts))

    return make
