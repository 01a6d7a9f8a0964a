"""A private event loop on a daemon thread that owns every kernel connection.

All kernel I/O runs on this one loop, so the same :class:`KernelSession` works from
synchronous code, from any asyncio loop (Jupyter, LangGraph's async nodes) and from
several threads at once. Sync callers block on a future; async callers await it
without blocking their own loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from langchain_codevision._heap import tune_heap

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """Return the kernel I/O loop, starting its thread on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed() or _thread is None or not _thread.is_alive():
            tune_heap()  # every kernel result is a pixel buffer (see _heap)
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def _run() -> None:
                _allow_blocking_here()
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=_run, name="codevision-kernel-io", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def _allow_blocking_here() -> None:
    """Tell blocking-call detectors (``langgraph dev`` uses blockbuster) to spare this thread.

    This thread exists to absorb the kernel machinery's blocking work (the kernel manager
    writes connection files and spawns processes inside coroutines; pixels go through files) away
    from the caller's event loop, so blocking here delays no one else. The switch is
    blockbuster's per-thread flag; without blockbuster this does nothing.
    """
    try:
        from blockbuster import blockbuster as detector
    except ImportError:
        return
    flag = getattr(detector, "_skip", None)
    if flag is not None:
        flag.value = True


def on_loop_thread() -> bool:
    """Whether the caller runs on the kernel I/O thread itself."""
    return _thread is not None and threading.current_thread() is _thread


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on the kernel loop and return a thread-safe future."""
    return asyncio.run_coroutine_threadsafe(coro, get_loop())


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the kernel loop and block until it finishes."""
    if on_loop_thread():
        coro.close()
        raise RuntimeError("run_sync() cannot be called from the kernel I/O thread")
    future = submit(coro)
    try:
        return future.result(timeout)
    except BaseException:
        future.cancel()
        raise


async def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` on the kernel loop from any other event loop."""
    if on_loop_thread():
        return await coro
    return await asyncio.wrap_future(submit(coro))
