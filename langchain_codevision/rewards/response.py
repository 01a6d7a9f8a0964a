r"""Decode a rollout into assistant turns, the tool call each turn made, and the replies.

Three inputs give the same :class:`Rollout`:

* a **verl response string**: every assistant turn and tool reply after the prompt, decoded
  as verl decodes it (``skip_special_tokens=True``): ``TURN user\n<tool_response>\nTEXT\n
  </tool_response>\nassistant\nTURN ...``; the ``<|im_start|>``/``<|im_end|>`` and vision
  tokens may also still be there;
* a **graph output state** (``messages``), or a list of LangChain messages;
* an **exported trajectory**: a :class:`~langchain_codevision.data.trajectory.Trajectory`,
  a ``trajectories.jsonl`` row (``turns``), a ShareGPT row (``conversations``) or a TRL /
  OpenAI row (``messages``).

Which call counts is the release's rule (``call_rule="release"``): per assistant turn, the
first ``<tool_call>...</tool_call>`` whose inside is exact JSON with ``name`` and
``arguments`` (checked with the protocol's decoder, allowing no repair); only that one runs
(``max_parallel_calls=1``), and only when a tool reply follows it (a call in the last turn
never ran: turn limit or token budget). ``call_rule="tolerant"`` takes the first call the
protocol parser reads, as this package's graph runs it. Native tool calls (tools dialect)
each count when a reply other than "Not run" answers them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..protocol import (
    NOT_RUN_TEXT,
    TOOL_RESPONSE_CLOSE,
    TOOL_RESPONSE_OPEN,
    TOOL_TURN_MARK,
    format_tool_call,
    loads_tolerant,
    parse_model_output,
    unwrap_tool_response,
)

__all__ = [
    "CallRule",
    "Rollout",
    "RolloutTurn",
    "ToolCall",
    "decode_response",
    "render_response",
    "select_call",
]

CallRule = Literal["release", "tolerant"]
_CALL_OPEN, _CALL_CLOSE = "<tool_call>", "</tool_call>"
_VISION = re.compile(r"<\|vision_start\|>(?:<\|image_pad\|>|<\|video_pad\|>)*<\|vision_end\|>")
_BOUNDARY = re.compile(
    r"(?:<\|im_end\|>)?\s*(?:<\|im_start\|>)?user\n"
    r"((?:\s*<tool_response>.*?</tool_response>)+)"
    r"\s*(?:<\|im_end\|>)?\s*(?:<\|im_start\|>)?(?:assistant\n|\Z)",
    re.DOTALL,
)
_OPEN_TAIL = re.compile(
    r"(?:<\|im_end\|>)?\s*(?:<\|im_start\|>)?user\n\s*<tool_response>(?!.*</tool_response>)(.*)\Z",
    re.DOTALL,
)
_REPLY = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)
_SPECIAL = re.compile(r"<\|im_end\|>\s*\Z")
_SPECIAL_TOKENS = re.compile(
    r"<\|(?:im_start|im_end|vision_start|vision_end|image_pad|video_pad|endoftext)\|>"
)


@dataclass(frozen=True)
class ToolCall:
    """One tool call that ran.

    Attributes:
        code: The ``code`` argument as the release reads it (non-strings via ``str()``,
            missing as ``""``; ``""`` when ``arguments`` is no object).
        description: The raw ``description`` argument (see ``ops.normalise_description``).
        image_index: The raw ``image_index`` argument.
        name: The tool name.
        reply: The tool reply's text (vision tokens and tags removed).
        error: Whether the reply counts as an error (it contains ``"Error"``, the release's
            test).
    """

    code: str
    description: Any
    image_index: Any
    name: str
    reply: str
    error: bool


@dataclass(frozen=True)
class RolloutTurn:
    """One assistant turn: its text, the calls of it that ran, and notes on the rest."""

    text: str
    calls: tuple[ToolCall, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rollout:
    """A decoded rollout.

    Attributes:
        text: The response as verl decodes it (what format and answer are read from).
        turns: The assistant turns.
        source: ``"verl"``, ``"state"``, ``"messages"`` or ``"trajectory"``.
        problems: What could not be read (the input degrades, it never raises).
    """

    text: str
    turns: tuple[RolloutTurn, ...]
    source: str
    problems: tuple[str, ...] = ()

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        """Every call that ran, in order."""
        return tuple(call for turn in self.turns for call in turn.calls)


# -- which call of a turn runs ----------------------------------------------------------------
def _arguments(value: Any) -> tuple[str, Any, Any]:
    """``(code, description, image_index)`` read from ``arguments`` as the release does."""
    if not isinstance(value, Mapping):
        return "", "", None
    code = value.get("code", "")
    code = "" if code is None else code if isinstance(code, str) else str(code)
    return code, value.get("description", ""), value.get("image_index")


def _release_call(text: str) -> tuple[tuple[str, Any] | None, str]:
    """The first call the release's hermes parser accepts: ``((name, arguments), note)``."""
    if _CALL_OPEN not in text or _CALL_CLOSE not in text:
        return None, "no <tool_call>...</tool_call> in the turn"
    cursor, rejected = 0, 0
    while True:
        start = text.find(_CALL_OPEN, cursor)
        end = text.find(_CALL_CLOSE, start + len(_CALL_OPEN)) if start >= 0 else -1
        if start < 0 or end < 0:
            break
        inner = text[start + len(_CALL_OPEN) : end]
        cursor = end + len(_CALL_CLOSE)
        repairs: list[str] = []
        value, problem = loads_tolerant(inner.strip(), repairs)
        exact = problem is None and not repairs and isinstance(value, dict)
        if exact and isinstance(value.get("name"), str) and "arguments" in value:
            note = f"{rejected} earlier <tool_call> not exact JSON" if rejected else ""
            return (value["name"], value["arguments"]), note
        rejected += 1
    tolerant = parse_model_output(text, fallback_tool_name=None).tool_calls
    if tolerant:
        fixes = ", ".join(tolerant[0].repaired) or "its structure"
        return (
            None,
            f"no exact-JSON tool call (the tolerant parser would read one despite: {fixes})",
        )
    return None, "no <tool_call> holds exact JSON with name and arguments"


def select_call(text: str, rule: CallRule = "release") -> tuple[tuple[str, Any] | None, str]:
    """The call of an assistant turn that runs under ``rule``: ``((name, arguments), note)``."""
    if rule == "tolerant":
        calls = parse_model_output(text, fallback_tool_name=None).tool_calls
        if not calls:
            return None, "the parser reads no tool call"
        return (calls[0].name, calls[0].arguments), ""
    return _release_call(text)


def _clean_reply(text: str) -> str:
    text = _VISION.sub("", text)
    return text.replace("<image>", "")


def _turn(
    text: str, replies: list[str], rule: CallRule, native: list[tuple[str, Any]]
) -> RolloutTurn:
    notes: list[str] = []
    if native:
        calls = []
        for position, (name, args) in enumerate(native):
            reply = replies[position] if position < len(replies) else None
            if reply is None or reply.strip() == NOT_RUN_TEXT:
                notes.append(f"native call {position + 1} did not run")
                continue
            code, description, index = _arguments(args)
            calls.append(ToolCall(code, description, index, name, reply, "Error" in reply))
        return RolloutTurn(text, tuple(calls), tuple(notes))
    chosen, note = select_call(text, rule)
    if note:
        notes.append(note)
    if chosen is None:
        if replies:
            notes.append("a tool reply follows, but no call counts under the release's rule")
        return RolloutTurn(text, (), tuple(notes))
    if not replies or replies[0].strip() == NOT_RUN_TEXT:
        notes.append("the call did not run (no tool reply follows: turn limit or token budget)")
        return RolloutTurn(text, (), tuple(notes))
    name, args = chosen
    code, description, index = _arguments(args)
    if not isinstance(args, Mapping):
        notes.append("arguments are no JSON object: no code read")
    reply = replies[0]
    return RolloutTurn(
        text, (ToolCall(code, description, index, name, reply, "Error" in reply),), tuple(notes)
    )


# -- verl strings -----------------------------------------------------------------------------
def _strip_turn(text: str) -> str:
    return _SPECIAL.sub("", text)


def _decode_verl(text: str, rule: CallRule) -> Rollout:
    pieces: list[tuple[str, list[str]]] = []
    cursor = 0
    for match in _BOUNDARY.finditer(text):
        replies = [r.strip("\n") for r in _REPLY.findall(match.group(1))]
        pieces.append((text[cursor : match.start()], [_clean_reply(r) for r in replies]))
        cursor = match.end()
    last = text[cursor:]
    tail = _OPEN_TAIL.search(last)
    if tail:  # a reply cut by the token budget: the call before it ran
        pieces.append((last[: tail.start()], [_clean_reply(tail.group(1).strip("\n"))]))
        last = ""
    pieces.append((last, []))
    turns = [_turn(_strip_turn(body), replies, rule, []) for body, replies in pieces]
    if len(turns) > 1 and not turns[-1].text.strip():
        turns.pop()
    return Rollout(text, tuple(turns), "verl")


# -- messages, states, trajectories ------------------------------------------------------------
def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, Mapping) and block.get("type") == "text":
            parts.append(str(block.get("text") or ""))
    return "".join(parts)


def _native_calls(message: Any) -> list[tuple[str, Any]]:
    calls = getattr(message, "tool_calls", None) or []
    return [(str(c.get("name", "")), c.get("args", {})) for c in calls if isinstance(c, Mapping)]


def _entries_from_messages(messages: Sequence[Any]) -> list[tuple[str, str, list[tuple[str, Any]]]]:
    entries = []
    for message in messages:
        kind = getattr(message, "type", None)
        text = _content_text(getattr(message, "content", ""))
        if kind == "ai":
            native = _native_calls(message)
            if native and _CALL_OPEN not in text:
                rendered = "\n".join(
                    format_tool_call(n, a if isinstance(a, dict) else {}) for n, a in native
                )
                text = f"{text}\n{rendered}" if text else rendered
            entries.append(("assistant", text, native))
        elif kind == "tool" or (
            kind == "human"
            and (getattr(message, "additional_kwargs", None) or {}).get(TOOL_TURN_MARK)
        ):
            entries.append(("tool", unwrap_tool_response(text), []))
        elif kind == "human":
            entries.append(("user", text, []))
    return entries


_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "observation": "tool",
    "tool": "tool",
    "function": "tool",
}


def _entries_from_rows(
    rows: Sequence[Any], role_key: str, text_key: str
) -> list[tuple[str, str, list[tuple[str, Any]]]]:
    entries = []
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        role = _ROLES.get(str(row.get(role_key, "")), "")
        text = _content_text(row.get(text_key, ""))
        if role == "user" and text.startswith(TOOL_RESPONSE_OPEN):
            role, text = "tool", unwrap_tool_response(text)
        if role:
            entries.append((role, text, []))
    return entries


def render_response(entries: Sequence[tuple[str, str]]) -> str:
    """The verl response string of ``(role, text)`` turns after the prompt."""
    out: list[str] = []
    previous = ""
    for role, text in entries:
        if role == "tool":
            out.append("" if previous == "tool" else "user")
            out.append(f"\n{TOOL_RESPONSE_OPEN}{_clean_reply(text)}{TOOL_RESPONSE_CLOSE}")
        elif role == "user":
            out.append(f"user\n{text}")
        else:
            if previous in ("tool", "user"):
                out.append("\nassistant\n")
            out.append(text)
        previous = role
    return "".join(out)


def _from_entries(
    entries: list[tuple[str, str, list[tuple[str, Any]]]], source: str, rule: CallRule
) -> Rollout:
    start = next((i for i, e in enumerate(entries) if e[0] == "assistant"), len(entries))
    entries = entries[start:]
    problems = () if entries else ("no assistant turn",)
    text = render_response([(role, body) for role, body, _ in entries])
    turns = []
    for position, (role, body, native) in enumerate(entries):
        if role != "assistant":
            continue
        replies = []
        for later in entries[position + 1 :]:
            if later[0] != "tool":
                break
            replies.append(_clean_reply(later[1]))
        turns.append(_turn(body, replies, rule, native))
    return Rollout(text, tuple(turns), source, problems)


def decode_response(response: Any, *, call_rule: CallRule = "release") -> Rollout:
    """Decode any supported rollout form into a :class:`Rollout` (never raises).

    Args:
        response: A verl response string, a graph output state, a list of messages, a
            ``Trajectory`` or an exported row (see the module docstring).
        call_rule: ``"release"`` (default) or ``"tolerant"``.
    """
    try:
        return _decode(response, call_rule)
    except Exception as exc:  # a guard: malformed input degrades, never raises
        return Rollout("", (), "unknown", (f"could not decode the response: {exc!r}",))


def _decode(response: Any, rule: CallRule) -> Rollout:
    if isinstance(response, bytes):
        response = response.decode("utf-8", "replace")
    if isinstance(response, str):  # special tokens still in: drop them as verl's decode does
        return _decode_verl(_SPECIAL_TOKENS.sub("", response), rule)
    turns = getattr(response, "turns", None)
    if turns is not None and not isinstance(response, Mapping):  # a Trajectory
        entries = [(t.role, t.text, []) for t in turns]
        return _from_entries(entries, "trajectory", rule)
    if isinstance(response, Mapping):
        if isinstance(response.get("turns"), list):
            return _from_entries(
                _entries_from_rows(response["turns"], "role", "text"), "trajectory", rule
            )
        if isinstance(response.get("conversations"), list):
            rows = response["conversations"]
            return _from_entries(_entries_from_rows(rows, "from", "value"), "trajectory", rule)
        messages = response.get("messages")
        if isinstance(messages, list):
            if messages and isinstance(messages[0], Mapping):
                return _from_entries(
                    _entries_from_rows(messages, "role", "content"), "trajectory", rule
                )
            return _from_entries(_entries_from_messages(messages), "state", rule)
        return Rollout("", (), "state", ("the mapping has no messages, turns or conversations",))
    if isinstance(response, (list, tuple)):
        return _from_entries(_entries_from_messages(response), "messages", rule)
    return Rollout("", (), "unknown", (f"cannot read a rollout from {type(response).__name__}",))
