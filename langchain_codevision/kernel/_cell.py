"""Run one cell: send the request, collect its outputs, survive time-outs and crashes.

``run_cell`` implements the execute protocol for :class:`~.session.KernelSession`: it binds
the requested image through the request's metadata (read by the kernel-side runtime before
the cell runs, which also loads the images staged since the last request), collects result
images through ``user_expressions`` (evaluated right after the cell, in the same round
trip), interrupts and then restarts a kernel that overruns its time limit, and restarts a
kernel that dies mid-cell. Failures end up in the result.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from ._outputs import OutputCollector, trim_traceback
from .result import ExecutionError, ExecutionResult, OutputImage

if TYPE_CHECKING:
    from .session import KernelSession

POLL_S = 0.1
"""How often a waiting cell checks that the kernel process is still alive."""
INLINE_READ_BYTES = 8 * 1024**2
"""Result pixels up to this many bytes in all are read on the event loop, larger ones in a
worker thread. A local kernel's pixels lie in its tmpfs (a read is a copy out of memory,
never a wait on a disk) and a remote one's are in memory already: for a page of a few MB
the hop to a thread and back costs more than the copy, while a read of tens of MB would
hold up every other episode the loop serves."""


def quiet_metadata(**request: Any) -> dict[str, Any]:
    """The metadata of a request from this package.

    ``request`` is for the kernel-side runtime; ``quiet`` asks the kernel to publish no
    ``busy`` status and no ``execute_input`` (nor a silent request's ``idle``), which
    nothing here reads.
    """
    return {"codevision": {"quiet": True, **request}}


class KernelDied(Exception):
    """The kernel process exited while a cell ran."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


async def run_cell(
    session: KernelSession,
    code: str,
    result: ExecutionResult,
    timeout: float,
    image: int | str | None,
    collect: tuple[str, ...],
    collect_first: bool,
    register_as: int | str | None,
) -> ExecutionResult:
    """Execute ``code`` in ``session``'s kernel and fill ``result``."""
    loads = session._take_unsent()  # staged images, loaded by the kernel before the cell
    request: dict[str, Any] = {}
    if image is not None or collect or loads:
        request = {
            "bind": None if image is None else str(image),
            "clear": list(collect) if image is not None else [],
            "load": loads,
        }
    expressions = {}
    if collect:
        key = None if register_as is None else str(register_as)
        expressions["cv"] = f"__cv_runtime__.collect({list(collect)!r}, {collect_first!r}, {key!r})"
    started = time.monotonic()
    content = {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": expressions,
        "allow_stdin": False,
        "stop_on_error": False,
    }
    msg = session._kc.session.msg("execute_request", content, metadata=quiet_metadata(**request))
    session._kc.shell_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    collector = OutputCollector(result, session.limits, session._read_pixels)
    deadline = started + timeout
    reply: dict[str, Any] | None = None
    try:
        reply = await _await_reply(session, msg_id, collector, deadline)
        if reply is None:  # timed out
            reply = await _handle_timeout(session, msg_id, collector, timeout)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await session._km.interrupt_kernel()
        raise
    except KernelDied as died:
        await _recover_from_death(session, result, died.detail)
    if reply is not None:
        try:
            _apply_reply(reply, result, collector)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            result.error = ExecutionError("ResultError", f"the kernel's reply was malformed: {exc}")
    if collector.pending:
        if collector.pending_bytes() <= INLINE_READ_BYTES:
            collector.load_pending()
        else:
            await asyncio.to_thread(collector.load_pending)
    registered = next((img for img in result.images if img.source == "result"), None)
    if register_as is not None and registered is not None:
        session._images[str(register_as)] = registered.pixels
    result.duration_s = time.monotonic() - started
    collector.finish()
    return result


async def _await_reply(
    session: KernelSession, msg_id: str, collector: OutputCollector, deadline: float
) -> dict[str, Any] | None:
    """Drain iopub until the cell is idle, then take its shell reply; None on timeout."""
    idle = False
    while not idle:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            msg = await session._kc.get_iopub_msg(timeout=min(remaining, POLL_S))
        except Exception:  # queue.Empty
            if not await session._is_alive():
                raise KernelDied(session._exit_detail()) from None
            continue
        if _parent_id(msg) != msg_id:
            continue
        if msg.get("msg_type") == "status":
            idle = _content(msg).get("execution_state") == "idle"
        else:
            collector.add(msg)
    # The reply follows "idle" at once; a second of grace, and never past it, however many
    # stray (or forged) messages arrive meanwhile.
    reply_deadline = max(deadline, time.monotonic() + 1.0)
    while (remaining := reply_deadline - time.monotonic()) > 0:
        try:
            msg = await session._kc.get_shell_msg(timeout=min(remaining, POLL_S))
        except Exception:
            if not await session._is_alive():
                raise KernelDied(session._exit_detail()) from None
            continue
        if _parent_id(msg) == msg_id:
            return _content(msg)
    return None


def _parent_id(msg: Any) -> Any:
    parent = msg.get("parent_header") if isinstance(msg, dict) else None
    return parent.get("msg_id") if isinstance(parent, dict) else None


def _content(msg: dict[str, Any]) -> dict[str, Any]:
    content = msg.get("content")
    return content if isinstance(content, dict) else {}


async def _handle_timeout(
    session: KernelSession, msg_id: str, collector: OutputCollector, timeout: float
) -> dict[str, Any] | None:
    result = collector.result
    result.timed_out = True
    await session._km.interrupt_kernel()
    try:
        reply = await _await_reply(
            session, msg_id, collector, time.monotonic() + session.limits.interrupt_grace
        )
    except KernelDied:
        reply = None
    if reply is not None:
        trace = collector.error_traceback
        result.error = ExecutionError(
            "Timeout",
            f"execution exceeded the {timeout:g} s time limit and was interrupted "
            "(variables are kept)",
            trace,
        )
        return None
    await session._restart()
    result.restarted = True
    result.error = ExecutionError(
        "Timeout",
        f"execution exceeded the {timeout:g} s time limit and did not stop when "
        "interrupted; the kernel was restarted and its variables are lost "
        "(registered images are restored)",
    )
    return None


async def _recover_from_death(session: KernelSession, result: ExecutionResult, detail: str) -> None:
    result.error = ExecutionError(
        "KernelDied",
        f"the kernel process exited while running the code ({detail}); it was "
        "restarted and its variables are lost (registered images are restored)",
    )
    await session._restart()
    result.restarted = True


MAX_RESULT_DESCRIPTION = 256 * 1024
"""Characters of the kernel's result description the host parses at most."""


def _result_entries(expression: dict[str, Any]) -> list[dict[str, Any]]:
    """The collected-variables list from the ``user_expressions`` reply, checked.

    Everything in it comes from the (hostile) kernel: its size is capped before parsing
    and every entry must be a flat dict of plain values.
    """
    text = (expression.get("data") or {}).get("text/plain")
    if not isinstance(text, str) or len(text) > MAX_RESULT_DESCRIPTION:
        raise ValueError("it was missing or too large")
    raw = ast.literal_eval(text)
    if not isinstance(raw, str):
        raise ValueError("it was not text")
    found = json.loads(raw)
    plain = (str, int, float, bool, type(None), list)
    if not isinstance(found, list) or not all(
        isinstance(entry, dict) and all(isinstance(v, plain) for v in entry.values())
        for entry in found
    ):
        raise ValueError("it was not a list of flat records")
    return found


def _apply_reply(
    reply: dict[str, Any], result: ExecutionResult, collector: OutputCollector
) -> None:
    """Record the reply's status, error and result variables (their pixels load later)."""
    result.execution_count = reply.get("execution_count")
    status = reply.get("status")
    if status == "error" and result.error is None:
        result.error = ExecutionError(
            reply.get("ename", "Error"),
            reply.get("evalue", ""),
            trim_traceback(reply.get("traceback", [])),
        )
    elif status == "aborted" and result.error is None:
        result.error = ExecutionError("Aborted", "the kernel aborted the request")
    expression = (reply.get("user_expressions") or {}).get("cv")
    if not expression:
        return
    if expression.get("status") != "ok":
        result.error = ExecutionError(
            "ResultError",
            f"could not collect result images: {expression.get('ename')}: "
            f"{expression.get('evalue')}",
        )
        return
    try:
        found = _result_entries(expression)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        result.error = ExecutionError(
            "ResultError", f"the kernel's description of its results was unusable ({exc})"
        )
        return
    images = []
    for entry in found:
        if "buffer" in entry:
            where = {key: entry.pop(key) for key in ("buffer", "offset", "length")}
            where.update(mode=entry.get("mode"), size=entry.get("size"))
            output = OutputImage(
                "result", name=entry["name"], converted_from=entry.get("converted_from")
            )
            collector.defer(output, where)
            images.append(output)
        result.variables.append(entry)
    result.images[:0] = images
