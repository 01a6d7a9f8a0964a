"""What a finished episode leaves for a person: timings, readable steps, JSON and image files.

* :class:`ModelTimer`: a LangChain callback handler that times every chat-model call, so
  an episode's wall time splits into model time, code time (in the kernel) and the rest.
* :func:`episode_timings`: that split for one episode's final state.
* :func:`save_episode_images`: the input and every step's output as PNG files, each distinct
  image once (a step that returned its input unchanged is named, not written again).
* :func:`episode_json`: answer, stop reason and steps (code, stdout, error, timings) as
  plain JSON-ready data.
* :func:`describe_steps`: the steps as indented text lines (code, printed output, error).

Example:
    >>> timer = ModelTimer()
    >>> state = graph.invoke(inputs, config={"callbacks": [timer]})  # doctest: +SKIP
    >>> episode_timings(state, timer, total_s=1.1).caption()  # doctest: +SKIP
    'model 0.01 s, code 0.05 s, kernel start and loop 1.04 s, total 1.10 s'
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from PIL import Image

__all__ = [
    "EpisodeTimings",
    "ModelTimer",
    "SavedImage",
    "describe_steps",
    "episode_json",
    "episode_timings",
    "save_episode_images",
]


class ModelTimer(BaseCallbackHandler):
    """Times every chat-model (or LLM) call made under the config it is passed in."""

    def __init__(self) -> None:
        self._started: dict[UUID, float] = {}
        self.durations: list[float] = []
        """Seconds of each finished call, in the order they finished."""

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, **_: Any
    ) -> None:
        """Note when a chat-model call starts."""
        self._started[run_id] = time.perf_counter()

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, **_: Any) -> None:
        """Note when a completion-model call starts."""
        self._started[run_id] = time.perf_counter()

    def _stop(self, run_id: UUID) -> None:
        started = self._started.pop(run_id, None)
        if started is not None:
            self.durations.append(time.perf_counter() - started)

    def on_llm_end(self, response: Any, *, run_id: UUID, **_: Any) -> None:
        """Record a finished call."""
        self._stop(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **_: Any) -> None:
        """Record a failed call (its time was spent all the same)."""
        self._stop(run_id)

    @property
    def total_s(self) -> float:
        """Seconds spent in model calls so far."""
        return sum(self.durations)


@dataclass(frozen=True)
class EpisodeTimings:
    """Where an episode's time went (seconds)."""

    model_s: float
    """In the chat model's calls."""
    code_s: float
    """Running the model's code in the kernel (all steps)."""
    total_s: float
    """Wall time of the whole episode."""

    @property
    def other_s(self) -> float:
        """The rest: starting the sandboxed kernel, encoding images, the loop itself."""
        return max(0.0, self.total_s - self.model_s - self.code_s)

    def caption(self) -> str:
        """E.g. ``model 0.01 s, code 0.05 s, kernel start and loop 1.04 s, total 1.10 s``."""
        return (
            f"model {self.model_s:.2f} s, code {self.code_s:.2f} s, "
            f"kernel start and loop {self.other_s:.2f} s, total {self.total_s:.2f} s"
        )

    def as_dict(self) -> dict[str, float]:
        """The timings as a JSON-ready mapping."""
        return {
            "model_s": round(self.model_s, 4),
            "code_s": round(self.code_s, 4),
            "other_s": round(self.other_s, 4),
            "total_s": round(self.total_s, 4),
        }


def episode_timings(state: Mapping[str, Any], timer: ModelTimer, total_s: float) -> EpisodeTimings:
    """Split ``total_s`` into model, code and other time for a finished episode."""
    code = sum(float(step.get("duration_s") or 0.0) for step in state.get("steps") or [])
    return EpisodeTimings(model_s=timer.total_s, code_s=code, total_s=total_s)


@dataclass(frozen=True)
class SavedImage:
    """One image of an episode and where it went."""

    index: int
    """Its index in the episode's images (0: the first input)."""
    label: str
    """``input``, ``step 2 output``, ..."""
    path: Path | None
    """The file written, or ``None`` when an identical image was already written."""
    same_as: Path | None = None
    """For an image not written again: the file holding the same bytes."""


def _label(item: Mapping[str, Any], inputs: int) -> tuple[str, str]:
    """A label and a file stem for one trajectory image."""
    step = item.get("step")
    if item.get("origin", "input") == "input" or step is None:
        if inputs == 1:
            return "input", "input"
        return f"input {item['index']}", f"input-{item['index']}"
    return f"step {step} output", f"step-{step}"


def _pixel_digest(png: bytes) -> str:
    """A digest of an image's pixels (mode, size, data), whatever its PNG encoding."""
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        header = f"{image.mode}:{image.size}".encode()
        return hashlib.sha256(header + image.tobytes()).hexdigest()


def save_episode_images(
    images: Sequence[Mapping[str, Any]], folder: str | Path
) -> list[SavedImage]:
    """Write each distinct image of an episode once as PNG under ``folder`` (created).

    Files are ``input.png`` (``input-N.png`` for several inputs) and ``step-K.png`` for the
    output of step ``K`` (``step-K-2.png``, ... when a step returned several). An image whose
    pixels equal one already written (a step that returned its input unchanged) is reported
    with ``same_as`` and not written again, so no two files hold the same image.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    inputs = sum(1 for item in images if item.get("origin", "input") == "input")
    written: dict[str, Path] = {}
    used: set[str] = set()
    saved: list[SavedImage] = []
    for item in images:
        label, stem = _label(item, inputs)
        name, n = stem, 1
        while name in used:
            n += 1
            name = f"{stem}-{n}"
        digest = _pixel_digest(item["png"])
        if digest in written:
            saved.append(SavedImage(item["index"], label, None, same_as=written[digest]))
            continue
        used.add(name)
        path = out / f"{name}.png"
        path.write_bytes(item["png"])
        written[digest] = path
        saved.append(SavedImage(item["index"], label, path))
    return saved


def _step_json(step: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "step": step.get("step"),
        "turn": step.get("turn"),
        "description": step.get("description") or "",
        "code": step.get("code", ""),
        "ok": bool(step.get("ok")),
        "stdout": step.get("stdout", ""),
        "error": step.get("error"),
        "duration_s": step.get("duration_s"),
        "timed_out": bool(step.get("timed_out")),
        "output_images": list(step.get("output_indices") or []),
    }


def episode_json(
    state: Mapping[str, Any],
    *,
    question: str | None = None,
    timings: EpisodeTimings | None = None,
    images: Sequence[SavedImage] | None = None,
) -> dict[str, Any]:
    """Answer, stop reason, steps (code, stdout, error, seconds) and timings as plain data."""
    data: dict[str, Any] = {}
    if question is not None:
        data["question"] = question
    data["answer"] = state.get("answer")
    data["stop_reason"] = state.get("stop_reason")
    data["turns"] = state.get("turns")
    data["steps"] = [_step_json(step) for step in state.get("steps") or []]
    if timings is not None:
        data["timings"] = timings.as_dict()
    if images is not None:
        data["images"] = [
            {
                "index": image.index,
                "label": image.label,
                "path": str(image.path or image.same_as),
                "written": image.path is not None,
            }
            for image in images
        ]
    return data


def _indented(text: str, prefix: str, limit: int) -> list[str]:
    lines = text.rstrip().splitlines()
    shown = [f"{prefix}{line}" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"{prefix}... ({len(lines) - limit} more lines)")
    return shown


def describe_steps(steps: Sequence[Mapping[str, Any]], *, max_lines: int = 60) -> list[str]:
    """Each step as text: its description, its code, what it printed, its error."""
    out: list[str] = []
    for step in steps:
        status = "ok" if step.get("ok") else "failed"
        seconds = step.get("duration_s")
        timing = f", ran in {seconds:.2f} s" if isinstance(seconds, (int, float)) else ""
        title = step.get("description") or "code"
        out.append(f"  step {step.get('step')}: {title} ({status}{timing})")
        out.append("    code:")
        out.extend(_indented(step.get("code") or "", "      ", max_lines))
        if (step.get("stdout") or "").strip():
            out.append("    printed:")
            out.extend(_indented(step["stdout"], "      | ", max_lines))
        if step.get("error"):
            out.append("    error:")
            out.extend(_indented(str(step["error"]), "      ! ", max_lines))
    return out
