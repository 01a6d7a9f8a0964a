"""Question parsing and answer rules of the offline OCR policy (pure, standard library only).

* :func:`parse_question`: a question in plain English -> a :class:`Question` (its kind and
  the words it names).
* :func:`parse_lines` / :func:`parse_orientation`: the ``LINE`` / ``ORIENTATION`` records the
  policy's kernel code prints, back into :class:`OcrLine` objects and a transform name.
* :func:`find_line`: the line a question points at (by its starting words or its number).
* :func:`answer_question`: the answer from the lines read; never raises, always a string.

OCR can drop the space between two words (``"Invoicenumber 4471"``: rare with the current
engine, common in small or tight print), so lines are found by comparing texts with spaces
and punctuation removed.

Example:
    >>> q = parse_question('What is the word after "linear" in the text?')
    >>> q.kind, q.anchor
    ('word_after', 'linear')
    >>> answer_question(q, [OcrLine("A linear system", (0, 0, 9, 9), 0.99)])
    'system'
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

__all__ = [
    "NO_TEXT",
    "OcrLine",
    "Question",
    "answer_question",
    "find_line",
    "merge_rows",
    "parse_lines",
    "parse_orientation",
    "parse_orientation_scores",
    "parse_question",
    "squash",
    "words_of",
]

NO_TEXT = "no readable text"
"""The answer when nothing could be read."""

_LINE = re.compile(r"^LINE (-?\d+),(-?\d+),(-?\d+),(-?\d+) ([0-9.]+) \| ?(.*)$", re.M)
_ORIENTATION = re.compile(r"^ORIENTATION (\S+)", re.M)
_SCORE = re.compile(r"(\S+)=(-?\d+(?:\.\d+)?)")
_TRANSFORM_WORDS = (
    "none",
    "rotate_0",
    "rotate_90",
    "rotate_180",
    "rotate_270",
    "flip_horizontal",
    "flip_vertical",
    "rotate_90+flip_horizontal",
    "rotate_90+flip_vertical",
)
_QUOTES = "\"'`\u2018\u2019\u201c\u201d"
_QUOTED = re.compile(f"[{_QUOTES}]([^{_QUOTES}]+)[{_QUOTES}]")
_NUMBER_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "last": -1}
_WORD = re.compile(r"[^\W_]+(?:[-'.,/][^\W_]+)*")
_CODE = re.compile(r"[A-Za-z0-9]*\d[A-Za-z0-9./-]*")
_MONEY = re.compile(r"[-+]?[$€£]?\d[\d,]*(?:\.\d+)?")


@dataclass(frozen=True)
class OcrLine:
    """One line of text read from the image, its pixel box and recognition confidence."""

    text: str
    box: tuple[int, int, int, int]
    conf: float


@dataclass(frozen=True)
class Question:
    """What a question asks.

    Attributes:
        kind: ``read_line``, ``word_after``, ``last_word``, ``shortest_word``,
            ``count_letter``, ``value`` (a label, code or price), ``orientation``,
            ``all_text`` or ``unknown``.
        anchor: The words the question names (a line's start, the word before, a label).
        line_number: A line given by its number (1-based; -1 for the last line).
        letter: The letter to count.
        text: The question itself.
    """

    kind: str
    anchor: str = ""
    line_number: int | None = None
    letter: str = ""
    text: str = ""


def squash(text: str) -> str:
    """``text`` case-folded with every space and punctuation mark removed."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def words_of(text: str) -> list[str]:
    """The words of ``text`` (letters and digits, inner ``-'.,/`` kept)."""
    return _WORD.findall(text)


# -- question parsing ---------------------------------------------------------------------------
def _quoted(text: str) -> str:
    match = _QUOTED.search(text)
    return match.group(1).strip() if match else ""


def _line_ref(text: str) -> tuple[str, int | None]:
    """The line a question names: ``(starting words, None)`` or ``("", number)``."""
    low = text.lower()
    match = re.search(r"line (?:number |no\.? ?)?(\d+)", low) or re.search(
        r"(\d+)(?:st|nd|rd|th) line", low
    )
    if match:
        return "", int(match.group(1))
    for word, number in _NUMBER_WORDS.items():
        if re.search(rf"\b{word} line\b", low):
            return "", number
    starts = re.search(r"(?:starts?|starting|begins?|beginning) with\s+(.+?)\s*[?.]?$", text, re.I)
    if starts:
        clause = starts.group(1)
        return (_quoted(clause) or clause.strip(" " + _QUOTES)), None
    return _quoted(text), None


def parse_question(text: str) -> Question:
    """Parse ``text`` into a :class:`Question` by keyword rules (never raises)."""
    text = str(text or "").strip()
    low = text.lower()
    anchor, number = _line_ref(text)
    if re.search(r"\b(transform|rotat|orient|mirror|flip|upside)", low):
        return Question("orientation", text=text)
    letter = re.search(rf"(?:letter|character)\s+[{_QUOTES}]?([^\W\d_])[{_QUOTES}]?", text, re.I)
    if re.search(r"\bhow many\b|\bcount\b|\bnumber of times\b", low) and letter:
        return Question("count_letter", anchor, number, letter.group(1), text)
    if re.search(r"\b(after|follows|following|next to)\b", low) and "word" in low:
        return Question("word_after", anchor or _tail_word(text), None, text=text)
    if re.search(r"\blast word\b", low):
        return Question("last_word", anchor, number, text=text)
    if re.search(r"\bshortest word\b", low):
        return Question("shortest_word", anchor, number, text=text)
    if (anchor or number is not None) and re.search(r"\bline\b|\bread\b|\bsay\b", low):
        return Question("read_line", anchor, number, text=text)
    if re.search(r"what (?:does|do) (?:the|this) (?:text|page|image|document)", low) or re.search(
        r"\b(all|whole|full) (?:the )?text\b|\btranscribe\b", low
    ):
        return Question("all_text", text=text)
    value = re.search(
        r"what(?:'s| is| are)\s+(?:the\s+)?(.+?)(?:\s+(?:shown|listed|given|written|printed)"
        r"|\s+(?:on|in|of) (?:the|this) (?:image|page|document|receipt|invoice|table))?\s*\??$",
        text,
        re.I,
    )
    if value:
        return Question("value", _quoted(text) or value.group(1).strip(" \"'"), text=text)
    return Question("unknown", anchor, number, text=text)


def _tail_word(text: str) -> str:
    match = re.search(r"after\s+(?:the word\s+)?(\S+)", text, re.I)
    return match.group(1).strip(" \"'?.,") if match else ""


# -- reading the kernel's records ---------------------------------------------------------------
def parse_lines(text: str) -> list[OcrLine]:
    """The ``LINE x0,y0,x1,y1 conf | text`` records in ``text`` (malformed ones skipped)."""
    lines = []
    for match in _LINE.finditer(text or ""):
        try:
            box = tuple(int(match.group(i)) for i in range(1, 5))
            conf = float(match.group(5))
        except ValueError:
            continue
        body = match.group(6).strip()
        if body:
            lines.append(OcrLine(body, box, conf))  # type: ignore[arg-type]
    return lines


def parse_orientation(text: str) -> str | None:
    """The applied transform an ``ORIENTATION`` record names (the last one), or ``None``."""
    found = _ORIENTATION.findall(text or "")
    return found[-1] if found else None


def parse_orientation_scores(text: str) -> dict[str, float]:
    """The ``name=score`` pairs of the last ``ORIENTATION`` record (the candidates' confidence)."""
    records = [line for line in (text or "").splitlines() if line.startswith("ORIENTATION ")]
    scores: dict[str, float] = {}
    for name, value in _SCORE.findall(records[-1] if records else ""):
        with contextlib.suppress(ValueError):
            scores[name] = float(value)
    return scores


def _transformed_for_sure(text: str) -> list[str] | None:
    """The options a question allows when it says the image *was* transformed, else ``None``.

    ``[]`` means "some transform, not named"; a list names the allowed transforms.
    """
    low = text.lower()
    named = [name for name in _TRANSFORM_WORDS if re.search(rf"\b{re.escape(name)}\b", low)]
    if any(name in named for name in ("none", "rotate_0")):
        return None
    if named:
        return named
    if re.search(r"\bwas (?:rotated|flipped|mirrored|transformed)\b", low):
        return []
    return None


def merge_rows(lines: list[OcrLine]) -> list[OcrLine]:
    """Pieces of one printed row (OCR splits a row at wide gaps) joined, rows top to bottom.

    Two pieces share a row when their vertical centres lie within half the smaller height.
    """
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda item: (item.box[1] + item.box[3]) / 2):
        centre, height = (line.box[1] + line.box[3]) / 2, line.box[3] - line.box[1]
        if rows:
            last = rows[-1][-1]
            last_centre = (last.box[1] + last.box[3]) / 2
            if abs(centre - last_centre) <= 0.5 * min(height, last.box[3] - last.box[1]):
                rows[-1].append(line)
                continue
        rows.append([line])
    merged = []
    for row in rows:
        row.sort(key=lambda item: item.box[0])
        box = (
            min(item.box[0] for item in row),
            min(item.box[1] for item in row),
            max(item.box[2] for item in row),
            max(item.box[3] for item in row),
        )
        conf = min(item.conf for item in row)
        merged.append(OcrLine(" ".join(item.text for item in row), box, conf))
    return merged


# -- answering ----------------------------------------------------------------------------------
def find_line(question: Question, lines: list[OcrLine]) -> OcrLine | None:
    """The line ``question`` points at: by number, else the one starting with its anchor."""
    if not lines:
        return None
    if question.line_number is not None:
        n = question.line_number
        index = n - 1 if n > 0 else len(lines) + n
        return lines[index] if 0 <= index < len(lines) else None
    key = squash(question.anchor)
    if not key:
        return None
    starting = [line for line in lines if squash(line.text).startswith(key)]
    if starting:
        return max(starting, key=lambda line: line.conf)
    containing = [line for line in lines if key in squash(line.text)]
    return containing[0] if containing else None


def _after(anchor: str, lines: list[OcrLine]) -> str | None:
    """The word after ``anchor`` (matched word by word, spaces optional)."""
    key = squash(anchor)
    if not key:
        return None
    for line in lines:
        words = words_of(line.text)
        folded = [squash(w) for w in words]
        for i in range(len(words)):
            joined = ""
            for j in range(i, len(words)):
                joined += folded[j]
                if joined == key and j + 1 < len(words):
                    return words[j + 1]
                if not key.startswith(joined):
                    break
        for word in re.findall(r"[^\W_]+", line.text):  # glued: "integerrepresentation"
            if len(word) > len(key) and word.casefold().startswith(key):
                return word[len(key) :]
    return None


def _value(anchor: str, lines: list[OcrLine]) -> str | None:
    """The value a label names: a code or number after it on its line (or the next line)."""
    key_words = [squash(w) for w in words_of(anchor)]
    key_words = [w for w in key_words if w not in {"the", "a", "an", "of", "price", "value"}]
    if not key_words:
        return None
    for index, line in enumerate(lines):
        squashed = squash(line.text)
        if not all(w in squashed for w in key_words):
            continue
        last = key_words[-1]
        low = line.text.casefold()
        cut = low.rfind(last)
        tail = line.text[cut + len(last) :] if cut >= 0 else line.text
        tail = tail.lstrip(" :#.-=")
        money = _MONEY.findall(tail)
        codes = _CODE.findall(tail)
        if money and ("price" in anchor.lower() or "total" in anchor.lower()):
            return money[-1]
        if codes:
            return codes[0]
        if words_of(tail):
            return words_of(tail)[0]
        if index + 1 < len(lines) and words_of(lines[index + 1].text):
            return words_of(lines[index + 1].text)[0]
    return None


def _best_text(question: Question, lines: list[OcrLine]) -> str:
    """The line sharing most words with the question, else the most confident line."""
    asked = {squash(w) for w in words_of(question.text) if len(w) > 2}
    scored = [(len(asked & {squash(w) for w in words_of(line.text)}), line) for line in lines]
    hits = [item for item in scored if item[0] > 0]
    if hits:
        return max(hits, key=lambda item: (item[0], item[1].conf))[1].text
    return max(lines, key=lambda line: line.conf).text


def answer_question(
    question: Question,
    lines: list[OcrLine],
    orientation: str | None = None,
    scores: dict[str, float] | None = None,
) -> str:
    """The answer to ``question`` from the ``lines`` read (a string, never an exception).

    ``scores`` (the kernel's confidence per candidate transform) decide when the judgement
    is "upright" but the question says a transform was applied: the best allowed one wins.
    """
    if question.kind == "orientation":
        if orientation and orientation not in ("none", "unknown"):
            return orientation
        allowed = _transformed_for_sure(question.text)
        if allowed is not None and scores:
            options = {n: v for n, v in scores.items() if n not in ("none", "rotate_0")}
            if allowed:
                options = {n: v for n, v in options.items() if n in allowed} or options
            if options:
                return max(options, key=options.__getitem__)
        # Upright: a question about rotation gets the rotation label, others "none".
        return "rotate_0" if "rotat" in question.text.lower() else "none"
    if not lines:
        return NO_TEXT
    lines = merge_rows(lines)
    if question.kind == "all_text":
        return "\n".join(line.text for line in lines)
    if question.kind == "word_after":
        found = _after(question.anchor, lines)
        if found:
            return found
    if question.kind == "value":
        found = _value(question.anchor, lines)
        if found:
            return found
    line = find_line(question, lines)
    if line is not None:
        words = words_of(line.text)
        if question.kind == "read_line":
            return line.text
        if question.kind == "last_word" and words:
            return words[-1]
        if question.kind == "shortest_word" and words:
            return min(words, key=len)
        if question.kind == "count_letter" and question.letter:
            return str(line.text.casefold().count(question.letter.casefold()))
        return line.text
    return _best_text(question, lines)
