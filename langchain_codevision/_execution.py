"""Validate tool calls, run them, and turn kernel results into state updates.

Shared by the graph's sync and async ``execute`` nodes (they differ only in how they await
the kernel) and by the LangChain tools.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from .images import ImageFormat, PixelBudget, check_output_image
from .kernel import ExecutionResult
from .messages import encode_step_image
from .protocol import RESULT_NAMES, TOOL_NAME, success_text
from .reflect import trim_for_model
from .repair import repair_code

ReplyFactory = Callable[[list[dict[str, Any]], str | None, bool], list[Any]]


@dataclass
class PlannedCall:
    """One tool call after validation."""

    call_id: str | None
    code: str
    description: str
    image_index: int | None
    notes: list[str]
    original_code: str | None = None
    runnable: bool = True


@dataclass
class ExecutionWork:
    """The state changes of one ``execute`` node run, built up call by call."""

    executor: ToolExecutor
    images: list[Any]
    steps: list[Any]
    turn: int
    calls: list[PlannedCall] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    replies: list[tuple[list[dict[str, Any]], str | None]] = field(default_factory=list)

    @property
    def runnable(self) -> list[PlannedCall]:
        """Calls that passed validation."""
        return [call for call in self.calls if call.runnable]

    @property
    def needs_kernel(self) -> bool:
        """Whether any call must run in the kernel."""
        return bool(self.runnable)

    def kernel_kwargs(self, call: PlannedCall) -> dict[str, Any]:
        """Arguments of ``KernelSession.execute`` for ``call``."""
        return {
            "code": call.code,
            "image": call.image_index,
            "collect": RESULT_NAMES,
            "register_as": len(self.images),
            "timeout": self.executor.timeout,
        }

    def _step(self, call: PlannedCall, **fields: Any) -> dict[str, Any]:
        step = {
            "step": len(self.steps) + 1,
            "turn": self.turn,
            "tool_call_id": call.call_id,
            "code": call.code,
            "original_code": call.original_code,
            "description": call.description,
            "image_index": call.image_index,
            "ok": False,
            "error": None,
            "output_indices": [],
            "stdout": "",
            "duration_s": 0.0,
            "timed_out": False,
            "restarted": False,
            "repaired": list(call.notes),
        }
        step.update(fields)
        self.steps.append(step)
        return step

    def reject(self, call: PlannedCall, kind: str, message: str) -> None:
        """Record a call that fails validation (it never reaches the kernel)."""
        call.runnable = False
        self._step(call, error=f"{kind}: {message}")
        self.failures.append(
            {
                "tool_call_id": call.call_id,
                "kind": kind,
                "message": message,
                "code": call.code,
                "image_index": call.image_index,
            }
        )

    def record(self, call: PlannedCall, result: ExecutionResult) -> list[tuple[int, Image.Image]]:
        """Fold a kernel result into the work; returns extra images to register in the kernel."""
        stdout = result.stdout
        if result.stderr.strip():
            stdout = f"{stdout}{result.stderr}"
        base = {
            "stdout": stdout[:2000],
            "duration_s": round(result.duration_s, 4),
            "timed_out": result.timed_out,
            "restarted": result.restarted,
        }
        failure = self._failure_of(result)
        if failure is not None:
            kind, message, trace = failure
            self._step(call, error=f"{kind}: {message}", **base)
            self.failures.append(
                {
                    "tool_call_id": call.call_id,
                    "kind": kind,
                    "message": message,
                    "traceback": trace,
                    "code": call.code,
                    "image_index": call.image_index,
                    "variables": result.variables,
                    "stdout": stdout[:2000],
                }
            )
            return []
        produced = result.images
        main = next(img for img in produced if img.source == "result")
        ordered = [main, *[img for img in produced if img is not main]]
        extra: list[tuple[int, Image.Image]] = []
        indices = []
        blocks = []
        for position, output in enumerate(ordered):
            index = len(self.images)
            block, stored = encode_step_image(
                output.image,
                index,
                self.executor.budget,
                self.executor.image_format,
                "tool",
                len(self.steps) + 1,
            )
            self.images.append(stored)
            blocks.append(block)
            indices.append(index)
            if position:
                extra.append((index, output.image))
        notes = []
        if main.converted_from == "ndarray":
            notes.append(f"(`{main.name}` was a numpy array; it was converted to an image.)")
        if main.name == "image":
            notes.append("(No `result` was set, so the working copy `image` was returned.)")
        if result.truncated:
            notes.append("(Some output was cut at the output limit.)")
        self._step(call, ok=True, output_indices=indices, **base)
        sizes = [out.size for out in ordered]
        blocks.append(
            {"type": "text", "text": success_text(indices, sizes, stdout, [*call.notes, *notes])}
        )
        self.replies.append((blocks, call.call_id))
        return extra

    def _failure_of(self, result: ExecutionResult) -> tuple[str, str, str] | None:
        if result.error is not None:
            error = result.error
            return error.name, error.value, trim_for_model(error.traceback)
        main = next((img for img in result.images if img.source == "result"), None)
        misplaced = [
            v for v in result.variables if v["name"] != "image" and v.get("kind") != "image"
        ]
        if main is None or (misplaced and main.name == "image"):
            return "NoImage", "the code did not leave a PIL image in `result`", ""
        problem = check_output_image(main.image, self.executor.max_aspect_ratio)
        if problem:
            return "BadImage", problem, ""
        return None

    def update(self, reply: ReplyFactory) -> dict[str, Any]:
        """The state update: new messages, images, steps and what comes next."""
        messages: list[Any] = []
        for blocks, call_id in self.replies:
            messages.extend(reply(blocks, call_id, False))
        return {
            "messages": messages,
            "images": self.images,
            "steps": self.steps,
            "pending": {"action": "reflect", "failures": self.failures} if self.failures else None,
        }


@dataclass
class ToolExecutor:
    """Validates tool calls against the protocol limits and plans their execution."""

    max_code_chars: int = 2048
    max_aspect_ratio: float = 200.0
    repair: bool = False
    timeout: float | None = None
    budget: PixelBudget | None = None
    image_format: ImageFormat = "png"

    def plan(self, state: dict[str, Any], pending: dict[str, Any]) -> ExecutionWork:
        """Validate ``pending["calls"]`` and prepare the work for the kernel."""
        work = ExecutionWork(
            self,
            images=list(state.get("images", [])),
            steps=list(state.get("steps", [])),
            turn=state.get("turns", 0),
            failures=list(pending.get("failures", [])),
        )
        for raw in pending.get("calls", []):
            self._validate(work, raw)
        return work

    def _validate(self, work: ExecutionWork, raw: dict[str, Any]) -> None:
        args = raw.get("arguments")
        notes = list(raw.get("notes", []))
        call = PlannedCall(raw.get("id"), "", "", None, notes)
        work.calls.append(call)
        if raw.get("name") != TOOL_NAME:
            work.reject(
                call, "BadArguments", f"unknown tool {raw.get('name')!r}; use {TOOL_NAME!r}"
            )
            return
        if not isinstance(args, dict):
            work.reject(call, "BadArguments", "the arguments must be a JSON object")
            return
        code = args.get("code")
        call.description = str(args.get("description") or "")
        index = args.get("image_index", 0)
        if isinstance(index, str) and index.strip().lstrip("-").isdigit():
            index = int(index)
        call.image_index = index if isinstance(index, int) and not isinstance(index, bool) else None
        if not isinstance(code, str) or not code.strip():
            work.reject(call, "BadArguments", "`code` must be a non-empty string")
            return
        call.code = code
        if len(code) > self.max_code_chars:
            work.reject(
                call,
                "BadArguments",
                f"the code has {len(code)} characters; the limit is {self.max_code_chars}",
            )
            return
        if call.image_index is None or not 0 <= call.image_index < len(work.images):
            work.reject(
                call,
                "BadArguments",
                f"image_index {index!r} does not exist; valid values are 0 to "
                f"{len(work.images) - 1}",
            )
            return
        if self.repair:
            repaired, changes = repair_code(code)
            if changes:
                call.original_code, call.code = code, repaired
                call.notes.extend(f"(Repaired: {change}.)" for change in changes)
