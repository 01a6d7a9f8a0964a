"""From generated tokens to LangChain messages: decoding, stop sequences, tool calls.

One set of rules serves ``invoke`` and ``stream`` so that the chunks of a stream add up to
the message ``invoke`` returns:

* text is decoded without special tokens; output is cut before the first stop sequence
  (as hosted chat APIs do);
* with tools bound, the text is read with :func:`~langchain_codevision.parsing.
  parse_model_output`: decoded calls become ``tool_calls`` (and their markup leaves the
  content), undecodable ones become ``invalid_tool_calls``;
* while streaming with tools bound, text that may turn out to be tool-call markup is held
  back until it is known; everything else is sent as soon as it is decoded.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk

from langchain_codevision.protocol import ParsedOutput, parse_model_output

__all__ = [
    "FinishReason",
    "Finished",
    "StreamAssembler",
    "TokenStreamer",
    "cancel_criteria",
    "cut_at_stop",
    "finish",
    "last_chunk",
    "to_message",
]

FinishReason = Literal["stop", "length", "tool_calls"]

# Where tool-call markup can begin: a tag, a code fence, or a bare {"name": ... object.
_MARKERS = ("<tool_call>", "```")
_BARE_START = re.compile(r"""\{\s*(?:["'](?:n(?:a(?:m(?:e(?:["']\s*:?)?)?)?)?)?)?\s*\Z""")
_BARE_FULL = re.compile(r"""\{\s*["']name["']\s*:""")


@dataclass
class Finished:
    """The final reading of one generation.

    Attributes:
        content: Visible text (tool-call markup removed when tools are bound).
        tool_calls: LangChain tool calls.
        invalid_tool_calls: Calls that could not be decoded.
        finish_reason: ``"tool_calls"``, ``"stop"`` or ``"length"``.
        parsed: The full parse, when tools were bound.
    """

    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    invalid_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    parsed: ParsedOutput | None = None


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop sequence; say whether one was found."""
    hits = [at for at in (text.find(s) for s in stop if s) if at >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def finish(
    text: str,
    *,
    tools_bound: bool,
    stopped: bool,
    hit_length: bool,
    fallback_tool: str | None,
) -> Finished:
    """Read the final text of a generation.

    Args:
        text: The decoded text, already cut at a stop sequence (prefill included).
        tools_bound: Whether tools were bound (only then are tool calls parsed).
        stopped: An end-of-turn token or a stop sequence ended the generation.
        hit_length: The token budget (or the time limit) ended it.
        fallback_tool: A bound tool that a bare fenced code block is attributed to.

    Returns:
        Content, tool calls and the finish reason.
    """
    reason: FinishReason = "length" if hit_length and not stopped else "stop"
    if not tools_bound:
        return Finished(text, finish_reason=reason)
    parsed = parse_model_output(text, fallback_tool_name=fallback_tool)
    calls = [
        tool_call(name=call.name, args=call.arguments, id=_call_id()) for call in parsed.tool_calls
    ]
    # The markup (tags included) is the raw "args" of a call that could not be decoded:
    # LangChain's chunk merging then keeps it invalid in streams too.
    invalid = [
        invalid_tool_call(
            name=bad.name, args=text[bad.span[0] : bad.span[1]], id=_call_id(), error=bad.error
        )
        for bad in parsed.malformed_calls
    ]
    return Finished(
        parsed.content,
        calls,
        invalid,
        "tool_calls" if calls else reason,
        parsed,
    )


def to_message(result: Finished, metadata: dict[str, Any], usage: dict[str, int]) -> AIMessage:
    """Build the ``AIMessage`` that ``invoke`` returns."""
    return AIMessage(
        content=result.content,
        tool_calls=result.tool_calls,
        invalid_tool_calls=result.invalid_tool_calls,
        response_metadata={**metadata, "finish_reason": result.finish_reason},
        usage_metadata=_usage(usage),
    )


def _usage(usage: dict[str, int]) -> Any:
    return {
        "input_tokens": usage["input_tokens"],
        "output_tokens": usage["output_tokens"],
        "total_tokens": usage["input_tokens"] + usage["output_tokens"],
    }


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


# --------------------------------------------------------------------------- streaming


class StreamAssembler:
    """Turn decoded text pieces into message chunks under the rules above.

    Args:
        stop: Stop sequences (output ends before the first one).
        tools_bound: Whether tools are bound.
        fallback_tool: See :func:`finish`.
        prefill: Text the prompt already ends with (a forced tool call), which belongs to
            the output.
    """

    def __init__(
        self,
        *,
        stop: Sequence[str],
        tools_bound: bool,
        fallback_tool: str | None,
        prefill: str = "",
    ) -> None:
        self._stop = [s for s in stop if s]
        self._tools = tools_bound
        self._fallback = fallback_tool
        self.text = prefill
        self.emitted = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add decoded text; return the content that can be sent now ("" if none)."""
        if self.stopped or not piece:
            return ""
        self.text += piece
        if self._stop:
            self.text, self.stopped = cut_at_stop(self.text, self._stop)
        safe = self.text[: self._safe_end(self.text)]
        if self._tools:
            safe = safe.lstrip()
            safe = safe[: len(safe.rstrip())]
        if not safe.startswith(self.emitted) or len(safe) <= len(self.emitted):
            return ""
        delta = safe[len(self.emitted) :]
        self.emitted = safe
        return delta

    def close(self, *, ended_by_eos: bool, hit_length: bool) -> tuple[str, Finished]:
        """Finish the stream; return the rest of the content and the final reading."""
        result = finish(
            self.text,
            tools_bound=self._tools,
            stopped=self.stopped or ended_by_eos,
            hit_length=hit_length,
            fallback_tool=self._fallback,
        )
        rest = (
            result.content[len(self.emitted) :] if result.content.startswith(self.emitted) else ""
        )
        self.emitted += rest
        return rest, result

    def _safe_end(self, text: str) -> int:
        """Length of the prefix that can no longer change meaning."""
        end = len(text)
        if self._stop:
            end = min(end, _partial_tail(text, self._stop))
        if self._tools:
            end = min(end, _markup_start(text))
        return end


def last_chunk(
    rest: str, result: Finished, metadata: dict[str, Any], usage: dict[str, int]
) -> AIMessageChunk:
    """The closing chunk: remaining content, tool calls, usage and metadata."""
    chunks = [
        tool_call_chunk(
            name=call["name"],
            args=json.dumps(call["args"], ensure_ascii=False),
            id=call["id"],
            index=i,
        )
        for i, call in enumerate(result.tool_calls)
    ]
    offset = len(chunks)
    chunks += [
        tool_call_chunk(name=bad["name"], args=bad["args"], id=bad["id"], index=offset + i)
        for i, bad in enumerate(result.invalid_tool_calls)
    ]
    return AIMessageChunk(
        content=rest,
        tool_call_chunks=chunks,
        response_metadata={**metadata, "finish_reason": result.finish_reason},
        usage_metadata=_usage(usage),
        chunk_position="last",
    )


def _partial_tail(text: str, needles: Sequence[str]) -> int:
    """Start of a suffix of ``text`` that is a proper prefix of a needle (else len)."""
    best = len(text)
    for needle in needles:
        for size in range(min(len(needle) - 1, len(text)), 0, -1):
            if needle.startswith(text[-size:]):
                best = min(best, len(text) - size)
                break
    return best


def _markup_start(text: str) -> int:
    """Where tool-call markup starts or may start (``len(text)`` when nowhere)."""
    hits = [at for at in (text.find(m) for m in _MARKERS) if at >= 0]
    bare = _BARE_FULL.search(text)
    if bare:
        hits.append(bare.start())
    brace = text.rfind("{")
    if brace >= 0 and _BARE_START.match(text, brace):
        hits.append(brace)
    hits.append(_partial_tail(text, _MARKERS))
    return min(hits)


# --------------------------------------------------------------------------- decoding


class TokenStreamer:
    """A transformers streamer that decodes generated tokens one at a time.

    ``generate`` calls :meth:`put` with the prompt first (skipped) and then with each new
    token; :meth:`end` when it is done. Text goes to ``sink`` as soon as it forms whole
    characters, decoded with a short look-back window so that the pieces add up to
    ``tokenizer.decode(all_tokens)``.

    Args:
        tokenizer: The tokenizer.
        sink: Receives text pieces, then :data:`END`.
    """

    END = object()

    def __init__(self, tokenizer: Any, sink: Callable[[Any], None]) -> None:
        self._tokenizer = tokenizer
        self._sink = sink
        self._tokens: list[int] = []
        self._prefix = 0
        self._read = 0
        self._prompt_seen = False
        self.last_token: int | None = None

    @property
    def count(self) -> int:
        """Tokens generated so far."""
        return len(self._tokens)

    def put(self, value: Any) -> None:
        """Receive the prompt (first call) or the next token(s)."""
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        ids = [int(i) for i in value.reshape(-1).tolist()]
        if not ids:
            return
        self._tokens.extend(ids)
        self.last_token = ids[-1]
        before = self._decode(self._prefix, self._read)
        after = self._decode(self._prefix, len(self._tokens))
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._sink(after[len(before) :])
            self._prefix, self._read = self._read, len(self._tokens)

    def end(self) -> None:
        """Flush what is left and signal the end."""
        before = self._decode(self._prefix, self._read)
        after = self._decode(self._prefix, len(self._tokens))
        if len(after) > len(before):
            self._sink(after[len(before) :])
        self._sink(self.END)

    def _decode(self, start: int, stop: int) -> str:
        if stop <= start:
            return ""
        return str(self._tokenizer.decode(self._tokens[start:stop], skip_special_tokens=True))


def cancel_criteria(event: threading.Event, torch: Any, base: Any) -> Any:
    """A ``StoppingCriteria`` that ends generation once ``event`` is set."""

    class _Cancel(base):  # type: ignore[misc, valid-type]
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool)

    return _Cancel()
