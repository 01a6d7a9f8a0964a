"""Final answers: take them out of a model's reply and decide whether they are right.

Two release rules, reproduced exactly (they decide RL parity with the CodeVision release):

* :func:`extract_answer`: remove every ``<tool_response>...</tool_response>`` block (tool
  replies quote ``<answer></answer>`` in their instruction text, and a forged answer there
  must not count), then take the last complete ``<answer>...</answer>``, stripped. Answers
  inside ``<think>`` count like any other. Without a complete one, the text after the last
  ``<answer>`` is the answer; without any ``<answer>``, the last line of the text (unless
  the text has 500 lines or more). Empty text gives ``None``.
* :func:`answers_match` / :func:`match_answer`: equal as floats, or (when either is not a
  number) equal as exact strings; otherwise the prediction is read down to one token and
  compared with the stripped truth case-insensitively or as fractions within ``1e-4``. The
  token is the last standalone ``A``-``D`` when the truth is a choice letter, else the last
  number. So ``"B. A red car"`` reads as ``A``, ``"12,345"`` as ``345``, ``"1/2"`` as ``2``
  (a fractional prediction fails while a fractional truth works), and ``"Paris"`` does not
  match ``"paris"`` (no number to read).

Evaluation rules, separate and named, never mixed into the release rule:

* :func:`normalised_match`: equal after :func:`normalise_answer` (case, whitespace and
  punctuation insensitive).
* :func:`ocrbench_match`: OCRBench's rule: an accepted answer, lower-cased and stripped,
  occurs in the lower-cased prediction; for ``HME100k`` (handwritten formulas) spaces are
  removed instead and case counts.

Everything here is pure (standard library only, no I/O).

Example:
    >>> from langchain_codevision.protocol.answers import answers_match, extract_answer
    >>> reply = "<think>It is upside down.</think><answer>12,345</answer>"
    >>> extract_answer(reply)
    '12,345'
    >>> answers_match(extract_answer(reply), "345"), answers_match("Paris", "paris")
    (True, False)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

__all__ = [
    "CHOICE_LETTERS",
    "FALLBACK_MAX_LINES",
    "MATCH_RULES",
    "OCRBENCH_SPACE_FREE_DATASETS",
    "RELEASE_TOLERANCE",
    "AnswerMatch",
    "MatchRule",
    "answers_match",
    "extract_answer",
    "match_answer",
    "normalise_answer",
    "normalised_match",
    "ocrbench_match",
    "read_prediction",
    "strip_tool_responses",
]

RELEASE_TOLERANCE = 1e-4
"""Largest difference at which the release calls two fractions equal."""
CHOICE_LETTERS: tuple[str, ...] = ("A", "B", "C", "D")
"""A truth that upper-cases to one of these is a multiple-choice answer."""
FALLBACK_MAX_LINES = 500
"""Without any ``<answer>`` tag, texts with at least this many lines give no answer."""
OCRBENCH_SPACE_FREE_DATASETS: frozenset[str] = frozenset({"HME100k"})
"""OCRBench datasets scored with spaces removed and case kept (handwritten formulas)."""

MatchRule = Literal["float", "exact", "choice", "number", "fraction", "none", "not_text"]
"""Which rule decided a :class:`AnswerMatch`."""
MATCH_RULES: tuple[str, ...] = (
    "float",
    "exact",
    "choice",
    "number",
    "fraction",
    "none",
    "not_text",
)
"""Every :data:`MatchRule`, in the order the release tries them (``none``: no rule matched;
``not_text``: the prediction or the truth is not a string)."""

_TOOL_RESPONSE = re.compile(r"<tool_response>.*?</tool_response>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_OPEN_ANSWER = "<answer>"
_CHOICE = re.compile(r"\b([A-D])\b")
_NUMBER = re.compile(r"[-+]?\d*\.?\d+")


# -- extraction ---------------------------------------------------------------------------------
def strip_tool_responses(text: str) -> str:
    """``text`` without its complete ``<tool_response>...</tool_response>`` blocks.

    An unclosed ``<tool_response>`` (a truncated reply) is left in place, as the release
    leaves it.
    """
    return _TOOL_RESPONSE.sub("", text)


def extract_answer(text: str | None) -> str | None:
    """The final answer of a reply or a whole decoded rollout, by the release's rule.

    Args:
        text: The model's text: one reply, or every assistant turn and tool response of an
            episode decoded together.

    Returns:
        The content of the last complete ``<answer>...</answer>`` outside tool responses,
        stripped (``""`` for an empty answer). Without one: the text after the last
        ``<answer>`` when there is one (an unclosed final answer), else the last line of the
        text. ``None`` for empty or blank text and for texts of 500 or more lines without
        any ``<answer>``.

    Raises:
        TypeError: ``text`` is neither a string nor ``None``.
    """
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise TypeError(f"extract_answer needs a string, got {type(text).__name__}")
    cleaned = strip_tool_responses(text)
    complete = _ANSWER.findall(cleaned)
    if complete:
        return complete[-1].strip()
    body = cleaned.strip()
    if _OPEN_ANSWER in body:
        return body.rsplit(_OPEN_ANSWER, 1)[1].strip()
    lines = body.splitlines()
    if lines and len(lines) < FALLBACK_MAX_LINES:
        return lines[-1].strip()
    return None


# -- the release's comparison -------------------------------------------------------------------
@dataclass(frozen=True)
class AnswerMatch:
    """Whether a prediction matches the truth, and the rule that decided.

    Attributes:
        matched: The verdict.
        rule: One of :data:`MATCH_RULES`: ``"float"`` (equal as numbers), ``"exact"`` (equal
            strings), ``"choice"`` / ``"number"`` (the letter or number read from the
            prediction equals the truth, ignoring case), ``"fraction"`` (equal as fractions
            within the tolerance), ``"none"`` (no rule matched), ``"not_text"`` (an input is
            not a string).
        extracted: What the prediction was read as when a reading rule ran (the choice
            letter or number), else ``None``.
    """

    matched: bool
    rule: str
    extracted: str | None = None

    def __bool__(self) -> bool:
        """The verdict, so an :class:`AnswerMatch` can be used as a condition."""
        return self.matched


def _float_equal(prediction: str, truth: str) -> bool | None:
    """``float(prediction) == float(truth)``, or ``None`` when either is no float."""
    try:
        return float(prediction) == float(truth)
    except ValueError:
        return None


def read_prediction(prediction: str, truth: str) -> tuple[str | None, str]:
    r"""The token the release reads from ``prediction`` to compare with ``truth``.

    Args:
        prediction: The extracted answer.
        truth: The ground truth.

    Returns:
        ``(token, rule)``: for a choice truth (``"a"``-``"d"``, any case, not stripped) the
        last standalone ``A``-``D`` of the upper-cased prediction and ``"choice"``; otherwise
        the prediction as a float (``"42.0"``) when it is one, else its last number
        (``[-+]?\d*\.?\d+``), and ``"number"``. The token is ``None`` when nothing can be
        read (a choice truth never falls back to numbers).
    """
    if not prediction:
        return None, "none"
    upper = prediction.upper()
    if truth.upper() in CHOICE_LETTERS:
        letters = _CHOICE.findall(upper)
        return (letters[-1] if letters else None), "choice"
    try:
        return str(float(prediction)), "number"
    except ValueError:
        numbers = _NUMBER.findall(upper)
        return (numbers[-1] if numbers else None), "number"


def _fractions_close(token: str, truth: str, tolerance: float) -> bool:
    try:
        return abs(float(Fraction(token)) - float(Fraction(truth))) <= tolerance
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return False


def match_answer(
    prediction: str | None, truth: str | None, *, tolerance: float = RELEASE_TOLERANCE
) -> AnswerMatch:
    """Compare an answer with the ground truth by the release's rule, with the reason.

    The rules, in order: equal as floats (when both parse, their inequality is final for
    this step); equal as exact strings (only when either does not parse); then the token
    :func:`read_prediction` reads equals the stripped truth ignoring case, or both are
    fractions within ``tolerance``.

    Args:
        prediction: The extracted answer (``None`` never matches).
        truth: The ground truth (a non-string never matches, as in the release).
        tolerance: Largest difference between fractions that still matches.

    Returns:
        An :class:`AnswerMatch` naming the deciding rule.
    """
    if not isinstance(prediction, str) or not isinstance(truth, str):
        return AnswerMatch(False, "not_text")
    equal = _float_equal(prediction, truth)
    if equal:
        return AnswerMatch(True, "float")
    if equal is None and prediction == truth:
        return AnswerMatch(True, "exact")
    token, rule = read_prediction(prediction, truth)
    if token is None:
        return AnswerMatch(False, "none")
    target = truth.strip()
    if token.upper() == target.upper():
        return AnswerMatch(True, rule, token)
    if _fractions_close(token, target, tolerance):
        return AnswerMatch(True, "fraction", token)
    return AnswerMatch(False, "none", token)


def answers_match(
    prediction: str | None, truth: str | None, *, tolerance: float = RELEASE_TOLERANCE
) -> bool:
    """Whether ``prediction`` matches ``truth`` by the release's rule (see :func:`match_answer`).

    Example:
        >>> answers_match("B. A red car", "A"), answers_match("1/2", "0.5")
        (True, False)
    """
    return match_answer(prediction, truth, tolerance=tolerance).matched


# -- evaluation rules ---------------------------------------------------------------------------
def _kept_punctuation(text: str, i: int) -> bool:
    """Whether the punctuation mark at ``text[i]`` belongs to a number."""
    ch = text[i]
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    if ch in ".," and before.isdigit() and after.isdigit():
        return True  # decimal point or digit group separator
    return ch == "-" and after.isdigit() and not before.isalnum()  # a minus sign


def normalise_answer(text: str) -> str:
    """``text`` folded for comparison: NFKC, case-folded, punctuation dropped, spaces collapsed.

    Punctuation that belongs to a number stays: a ``.`` or ``,`` between digits and a minus
    sign before a digit (so ``"3.5"`` stays apart from ``"35"`` and ``"-5"`` from ``"5"``).
    Other punctuation becomes a space (``"New-York"`` -> ``"new york"``).
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    chars = [
        " " if unicodedata.category(ch).startswith("P") and not _kept_punctuation(folded, i) else ch
        for i, ch in enumerate(folded)
    ]
    return " ".join("".join(chars).split())


def normalised_match(prediction: str | None, truth: str | None) -> bool:
    """Whether both are equal after :func:`normalise_answer` (an evaluation rule).

    Not the release's rule: ``normalised_match("Paris", "paris")`` is true where
    :func:`answers_match` is false. ``None`` never matches.
    """
    if not isinstance(prediction, str) or not isinstance(truth, str):
        return False
    return normalise_answer(prediction) == normalise_answer(truth)


def ocrbench_match(
    prediction: str | None,
    accepted_answers: str | Iterable[str],
    *,
    dataset_name: str | None = None,
) -> bool:
    """OCRBench's rule: an accepted answer occurs in the prediction.

    Both sides are lower-cased and stripped and their newlines become spaces; for the
    datasets in :data:`OCRBENCH_SPACE_FREE_DATASETS` (``HME100k``) both are stripped, then
    every space is removed and case is kept. As in OCRBench, an empty accepted answer occurs
    in every prediction.

    Args:
        prediction: The model's answer (``None`` never matches).
        accepted_answers: One accepted answer or several.
        dataset_name: The item's OCRBench dataset, which selects the space-free variant.
    """
    if not isinstance(prediction, str):
        return False
    answers = [accepted_answers] if isinstance(accepted_answers, str) else list(accepted_answers)
    if dataset_name in OCRBENCH_SPACE_FREE_DATASETS:

        def fold(text: str) -> str:
            return text.strip().replace("\n", " ").replace(" ", "")

    else:

        def fold(text: str) -> str:
            return text.lower().strip().replace("\n", " ")

    predicted = fold(prediction)
    return any(fold(str(answer)) in predicted for answer in answers)
