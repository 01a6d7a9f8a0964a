"""Decode the near-JSON that models write inside ``<tool_call>`` tags.

:func:`loads_tolerant` accepts single quotes, trailing commas, Python literals, raw control
characters and stray backslashes inside strings, unescaped inner quotes in code, and text
before or after the object; it records each repair it needed, and reports what it could not
repair with the position where JSON failed.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["json_end", "loads_tolerant"]

_JSON_ESCAPES = set('"\\/bfnrtu')
_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")


def json_end(text: str, start: int) -> int:
    """Offset just after the balanced object starting at ``start`` (best effort)."""
    depth, quote, escaped = 0, "", False
    for offset in range(start, len(text)):
        char = text[offset]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return offset + 1
    return len(text)


def loads_tolerant(body: str, repairs: list[str]) -> tuple[Any, str | None]:
    """Decode JSON, repairing the usual near misses; return (value, error or None)."""
    first = min((at for at in (body.find("{"), body.find("[")) if at >= 0), default=-1)
    if first < 0:
        return None, f"no JSON object found in {body[:60]!r}"
    if body[:first].strip():
        repairs.append("text before JSON")
    body = body[first:]

    value, error, end = _raw_decode(body)
    if error is None:
        _note_trailing(body, end, repairs)
        return value, None

    first_error = error
    for careful in (False, True):
        fixed, fixes = _normalise(body, guess_inner_quotes=careful)
        value, error, end = _raw_decode(fixed)
        if error is None:
            repairs.extend(fixes)
            _note_trailing(fixed, end, repairs)
            return value, None
    return None, first_error


def _raw_decode(body: str) -> tuple[Any, str | None, int]:
    try:
        value, end = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as exc:
        near = body[max(0, exc.pos - 20) : exc.pos + 20]
        return None, f"{exc.msg} at line {exc.lineno} column {exc.colno} (near {near!r})", 0
    except (ValueError, RecursionError) as exc:
        return None, str(exc) or type(exc).__name__, 0
    return value, None, end


def _note_trailing(body: str, end: int, repairs: list[str]) -> None:
    if body[end:].strip():
        repairs.append("text after JSON")


def _normalise(src: str, *, guess_inner_quotes: bool) -> tuple[str, list[str]]:
    """Rewrite near-JSON into JSON in one pass over the text.

    Converts single-quoted strings, escapes raw control characters and stray backslashes
    inside strings, drops trailing commas and maps Python's ``True``/``False``/``None``.
    With ``guess_inner_quotes`` a double quote only closes a string when what follows it
    can follow a JSON string (``,`` ``}`` ``]`` ``:`` or the end), so code such as
    ``print("hi")`` written unescaped inside ``"code"`` survives.
    """
    out: list[str] = []
    fixes: list[str] = []
    length = len(src)
    i = 0
    while i < length:
        char = src[i]
        if char in "\"'":
            if char == "'":
                fixes.append("single quotes")
            i = _copy_string(src, i, out, fixes, guess_inner_quotes)
        elif char == ",":
            j = i + 1
            while j < length and src[j] in " \t\r\n":
                j += 1
            if j < length and src[j] in "}]":
                fixes.append("trailing comma")
            else:
                out.append(char)
            i += 1
        elif char.isalpha() or char == "_":
            j = i
            while j < length and (src[j].isalnum() or src[j] == "_"):
                j += 1
            word = src[i:j]
            if word in _PY_LITERALS:
                fixes.append("python literals")
                word = _PY_LITERALS[word]
            out.append(word)
            i = j
        else:
            out.append(char)
            i += 1
    return "".join(out), list(dict.fromkeys(fixes))


def _copy_string(
    src: str, start: int, out: list[str], fixes: list[str], guess_inner_quotes: bool
) -> int:
    """Copy the string starting at ``start`` as a JSON string; return the index after it."""
    quote = src[start]
    length = len(src)
    out.append('"')
    i = start + 1
    while i < length:
        char = src[i]
        if char == "\\" and i + 1 < length:
            nxt = src[i + 1]
            if nxt == "'":
                out.append("'")  # \' is valid in Python strings, not in JSON
            elif nxt in _JSON_ESCAPES and (nxt != "u" or _HEX4.match(src, i + 2)):
                out.append(char + nxt)
            else:
                # A lone backslash (regex code, Windows paths): keep it literally.
                out.append("\\\\")
                out.append(_CONTROL_ESCAPES.get(nxt, nxt))
                fixes.append("invalid escapes")
            i += 2
            continue
        if char == quote and (not guess_inner_quotes or _closes_string(src, i + 1)):
            out.append('"')
            return i + 1
        if char == '"':
            out.append('\\"')
            if quote == '"':
                fixes.append("unescaped quotes in strings")
        elif char in _CONTROL_ESCAPES or ord(char) < 0x20:
            out.append(_CONTROL_ESCAPES.get(char, f"\\u{ord(char):04x}"))
            fixes.append("raw control characters in strings")
        else:
            out.append(char)
        i += 1
    return length  # unterminated: json will report it


def _closes_string(src: str, after: int) -> bool:
    j = after
    while j < len(src) and src[j] in " \t\r\n":
        j += 1
    return j >= len(src) or src[j] in ",}]:"
