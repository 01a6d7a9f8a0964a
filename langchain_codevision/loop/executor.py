"""The one executor: validate tool calls, run them in a kernel, fold the results in.

Every tool call of the loop goes through :class:`ToolExecutor`: the graph's sync and async
``execute`` nodes and both LangChain tools. The work is written once, as a coroutine
(:meth:`ToolExecutor.arun`) that runs on the kernel I/O loop; :meth:`ToolExecutor.run`
is the sync facade and :meth:`ToolExecutor.arun_anywhere` the facade for other event
loops, as the kernel's own sessions do it.

Example:
    >>> executor = ToolExecutor(profile=get_profile("release"))  # doctest: +SKIP
    >>> work = executor.run(state, decision, open_session)  # doctest: +SKIP
    >>> work.images, work.steps, work.failures, work.replies  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_codevision.images import ImageFormat, PixelBudget, PixelSource, check_output_image
from langchain_codevision.kernel import ExecutionResult, KernelSession
from langchain_codevision.kernel._loop import run_async, run_sync
from langchain_codevision.protocol import (
    DEFAULT,
    TOOL_NAME,
    Failure,
    ProtocolProfile,
    make_failure,
    repair_code,
    trim_for_model,
)

from .messages import encode_step_image

__all__ = ["ExecutionWork", "PlannedCall", "ReplyFactory", "SessionOpener", "ToolExecutor"]

ReplyFactory = Callable[[list[dict[str, Any]], str | None, bool], list[Any]]
"""Builds the message(s) for one reply: ``(blocks, tool_call_id, is_error) -> messages``."""

SessionOpener = Callable[[], Awaitable[KernelSession]]
"""Returns the kernel to run in (called once, only when a call passed validation)."""


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
    """The state changes of one batch of tool calls, built up call by call.

    Attributes:
        executor: The executor (profile and limits).
        images: The trajectory images, the new results appended.
        steps: The step records, one new per call.
        turn: The assistant turn the calls belong to.
        calls: The validated calls.
        failures: What failed (validation, execution or result checks), in order.
        replies: ``(blocks, tool_call_id)`` of each successful call, in order.
    """

    executor: ToolExecutor
    images: list[Any]
    steps: list[Any]
    turn: int
    calls: list[PlannedCall] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    replies: list[tuple[list[dict[str, Any]], str | None]] = field(default_factory=list)

    @property
    def runnable(self) -> list[PlannedCall]:
        """Calls that passed validation."""
        return [call for call in self.calls if call.runnable]

    @property
    def profile(self) -> ProtocolProfile:
        """The protocol profile in force."""
        return self.executor.profile

    def kernel_kwargs(self, call: PlannedCall) -> dict[str, Any]:
        """Arguments of ``KernelSession.execute`` for ``call``."""
        return {
            "code": call.code,
            "image": call.image_index,
            "collect": self.profile.result_names,
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

    def reject(
        self, call: PlannedCall, reason: str, message: str, kind: str = "BadArguments"
    ) -> None:
        """Record a call that fails validation (it never reaches the kernel)."""
        call.runnable = False
        self._step(call, error=f"{kind}: {message}")
        self.failures.append(
            make_failure(
                kind,
                message,
                reason,
                tool_call_id=call.call_id,
                code=call.code,
                image_index=call.image_index,
                available=len(self.images),
            )
        )

    def record(self, call: PlannedCall, result: ExecutionResult) -> list[tuple[int, PixelSource]]:
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
        if failure is None:
            main = next(img for img in result.images if img.source == "result")
            ordered = [main, *[img for img in result.images if img is not main]]
            try:
                encoded = [self._encode(out.pixels, i) for i, out in enumerate(ordered)]
            except Exception as exc:  # a result the codec cannot write: reflect, never raise
                failure = make_failure(type(exc).__name__, str(exc), "processing")
            else:
                return self._succeed(call, result, ordered, encoded, stdout, base)
        failure.update(
            tool_call_id=call.call_id,
            code=call.code,
            image_index=call.image_index,
            variables=result.variables,
            stdout=stdout[:2000],
            available=len(self.images),
        )
        self._step(call, error=f"{failure['kind']}: {failure['message']}", **base)
        self.failures.append(failure)
        return []

    def _encode(self, image: PixelSource, position: int) -> tuple[dict[str, Any], Any]:
        return encode_step_image(
            image,
            len(self.images) + position,
            self.executor.budget,
            self.executor.image_format,
            "tool",
            len(self.steps) + 1,
        )

    def _succeed(
        self,
        call: PlannedCall,
        result: ExecutionResult,
        ordered: Sequence[Any],
        encoded: Sequence[tuple[dict[str, Any], Any]],
        stdout: str,
        base: dict[str, Any],
    ) -> list[tuple[int, PixelSource]]:
        extra: list[tuple[int, PixelSource]] = []
        indices, blocks = [], []
        for position, (output, (block, stored)) in enumerate(zip(ordered, encoded, strict=True)):
            index = len(self.images)
            self.images.append(stored)
            blocks.append(block)
            indices.append(index)
            if position:
                extra.append((index, output.pixels))
        main = ordered[0]
        notes = []
        if main.converted_from == "ndarray":
            notes.append(f"(`{main.name}` was a numpy array; it was converted to an image.)")
        if main.name == "image":
            notes.append("(No `result` was set, so the working copy `image` was returned.)")
        if result.truncated:
            notes.append("(Some output was cut at the output limit.)")
        self._step(call, ok=True, output_indices=indices, **base)
        sizes = [out.size for out in ordered]
        text = self.profile.replies.success(indices, sizes, stdout, [*call.notes, *notes])
        blocks.append({"type": "text", "text": self.profile.cap_text(text)})
        self.replies.append((blocks, call.call_id))
        return extra

    def _failure_of(self, result: ExecutionResult) -> Failure | None:
        if result.error is not None:
            error = result.error
            return make_failure(
                error.name,
                error.value,
                "execution",
                traceback=trim_for_model(error.traceback),
            )
        main = next((img for img in result.images if img.source == "result"), None)
        first_found_wins = "img" in self.profile.result_names  # the release's lookup
        misplaced = [
            v for v in result.variables if v["name"] != "image" and v.get("kind") != "image"
        ]
        empty = next((v for v in result.variables if v.get("kind") == "empty"), None)
        if main is None and empty is not None:
            width, height = empty.get("size", (0, 0))
            return make_failure(
                "BadImage",
                f"the result image has size {width}x{height}",
                "bad_size",
                size=[width, height],
                aspect=0.0,
            )
        if main is None or (misplaced and main.name == "image" and not first_found_wins):
            return make_failure(
                "NoImage", "the code did not leave a PIL image in `result`", "no_image"
            )
        width, height = main.size
        problem = check_output_image(main.pixels, self.executor.max_aspect_ratio)
        if not problem:
            return None
        if width <= 0 or height <= 0:
            reason, aspect = "bad_size", 0.0
        else:
            aspect = max(width / height, height / width)
            reason = "bad_aspect" if aspect >= self.executor.max_aspect_ratio else "bad_image"
        return make_failure(
            "BadImage", problem, reason, size=[width, height], aspect=round(aspect, 4)
        )

    def update(self, reply: ReplyFactory) -> dict[str, Any]:
        """The state update: new messages, images, steps and what comes next."""
        messages: list[Any] = []
        for blocks, call_id in self.replies:
            messages.extend(reply(blocks, call_id, False))
        pending = {"action": "reflect", "failures": self.failures} if self.failures else None
        return {
            "messages": messages,
            "images": self.images,
            "steps": self.steps,
            "pending": pending,
        }


@dataclass
class ToolExecutor:
    """Validates tool calls against the profile's limits and runs them in a kernel.

    Args:
        profile: The protocol profile (reply texts, result lookup, limits' defaults).
        max_code_chars: Longest code accepted.
        max_aspect_ratio: Results at or above this aspect ratio are rejected.
        repair: Repair code (fences, indentation, crop boxes) before running it.
        timeout: Seconds per call (default: the kernel's limit).
        budget: Pixel budget of images shown to the model.
        image_format: Encoding of images shown to the model.
    """

    profile: ProtocolProfile = DEFAULT
    max_code_chars: int = 2048
    max_aspect_ratio: float = 200.0
    repair: bool = False
    timeout: float | None = None
    budget: PixelBudget | None = None
    image_format: ImageFormat = "png"

    def plan(self, state: Mapping[str, Any], pending: Mapping[str, Any]) -> ExecutionWork:
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

    async def arun(
        self, state: Mapping[str, Any], pending: Mapping[str, Any], open_session: SessionOpener
    ) -> ExecutionWork:
        """Validate, run and fold every call (on the kernel I/O loop)."""
        work = self.plan(state, pending)
        session: Any = None
        for call in work.runnable:
            session, result = await _open_and_execute(session, open_session, work, call)
            # the model's view is resized and encoded off the kernel I/O loop, which every
            # episode's kernels share (PIL and zlib release the GIL meanwhile)
            for index, image in await asyncio.to_thread(work.record, call, result):
                await session.aput_image(index, image)
        return work

    def run(
        self, state: Mapping[str, Any], pending: Mapping[str, Any], open_session: SessionOpener
    ) -> ExecutionWork:
        """:meth:`arun` for a caller that waits for it.

        Each kernel call runs on the kernel I/O loop, and the model's view of its result
        is made in the calling thread, which would only wait meanwhile: two thread hops
        fewer per call than handing the view to a worker thread, as :meth:`arun` must.
        """
        work = self.plan(state, pending)
        session: Any = None
        for call in work.runnable:
            session, result = run_sync(_open_and_execute(session, open_session, work, call))
            for index, image in work.record(call, result):
                run_sync(session.aput_image(index, image))
        return work

    async def arun_anywhere(
        self, state: Mapping[str, Any], pending: Mapping[str, Any], open_session: SessionOpener
    ) -> ExecutionWork:
        """:meth:`arun` awaited from any event loop."""
        return await run_async(self.arun(state, pending, open_session))

    def failure_text(self, failure: Mapping[str, Any], images: Sequence[Mapping[str, Any]]) -> str:
        """The profile's reply text for ``failure`` (capped like every tool text)."""
        return self.profile.cap_text(self.profile.replies.failure(failure, images))

    def _validate(self, work: ExecutionWork, raw: Mapping[str, Any]) -> None:
        args = raw.get("arguments")
        call = PlannedCall(raw.get("id"), "", "", None, list(raw.get("notes", [])))
        work.calls.append(call)
        if raw.get("name") != TOOL_NAME:
            message = f"unknown tool {raw.get('name')!r}; use {TOOL_NAME!r}"
            work.reject(call, "unknown_tool", message)
            return
        if not isinstance(args, dict):
            work.reject(call, "not_object", "the arguments must be a JSON object")
            return
        code = args.get("code")
        call.description = str(args.get("description") or "")
        index = args.get("image_index", 0)
        if isinstance(index, str) and index.strip().lstrip("-").isdigit():
            index = int(index)
        valid = isinstance(index, int) and not isinstance(index, bool)
        call.image_index = index if valid else None
        if not isinstance(code, str) or not code.strip():
            work.reject(call, "missing_code", "`code` must be a non-empty string")
            return
        call.code = code
        if len(code) > self.max_code_chars:
            message = f"the code has {len(code)} characters; the limit is {self.max_code_chars}"
            work.reject(call, "code_too_long", message)
            return
        if call.image_index is None or not 0 <= call.image_index < len(work.images):
            message = (
                f"image_index {index!r} does not exist; valid values are 0 to "
                f"{len(work.images) - 1}"
            )
            reason = "index_range" if valid and index >= 0 else "bad_index"
            work.reject(call, reason, message)
            work.failures[-1]["image_index"] = index
            return
        if self.repair:
            repaired, changes = repair_code(code)
            if changes:
                call.original_code, call.code = code, repaired
                call.notes.extend(f"(Repaired: {change}.)" for change in changes)


async def _open_and_execute(
    session: Any, open_session: SessionOpener, work: ExecutionWork, call: PlannedCall
) -> tuple[Any, ExecutionResult]:
    """Run ``call`` in ``session`` (the episode's kernel, lent first if ``None``)."""
    if session is None:
        session = await open_session()
    return session, await session.aexecute(**work.kernel_kwargs(call))
