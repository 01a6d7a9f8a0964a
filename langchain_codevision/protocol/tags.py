"""Parse what a vision-language model wrote under the text protocol.

Models fine-tuned for "thinking with code" (and prompted general models) answer in a
tagged text format::

    <think>The page is upside down; rotate it first.</think>
    <tool_call>
    {"name": "code_image_tool", "arguments": {"code": "result = image.rotate(180)",
     "description": "rotate", "image_index": 0}}
    </tool_call>

or, once they are done::

    <think>...</think>
    <answer>42</answer>

Real models miss this format in small ways: a ```` ```python ```` fence around the code or
the JSON, no closing ``</tool_call>`` (a stop sequence or the token budget cut it off),
single-quoted or Python-literal "JSON", trailing commas, code with raw newlines inside the
JSON string, ``arguments`` serialised as a string, or a bare fenced code block with no
``<tool_call>`` at all. :func:`parse_model_output` accepts all of these, records which
repairs it needed, and reports what it could not repair as readable errors (so the model
can be told what to fix). It never raises on a string.

:func:`format_tool_call` writes the canonical form (the one Qwen chat templates render),
which the parser reads back unchanged.

Example:
    >>> out = parse_model_output('<think>rotate</think><tool_call>{"name": "code_image_tool",'
    ...                          ' "arguments": {"code": "result = img"}}</tool_call>')
    >>> out.kind, out.tool_calls[0].arguments
    ('tool_call', {'code': 'result = img'})
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .code_repair import strip_fences
from .json_repair import json_end, loads_tolerant
from .schema import TOOL_NAME

__all__ = [
    "ANSWER_CLOSE",
    "ANSWER_OPEN",
    "DEFAULT_TOOL_NAME",
    "MalformedToolCall",
    "OutputKind",
    "ParsedOutput",
    "ParsedToolCall",
    "format_tool_call",
    "parse_model_output",
]

DEFAULT_TOOL_NAME = TOOL_NAME
"""The tool a bare fenced code block is attributed to."""

OutputKind = Literal["tool_call", "answer", "malformed", "plain"]

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_CALL_OPEN, _CALL_CLOSE = "<tool_call>", "</tool_call>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
_ANSWER_OPEN, _ANSWER_CLOSE = ANSWER_OPEN, ANSWER_CLOSE

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)(?:\n?[ \t]*```|\Z)", re.DOTALL)
_WRAPPING_FENCE = re.compile(
    r"\A\s*```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n?(.*?)\n?[ \t]*(?:```\s*)?\Z", re.DOTALL
)
_BARE_CALL = re.compile(r"""\{\s*["']name["']\s*:""")
_NAME_HINT = re.compile(r"""["']name["']\s*:\s*["']([^"'\n]{1,200})["']""")
_PYTHON_FENCE_LANGS = {"python", "py", "python3", ""}


@dataclass(frozen=True)
class ParsedToolCall:
    """One tool call read from model text.

    Attributes:
        name: The tool's name.
        arguments: The decoded arguments.
        raw: The text the call was read from (inside the tags, or the fenced code block).
        repaired: The tolerance fixes that were needed, e.g. ``"single quotes"``; empty when
            the model wrote the canonical format.
        span: Start and end offsets in the full text of the markup this call came from
            (tags included), so callers can cut it out of the visible content.
    """

    name: str
    arguments: dict[str, Any]
    raw: str
    repaired: tuple[str, ...] = ()
    span: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class MalformedToolCall:
    """A ``<tool_call>`` block that could not be decoded.

    Attributes:
        raw: The text inside the tags.
        error: Why it could not be decoded (with the position where JSON failed).
        name: The tool name, when one could still be recognised.
        span: Start and end offsets of the markup in the full text.
    """

    raw: str
    error: str
    name: str | None = None
    span: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class ParsedOutput:
    """Everything read from one model turn.

    Attributes:
        text: The original text.
        think: The reasoning inside ``<think>...</think>`` (stripped), if any.
        tool_calls: The decoded tool calls, in order (the loop runs the first).
        answer: The final answer inside ``<answer>...</answer>`` (stripped), if any.
        errors: Human-readable problems, suitable to send back to the model.
        malformed_calls: ``<tool_call>`` blocks that could not be decoded.
    """

    text: str
    think: str | None
    tool_calls: list[ParsedToolCall]
    answer: str | None
    errors: list[str]
    malformed_calls: list[MalformedToolCall] = field(default_factory=list)

    @property
    def kind(self) -> OutputKind:
        """What the turn asks for next.

        ``"tool_call"`` when at least one call decoded (it wins over an answer written in
        the same turn, which is reported in ``errors``), ``"answer"`` for a non-empty
        answer, ``"malformed"`` when the turn tried the protocol and failed, ``"plain"``
        for text with no protocol markup.
        """
        if self.tool_calls:
            return "tool_call"
        if self.answer:
            return "answer"
        if self.errors or self.malformed_calls:
            return "malformed"
        return "plain"

    @property
    def content(self) -> str:
        """The text with the markup of the decoded tool calls cut out (stripped)."""
        spans = sorted(call.span for call in self.tool_calls if call.span != (0, 0))
        if not spans:
            return self.text.strip()
        pieces, cursor = [], 0
        for start, end in spans:
            if start >= cursor:
                pieces.append(self.text[cursor:start])
                cursor = end
        pieces.append(self.text[cursor:])
        return "".join(pieces).strip()


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    r"""Write a tool call in the canonical hermes form.

    The output matches what Qwen2.5/Qwen3(-VL) chat templates render for an assistant
    ``tool_calls`` entry and reads back through :func:`parse_model_output` unchanged.

    Args:
        name: The tool's name.
        arguments: JSON-serialisable arguments.

    Returns:
        ``<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>``.
    """
    payload = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{_CALL_OPEN}\n{payload}\n{_CALL_CLOSE}"


def parse_model_output(
    text: str,
    *,
    fallback_tool_name: str | None = DEFAULT_TOOL_NAME,
) -> ParsedOutput:
    """Read the reasoning, tool calls and answer out of one model turn.

    Args:
        text: What the model generated for one assistant turn.
        fallback_tool_name: When the turn has neither ``<tool_call>`` nor ``<answer>`` but
            contains a fenced Python block, treat the block as a call of this tool with
            ``{"code": ...}`` as its arguments. ``None`` turns this off.

    Returns:
        The parsed turn; problems are reported in ``errors``, never raised.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    try:
        return _parse(text, fallback_tool_name)
    except Exception as exc:  # pragma: no cover - a guard; the parser is fuzzed
        return ParsedOutput(text, None, [], None, [f"could not parse the output: {exc!r}"])


# --------------------------------------------------------------------------- structure


def _parse(text: str, fallback_tool_name: str | None) -> ParsedOutput:
    errors: list[str] = []
    think, body_start = _find_think(text, errors)

    calls: list[ParsedToolCall] = []
    malformed: list[MalformedToolCall] = []
    segments = _call_segments(text, body_start)
    for index, (start, end, inner, closed) in enumerate(segments, start=1):
        repairs = [] if closed else ["missing </tool_call>"]
        _decode_segment(inner, (start, end), index, repairs, calls, malformed, errors)

    answer = _find_answer(text, body_start, errors)

    if not segments and answer is None:
        bare = _bare_json_call(text, body_start)
        if bare is not None:
            calls.append(bare)
        elif fallback_tool_name is not None:
            fenced = _fenced_code_call(text, body_start, fallback_tool_name)
            if fenced is not None:
                calls.append(fenced)

    if calls and answer is not None:
        errors.append(
            "the turn has both a <tool_call> and an <answer>: call a tool OR answer, not both"
        )
    return ParsedOutput(text, think, calls, answer, errors, malformed)


def _find_think(text: str, errors: list[str]) -> tuple[str | None, int]:
    """Return the reasoning and where the rest of the turn starts."""
    open_at = text.find(_THINK_OPEN)
    close_at = text.find(_THINK_CLOSE, open_at + 1 if open_at >= 0 else 0)
    if open_at >= 0 and close_at >= 0:
        return text[open_at + len(_THINK_OPEN) : close_at].strip(), close_at + len(_THINK_CLOSE)
    if open_at < 0 and close_at >= 0:
        # Templates that prefill "<think>\n" leave only the closing tag in the output.
        return text[:close_at].strip(), close_at + len(_THINK_CLOSE)
    if open_at >= 0:
        stops = [
            at
            for at in (text.find(_CALL_OPEN, open_at), text.find(_ANSWER_OPEN, open_at))
            if at >= 0
        ]
        end = min(stops) if stops else len(text)
        errors.append("<think> is never closed with </think>")
        return text[open_at + len(_THINK_OPEN) : end].strip(), end
    return None, 0


def _call_segments(text: str, start: int) -> list[tuple[int, int, str, bool]]:
    """Locate ``<tool_call>`` blocks: (markup start, markup end, inner text, closed)."""
    segments = []
    cursor = start
    while True:
        open_at = text.find(_CALL_OPEN, cursor)
        if open_at < 0:
            break
        inner_start = open_at + len(_CALL_OPEN)
        close_at = text.find(_CALL_CLOSE, inner_start)
        next_open = text.find(_CALL_OPEN, inner_start)
        if close_at >= 0 and (next_open < 0 or close_at < next_open):
            end = close_at + len(_CALL_CLOSE)
            segments.append((open_at, end, text[inner_start:close_at], True))
        else:
            stop = next_open if next_open >= 0 else len(text)
            answer_at = text.find(_ANSWER_OPEN, inner_start, stop)
            if answer_at >= 0:
                stop = answer_at
            segments.append((open_at, stop, text[inner_start:stop], False))
            end = stop
        cursor = end
    return segments


def _find_answer(text: str, start: int, errors: list[str]) -> str | None:
    """Return the last answer (an unclosed one runs to the end of the text)."""
    answer = None
    cursor = start
    while True:
        open_at = text.find(_ANSWER_OPEN, cursor)
        if open_at < 0:
            break
        inner = open_at + len(_ANSWER_OPEN)
        close_at = text.find(_ANSWER_CLOSE, inner)
        if close_at < 0:
            # A stop sequence on "</answer>" removes the closing tag: accept it silently.
            answer, cursor = text[inner:], len(text)
            break
        answer, cursor = text[inner:close_at], close_at + len(_ANSWER_CLOSE)
    if answer is None:
        return None
    answer = answer.strip()
    if not answer:
        errors.append("<answer></answer> is empty: put the final answer between the tags")
    return answer


# --------------------------------------------------------------------------- tool calls


def _decode_segment(
    inner: str,
    span: tuple[int, int],
    index: int,
    repairs: list[str],
    calls: list[ParsedToolCall],
    malformed: list[MalformedToolCall],
    errors: list[str],
) -> None:
    body = inner.strip()
    fence = _WRAPPING_FENCE.match(body)
    if fence is not None:
        body = fence.group(1).strip()
        repairs.append("code fence")
    if not body:
        error = f"<tool_call> #{index} is empty"
        errors.append(error)
        malformed.append(MalformedToolCall(inner, error, None, span))
        return
    value, problem = loads_tolerant(body, repairs)
    if problem is not None:
        error = f"<tool_call> #{index} is not valid JSON: {problem}"
        errors.append(error)
        hint = _NAME_HINT.search(body)
        malformed.append(MalformedToolCall(inner, error, hint.group(1) if hint else None, span))
        return
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list):
        repairs.append("list of calls")
    for item in items:
        call, problem = _to_call(item, inner, repairs, span)
        if call is None:
            error = f"<tool_call> #{index}: {problem}"
            errors.append(error)
            name = item.get("name") if isinstance(item, dict) else None
            malformed.append(
                MalformedToolCall(inner, error, name if isinstance(name, str) else None, span)
            )
        else:
            calls.append(call)


def _to_call(
    item: Any, raw: str, repairs: list[str], span: tuple[int, int]
) -> tuple[ParsedToolCall | None, str]:
    fixes = list(repairs)
    if not isinstance(item, dict):
        return None, f"expected a JSON object with a name and arguments, got {item!r:.80}"
    if "name" not in item and isinstance(item.get("function"), dict):
        item = item["function"]
        fixes.append("function wrapper")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        return None, 'the object has no "name" string'
    if "arguments" in item:
        arguments = item["arguments"]
    elif "parameters" in item:
        arguments = item["parameters"]
        fixes.append("parameters key")
    else:
        arguments = {}
        fixes.append("missing arguments")
    if isinstance(arguments, str):
        decoded, problem = loads_tolerant(arguments.strip() or "{}", fixes)
        if problem is not None or not isinstance(decoded, dict):
            why = problem or "not an object"
            return None, f'"arguments" is a string that is not a JSON object ({why})'
        arguments = decoded
        fixes.append("arguments as JSON string")
    if arguments is None:
        arguments = {}
        fixes.append("missing arguments")
    if not isinstance(arguments, dict):
        return None, f'"arguments" must be an object, got {type(arguments).__name__}'
    code = arguments.get("code")
    if isinstance(code, str):
        unfenced = strip_fences(code)
        if unfenced != code:
            arguments = {**arguments, "code": unfenced}
            fixes.append("code fence in code")
    return ParsedToolCall(name.strip(), arguments, raw, tuple(dict.fromkeys(fixes)), span), ""


def _bare_json_call(text: str, start: int) -> ParsedToolCall | None:
    """A ``{"name": ..., "arguments": ...}`` object written without tags."""
    match = _BARE_CALL.search(text, start)
    if match is None:
        return None
    repairs = ["JSON without <tool_call> tags"]
    value, problem = loads_tolerant(text[match.start() :], repairs)
    if problem is not None or not isinstance(value, dict) or "arguments" not in value:
        return None
    end = json_end(text, match.start())
    call, _ = _to_call(value, text[match.start() : end], repairs, (match.start(), end))
    return call


def _fenced_code_call(text: str, start: int, tool_name: str) -> ParsedToolCall | None:
    """A fenced Python block written instead of a tool call."""
    for match in _FENCE.finditer(text, start):
        lang, code = match.group(1).lower(), match.group(2)
        if lang in _PYTHON_FENCE_LANGS and code.strip():
            return ParsedToolCall(
                tool_name,
                {"code": code.strip("\n")},
                match.group(0),
                ("python code block without tool_call",),
                (match.start(), match.end()),
            )
    return None
