"""The offline default model: a rule-based policy that answers by writing OCR code.

:class:`OfflineOCRModel` has no weights and needs no network. It is a chat model whose
replies are computed by rules, and whose tool calls run in the sandboxed kernel like any
model's would:

1. First call: one piece of code (:data:`~._ocr_code.READ_PAGE_CODE`) runs the OCR engine
   inside the kernel, judges the orientation on a small copy (text-line shape, then the
   recognition confidence of the four candidate fixes on the longest lines only: never
   every rotation at full resolution), undoes it, and prints the fixed page's lines with
   their boxes; the fixed page is the step's output image.
2. It reads that output. When the line a question points at was read with low confidence,
   a second call crops that line from the fixed page and reads it at twice the size; when
   the first call failed, a second call retries with simpler code (read the image as
   given). Otherwise, or after that, it answers.

It speaks the text protocol (``<think>`` / ``<tool_call>`` / ``<answer>``) by default and
native tool calls once :meth:`~OfflineOCRModel.bind_tools` has bound a tool (so
``langchain.agents.create_agent(OfflineOCRModel(), tools=[ImageCodeTool(...)])`` works),
under both the ``default`` and the ``release`` profile (where printed output is not shown,
it reads the returned image itself and infers the fix by comparing images).

Handled questions (English keyword rules, see :mod:`._ocr_rules`): the line that starts
with given words or has a given number, the word after a word, the last or shortest word
on a line, how often a letter occurs on a line, a labelled value ("what is the invoice
number", "the total", "the price of X"), which transform was applied (answered with the
names of :mod:`langchain_codevision.data.transforms`, ``none`` when upright), and "what
does the text say". Anything else gets the line that shares most words with the question.
Not handled: charts, pictures, handwriting, multi-column reading order, reasoning over the
text, questions in other languages, skew other than quarter turns and flips.

Needs the ``ocr`` extra: ``pip install "langchain-codevision[ocr]"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from PIL import Image
from pydantic import Field

from langchain_codevision.images import image_from_block
from langchain_codevision.models._ocr_code import (
    JUDGE_CODE,
    PLAIN_READ_CODE,
    READ_PAGE_CODE,
    zoom_code,
)
from langchain_codevision.models._ocr_read import read_image_lines, undoing_transform
from langchain_codevision.models._ocr_rules import (
    NO_TEXT,
    OcrLine,
    Question,
    answer_question,
    find_line,
    parse_lines,
    parse_orientation,
    parse_orientation_scores,
    parse_question,
)
from langchain_codevision.protocol import TOOL_NAME, TOOL_TURN_MARK, format_tool_call

__all__ = ["OfflineOCRModel"]

_READ, _ZOOM, _PLAIN = "read the page", "zoom into the line", "read the image as given"
_ERROR = re.compile(r"^\s*(?:<tool_response>\s*)?(?:Error|Code execution error)\b")
_RESULT_INDEX = re.compile(r"Result: image (\d+) \((\d+)x(\d+)\)")
_DESCRIPTION = re.compile(r'"description":\s*"([^"]*)"')
_LINE_KINDS = ("read_line", "last_word", "shortest_word", "count_letter")


class _Turn:
    """One tool reply: its text and the images it carries."""

    def __init__(self, text: str, images: list[Image.Image]) -> None:
        self.text = text
        self.images = images
        self.error = bool(_ERROR.search(text))


def _images(message: BaseMessage) -> list[Image.Image]:
    found = []
    for block in message.content_blocks:
        if block.get("type") in ("image", "image_url"):
            try:
                found.append(image_from_block(dict(block)))
            except Exception:  # an unreadable image is simply not seen
                continue
    return found


def _is_tool_turn(message: BaseMessage) -> bool:
    if isinstance(message, ToolMessage):
        return True
    return isinstance(message, HumanMessage) and bool(message.additional_kwargs.get(TOOL_TURN_MARK))


def _descriptions(messages: Sequence[BaseMessage]) -> list[str]:
    """What each of the policy's earlier calls was for, in order."""
    found = []
    for message in messages:
        if not isinstance(message, AIMessage):
            continue
        if message.tool_calls:
            found.extend(str(c["args"].get("description", "")) for c in message.tool_calls)
        else:
            found.extend(_DESCRIPTION.findall(message.text))
    return found


class OfflineOCRModel(BaseChatModel):
    """A rule-based policy that answers questions about document images by writing OCR code.

    No weights: the rules choose which code to run in the sandboxed kernel (OCR inside the
    kernel, orientation judged and undone in the same call) and read the answer out of the
    text it prints. See the module docs for what it handles and what it does not.

    Example:
        >>> from langchain_codevision import create_codevision_graph
        >>> graph = create_codevision_graph(OfflineOCRModel())
        >>> graph.invoke({"image": "page.png", "question": "What is the total?"})["answer"]
    """

    zoom_below: float = 0.9
    """Zoom into the asked line when its recognition confidence is below this."""
    dialect: str = Field(default="text")
    """The dialect declared to the graph when none is bound (``"text"`` or ``"tools"``)."""

    @property
    def codevision_dialect(self) -> str:
        """The dialect the graph should use with this model."""
        return self.dialect

    @property
    def _llm_type(self) -> str:
        return "codevision-offline-ocr"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools: replies then call the first bound tool natively."""
        return self.bind(tools=[convert_to_openai_tool(tool) for tool in tools], **kwargs)

    # -- one turn ---------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools = kwargs.get("tools") or []
        tool_name = _tool_name(tools) if tools else None
        try:
            step = self._step(list(messages))
        except Exception as exc:  # a policy bug must still end in an answer
            step = ("answer", f"Reading failed ({type(exc).__name__}).", NO_TEXT)
        message = _render(step, tool_name, len(_descriptions(messages)))
        message.response_metadata["model_name"] = self._llm_type
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _step(self, messages: list[BaseMessage]) -> tuple[str, str, Any]:
        """``("call", thought, (code, description, index))`` or ``("answer", thought, text)``."""
        question = parse_question(_question_text(messages))
        turns = [_Turn(m.text, _images(m)) for m in messages if _is_tool_turn(m)]
        done = _descriptions(messages)
        if not turns:
            code = JUDGE_CODE if question.kind == "orientation" else READ_PAGE_CODE
            return ("call", _first_thought(question), (code, _READ, 0))
        last = turns[-1]
        if last.error and len(turns) == 1:
            thought = "The code failed; retry with simpler code that only reads the image."
            return ("call", thought, (PLAIN_READ_CODE, _PLAIN, 0))
        reads = [(t, d) for t, d in zip(turns, done, strict=False) if not t.error and d != _ZOOM]
        if not reads:
            thought = "Both attempts failed, so nothing was read."
            return ("answer", thought, answer_question(question, [], None))
        page, _ = reads[-1]
        lines, orientation = self._perceive(page, messages, question.kind != "orientation")
        if done and done[-1] == _ZOOM and not last.error:
            lines = _merge_zoom(question, lines, self._lines_of(last))
        elif len(turns) == 1 and question.kind in _LINE_KINDS and _RESULT_INDEX.search(page.text):
            target = find_line(question, lines)
            if target is not None and target.conf < self.zoom_below:
                index = int(_RESULT_INDEX.search(page.text).group(1))  # type: ignore[union-attr]
                thought = (
                    f"The line {target.text!r} was read with confidence {target.conf:.2f}; "
                    "crop it and read it at twice the size."
                )
                return ("call", thought, (zoom_code(_pad(target.box)), _ZOOM, index))
        scores = parse_orientation_scores(page.text)
        answer = answer_question(question, lines, orientation, scores)
        return ("answer", _final_thought(orientation, lines), answer)

    def _perceive(
        self, turn: _Turn, messages: list[BaseMessage], need_text: bool
    ) -> tuple[list[OcrLine], str | None]:
        """The lines and orientation a read-page turn reports (or shows, in its image)."""
        lines = parse_lines(turn.text)
        orientation = parse_orientation(turn.text)
        if orientation is None:
            original = _first_image(messages)
            if original is not None and turn.images:
                orientation = undoing_transform(original, turn.images[0])
        shown = "LINE " in turn.text or "ORIENTATION" in turn.text
        if need_text and not lines and turn.images and not shown:
            lines = read_image_lines(turn.images[0])
        return lines, orientation

    @staticmethod
    def _lines_of(turn: _Turn) -> list[OcrLine]:
        lines = parse_lines(turn.text)
        if not lines and turn.images and "LINE " not in turn.text:
            lines = read_image_lines(turn.images[0])
        return lines


# -- helpers ------------------------------------------------------------------------------------
def _tool_name(tools: list[dict[str, Any]]) -> str:
    names = [t.get("function", {}).get("name") for t in tools]
    return TOOL_NAME if TOOL_NAME in names else (names[0] or TOOL_NAME)


def _question_text(messages: Sequence[BaseMessage]) -> str:
    for message in messages:
        if isinstance(message, HumanMessage) and not _is_tool_turn(message):
            return message.text.replace("<image>", " ").strip()
    return ""


def _first_image(messages: Sequence[BaseMessage]) -> Image.Image | None:
    for message in messages:
        if isinstance(message, HumanMessage) and not _is_tool_turn(message):
            found = _images(message)
            return found[0] if found else None
    return None


def _pad(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    margin = max(4, (y1 - y0) // 2)
    return (x0 - margin, y0 - margin, x1 + margin, y1 + margin)


def _merge_zoom(question: Question, lines: list[OcrLine], zoomed: list[OcrLine]) -> list[OcrLine]:
    """``lines`` with the asked line replaced by its zoomed reading when that is surer."""
    target = find_line(question, lines)
    if target is None or not zoomed:
        return lines
    text = " ".join(line.text for line in zoomed)
    conf = sum(line.conf for line in zoomed) / len(zoomed)
    if conf <= target.conf:
        return lines
    return [OcrLine(text, line.box, conf) if line is target else line for line in lines]


def _first_thought(question: Question) -> str:
    return (
        "The image may be rotated or mirrored, and the answer is in its text. In one step: "
        "read it with OCR in the kernel, judge the orientation from the text lines' shape "
        "and the recognition confidence of each candidate fix on a few lines, undo it and "
        f"read the fixed page (question kind: {question.kind})."
    )


def _final_thought(orientation: str | None, lines: list[OcrLine]) -> str:
    where = f"the page had {orientation} applied" if orientation else "orientation unknown"
    return f"Read {len(lines)} line(s); {where}. Answer from the text read."


def _render(step: tuple[str, str, Any], tool_name: str | None, calls_so_far: int) -> AIMessage:
    kind, thought, payload = step
    if kind == "answer":
        return AIMessage(f"<think>{thought}</think>\n<answer>{payload}</answer>")
    code, description, index = payload
    arguments = {"code": code, "description": description, "image_index": index}
    if tool_name is None:
        return AIMessage(f"<think>{thought}</think>\n" + format_tool_call(TOOL_NAME, arguments))
    call = {"name": tool_name, "args": arguments, "id": f"call_{calls_so_far + 1}"}
    return AIMessage(f"<think>{thought}</think>", tool_calls=[call])
