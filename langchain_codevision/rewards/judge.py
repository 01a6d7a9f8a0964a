"""An optional answer judge: any LangChain chat model says 1 or 0, cached on disk.

Asked only when the release's answer rules fail (as the release asks its LLM judge). The
instructions depend on the task: ``ocr`` (text must be reproduced), ``math`` (equivalent
values count), ``general`` (same meaning); the task type is found from the data source's
name (``"ocrbench"`` -> ``ocr``, ``"mathvista"`` -> ``math``, anything else ``general``).

Example:
    >>> judge = ChatJudge(ChatOpenAI(model="gpt-4o-mini"), cache_dir="cache")  # doctest: +SKIP
    >>> score_rollout(text, ground_truth="Main St.", transform=[], judge=judge)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["INSTRUCTIONS", "ChatJudge", "parse_verdict", "task_type"]

INSTRUCTIONS: dict[str, str] = {
    "ocr": (
        "You check text recognition. Decide whether the prediction reproduces the reference "
        "text. Letter case and spaces next to punctuation do not matter; every other "
        "difference in the characters does.\n\nReference: {ground_truth}\nPrediction: {answer}"
        "\n\nReply with the single digit 1 if the prediction is right, 0 if it is wrong."
    ),
    "math": (
        "You check answers to maths questions. Decide whether the model's answer has the same "
        "value as the reference; equivalent forms (2 and 2.0, 1/2 and 0.5, units written or "
        "not) count as the same.\n\nQuestion: {question}\nReference: {ground_truth}\n"
        "Model's answer: {answer}\n\nReply with the single digit 1 if it is right, 0 if not."
    ),
    "general": (
        "You check answers to questions about images. Decide whether the model's answer means "
        "the same as the reference answer and answers the question; rewording is fine, a "
        "different fact is not.\n\nQuestion: {question}\nReference: {ground_truth}\n"
        "Model's answer: {answer}\n\nReply with the single digit 1 if it is right, 0 if not."
    ),
}
"""The judge's instructions per task type (``{question}``, ``{ground_truth}``, ``{answer}``)."""

_TASK_WORDS = {
    "ocr": ("ocr", "text_recognition", "textvqa", "docvqa", "iam", "casia", "hiertext", "handwrit"),
    "math": ("math", "arithmetic", "algebra", "geometry", "calculus", "chart"),
}
_YES = {"1", "1.0", "yes", "correct", "true", "right"}
_NO = {"0", "0.0", "no", "incorrect", "false", "wrong"}


def task_type(task: str | None) -> str:
    """``"ocr"``, ``"math"`` or ``"general"`` for a data source or task name."""
    name = (task or "").lower()
    for kind, words in _TASK_WORDS.items():
        if any(word in name for word in words):
            return kind
    return "general"


def parse_verdict(reply: str) -> tuple[float | None, str]:
    """The 1/0 verdict in a judge's reply, or ``None`` with why it could not be read."""
    text = reply.strip().lower()
    for prefix in ("verdict:", "judgement:", "judgment:", "answer:", "score:"):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
    word = text.strip(" .!\"'`")
    if word in _YES:
        return 1.0, ""
    if word in _NO:
        return 0.0, ""
    digits = re.findall(r"(?<![\d.])[01](?![\d.])", text)
    if len(set(digits)) == 1:
        return float(digits[0]), ""
    return None, f"no 1/0 verdict in {reply[:60]!r}"


def _reply_text(message: Any) -> str:
    text = getattr(message, "text", None)
    if isinstance(text, str):
        return text
    content = getattr(message, "content", message)
    return content if isinstance(content, str) else str(content)


class ChatJudge:
    """Judge answers with a LangChain chat model (0/1), caching each verdict on disk.

    Args:
        model: Any ``BaseChatModel`` (or object with ``invoke``).
        cache_dir: Folder for cached verdicts (one small JSON file per question); ``None``
            keeps them in memory only.
        instructions: Replacements for :data:`INSTRUCTIONS` entries.
        name: Part of the cache key (defaults to the model's ``model_name``/``model``).
    """

    def __init__(
        self,
        model: Any,
        *,
        cache_dir: str | Path | None = None,
        instructions: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        self.model = model
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.instructions = {**INSTRUCTIONS, **dict(instructions or {})}
        self.name = name or str(
            getattr(model, "model_name", None)
            or getattr(model, "model", None)
            or type(model).__name__
        )
        self._memory: dict[str, tuple[float, str]] = {}
        self.calls = 0

    def prompt(self, answer: str, ground_truth: str, question: str, task: str) -> str:
        """The instruction sent for one answer."""
        template = self.instructions[task_type(task)]
        fields = {"answer": answer, "ground_truth": ground_truth, "question": question}
        return re.sub(r"\{(answer|ground_truth|question)\}", lambda m: fields[m.group(1)], template)

    def _key(self, prompt: str) -> str:
        return hashlib.sha256(f"{self.name}\0{prompt}".encode()).hexdigest()

    def _cached(self, key: str) -> tuple[float, str] | None:
        if key in self._memory:
            return self._memory[key]
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            verdict = (float(data["score"]), str(data.get("reason", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self._memory[key] = verdict
        return verdict

    def _store(self, key: str, verdict: tuple[float, str], prompt: str) -> None:
        self._memory[key] = verdict
        if self.cache_dir is None:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.cache_dir / f"{key}.json"
        partial = path.with_suffix(".tmp")
        record = {"score": verdict[0], "reason": verdict[1], "model": self.name, "prompt": prompt}
        partial.write_text(json.dumps(record), encoding="utf-8")
        partial.replace(path)

    def __call__(
        self, *, answer: str, ground_truth: str, question: str = "", task: str = "general"
    ) -> tuple[float, str]:
        """``(1.0 or 0.0, reason)`` for one answer; cached verdicts are reused."""
        prompt = self.prompt(answer, ground_truth, question, task)
        key = self._key(prompt)
        cached = self._cached(key)
        if cached is not None:
            return cached[0], f"{cached[1]} (cached)".strip()
        self.calls += 1
        reply = _reply_text(self.model.invoke(prompt))
        score, problem = parse_verdict(reply)
        verdict = (
            (0.0, problem) if score is None else (score, f"{task_type(task)} judge: {int(score)}")
        )
        self._store(key, verdict, prompt)
        return verdict
