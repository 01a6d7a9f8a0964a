r"""A pool of warm kernels, so an episode does not pay a kernel's cold start.

Kernels are started in the background on the kernel I/O loop. :meth:`KernelPool.session`
hands one out for an episode and takes it back afterwards. By default
(``recycle="replace"``) a returned kernel is discarded with its whole jail and a fresh one
is already warming up, so nothing at all survives between episodes and the fresh start
costs the episode nothing. ``recycle="reset"`` keeps the process and clears its variables
instead: only for trusted, single-tenant code (hooks, threads or patched modules that code
installs survive a reset). A kernel that died, was restarted, or failed to reset is
discarded and replaced. The pool prestarts exactly the shortfall: in ``reset`` mode a lent
kernel counts as coming back.

``max_size`` bounds the kernels alive at once (idle, lent, starting, being recycled):
beyond it ``acquire`` waits for a kernel to come back (back-pressure), and ``stats``
counts those waits and the peaks reached. An async acquire whose caller is cancelled
takes no kernel with it, and an async release finishes even when its caller is cancelled.

Example:
    >>> pool = KernelPool(size=2)
    >>> with pool.session() as kernel:
    ...     kernel.execute("print('warm')").stdout
    'warm\\n'
    >>> pool.close()
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from ._loop import get_loop, on_loop_thread, run_async, run_sync, submit
from .provider import LOCAL, make_session
from .session import KernelSession, KernelStartError

logger = logging.getLogger(__name__)
_live_pools: weakref.WeakSet[KernelPool] = weakref.WeakSet()


class KernelPool:
    """Keeps ``size`` kernels warm and lends them out one episode at a time.

    Args:
        size: Warm kernels kept ready.
        max_size: Most kernels alive at once (idle + lent); ``acquire`` waits beyond it.
        recycle: ``"replace"`` (default: a fresh jailed process per episode) or ``"reset"``
            (clear state, keep the process; trusted code only).
        prestart: Start the warm kernels immediately in the background.
        kernel: Where kernels run: ``"local"`` (default; see :mod:`.provider`).
        **session_kwargs: Passed to every :class:`KernelSession` (limits, isolation, ...).
    """

    def __init__(
        self,
        size: int = 2,
        *,
        max_size: int | None = None,
        recycle: Literal["reset", "replace"] = "replace",
        prestart: bool = True,
        kernel: str = LOCAL,
        **session_kwargs: Any,
    ) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.size = size
        self.max_size = max(max_size or max(size, 1) * 4, size, 1)
        if recycle not in ("reset", "replace"):
            raise ValueError(f"recycle must be 'reset' or 'replace', got {recycle!r}")
        self.recycle = recycle
        self.kernel = kernel
        make_session(kernel, **session_kwargs)  # fail here on a bad spec, not at first use
        self.session_kwargs = session_kwargs
        self._idle: list[KernelSession] = []
        self._lent: set[KernelSession] = set()
        self._starting = 0
        self._waiting = 0
        self._closed = False
        self._cond: asyncio.Condition | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self.stats = {
            "started": 0,
            "reused": 0,
            "discarded": 0,
            "cold_acquires": 0,
            "failed_starts": 0,
            "waits": 0,
            "peak_lent": 0,
            "peak_alive": 0,
        }
        self.last_start_error: Exception | None = None
        self._backoff = 0.0
        _live_pools.add(self)
        if prestart and size:
            submit(self._fill())

    # ------------------------------------------------------------------ public API
    def acquire(self, timeout: float | None = None) -> KernelSession:
        """Take a kernel out of the pool (starting one if none is warm)."""
        return run_sync(self._acquire(timeout))

    def release(self, session: KernelSession) -> None:
        """Give a kernel back; it is recycled in the background."""
        run_sync(self._release(session))

    async def aacquire(self, timeout: float | None = None) -> KernelSession:
        """Async :meth:`acquire`; a caller cancelled while waiting takes no kernel with it.

        The wait runs on the kernel I/O loop. When the caller is cancelled, the wait is
        cancelled there too; a kernel it obtained in the same instant is given back.
        """
        if on_loop_thread():
            return await self._acquire(timeout)
        holder: dict[str, Any] = {}

        async def wait() -> KernelSession:
            holder["task"] = asyncio.current_task()
            if holder.get("abandoned"):
                raise asyncio.CancelledError
            return await self._acquire(timeout)

        future = submit(wait())
        try:
            return await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            get_loop().call_soon_threadsafe(self._abandon, holder)
            future.add_done_callback(self._give_back_orphan)
            raise

    async def arelease(self, session: KernelSession) -> None:
        """Async :meth:`release`; completes even if the caller is cancelled meanwhile."""
        if on_loop_thread():
            await asyncio.shield(self._release(session))
            return
        await asyncio.shield(asyncio.wrap_future(submit(self._release(session))))

    @contextlib.contextmanager
    def session(self, timeout: float | None = None) -> Iterator[KernelSession]:
        """Lend a kernel for a ``with`` block; it always comes back."""
        kernel = self.acquire(timeout)
        try:
            yield kernel
        finally:
            self.release(kernel)

    @contextlib.asynccontextmanager
    async def asession(self, timeout: float | None = None) -> AsyncIterator[KernelSession]:
        """Async :meth:`session` (also releases on cancellation)."""
        kernel = await self.aacquire(timeout)
        try:
            yield kernel
        finally:
            await asyncio.shield(self.arelease(kernel))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until ``size`` kernels are warm (useful before benchmarks)."""
        run_sync(self._wait_ready(timeout))

    def close(self) -> None:
        """Stop every kernel, idle and lent (idempotent)."""
        if self._closed:
            return
        run_sync(self._close())

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        if not self._closed:
            await run_async(self._close())

    @property
    def idle_count(self) -> int:
        """Warm kernels ready to lend."""
        return len(self._idle)

    @property
    def lent_count(self) -> int:
        """Kernels currently lent out."""
        return len(self._lent)

    @property
    def alive_count(self) -> int:
        """Kernels alive or on their way (idle, lent, starting, being recycled)."""
        return self._alive_total()

    @property
    def waiting_count(self) -> int:
        """Callers waiting in :meth:`acquire` right now."""
        return self._waiting

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"KernelPool(size={self.size}, idle={len(self._idle)}, lent={len(self._lent)}, "
            f"recycle={self.recycle!r})"
        )

    # ------------------------------------------------------------------ internals
    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    def _alive_total(self) -> int:
        return len(self._idle) + len(self._lent) + self._starting

    def _abandon(self, holder: dict[str, Any]) -> None:
        """On the kernel loop: stop the wait of a caller that was cancelled."""
        holder["abandoned"] = True
        task = holder.get("task")
        if task is not None and not task.done():
            task.cancel()

    def _give_back_orphan(self, future: Any) -> None:
        """A kernel acquired for a caller that was cancelled goes straight back."""
        if future.cancelled() or future.exception() is not None:
            return
        submit(self._release(future.result()))

    def _note_peaks(self) -> None:
        self.stats["peak_lent"] = max(self.stats["peak_lent"], len(self._lent))
        self.stats["peak_alive"] = max(self.stats["peak_alive"], self._alive_total())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill(self, delay: float = 0.0) -> None:
        """Start the kernels missing from the warm set.

        The shortfall is counted once: a failed start is retried by its own back-off,
        never by a loop here.
        """
        if delay:
            await asyncio.sleep(delay)
        if self._closed:
            return
        coming_back = len(self._lent) if self.recycle == "reset" else 0
        missing = min(
            self.size - len(self._idle) - self._starting - coming_back,
            self.max_size - self._alive_total(),
        )
        for _ in range(max(missing, 0)):
            self._starting += 1
            self._note_peaks()
            self._spawn(self._start_one())

    async def _start_one(self) -> None:
        session = make_session(self.kernel, **self.session_kwargs)
        try:
            await session._start()
            await session._warm()
        except Exception as exc:
            await session._close()
            session._finalizer()
            self.stats["failed_starts"] += 1
            self.last_start_error = exc
            if not self._closed and self._backoff == 0:
                logger.warning("a pool kernel failed to start: %s", exc)
            async with self._condition():
                self._starting -= 1
                self._condition().notify_all()
            # Warm-up retries back off (1 s, 2 s, ... 60 s) so a broken setup never spins.
            self._backoff = min(max(self._backoff * 2, 1.0), 60.0)
            self._spawn(self._fill(delay=self._backoff))
            return
        self._backoff = 0.0
        self.stats["started"] += 1
        async with self._condition():
            self._starting -= 1
            if self._closed:
                await _discard(session)
            else:
                self._idle.append(session)
            self._condition().notify_all()

    async def _acquire(self, timeout: float | None) -> KernelSession:
        if self._closed:
            raise RuntimeError("the kernel pool is closed")
        cond = self._condition()
        async with cond:
            if not self._idle:
                self.stats["cold_acquires"] += 1
            deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
            failures_before = self.stats["failed_starts"]
            tried = waited = False
            while not self._idle:
                if self._closed:
                    raise RuntimeError("the kernel pool is closed")
                if tried and self.stats["failed_starts"] > failures_before and not self._starting:
                    raise KernelStartError(
                        f"no kernel could be started: {self.last_start_error}"
                    ) from self.last_start_error
                if self._alive_total() < self.max_size and self._starting == 0:
                    self._starting += 1
                    tried = True
                    self._note_peaks()
                    self._spawn(self._start_one())
                elif self._alive_total() >= self.max_size and not waited:
                    waited = True  # back-pressure: the pool is at max_size
                    self.stats["waits"] += 1
                remaining = (
                    None if deadline is None else deadline - asyncio.get_running_loop().time()
                )
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("no kernel became available in time")
                wait = 1.0 if remaining is None else min(remaining, 1.0)
                self._waiting += 1
                try:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(cond.wait(), timeout=wait)
                finally:
                    self._waiting -= 1
            session = self._idle.pop()
            self._lent.add(session)
            self._note_peaks()
        self._spawn(self._fill())
        return session

    async def _release(self, session: KernelSession) -> None:
        async with self._condition():
            if session not in self._lent:
                raise ValueError(f"{session!r} was not lent by this pool")
            self._lent.discard(session)
            self._starting += 1  # counts as "on its way back" until recycled
        self._spawn(self._recycle(session))

    async def _recycle(self, session: KernelSession) -> None:
        keep = (
            not self._closed
            and self.recycle == "reset"
            and not session.poisoned
            and not session._closed
            and session.restarts == 0
        )
        if keep:
            try:
                keep = await session._is_alive()
                if keep:
                    await session._reset()
            except Exception:
                keep = False
        async with self._condition():
            self._starting -= 1
            kept = keep and not self._closed and len(self._idle) < self.size
            if kept:
                self._idle.append(session)
                self.stats["reused"] += 1
            self._condition().notify_all()
        if kept:
            return
        self.stats["discarded"] += 1
        await _discard(session)
        self._spawn(self._fill())

    async def _wait_ready(self, timeout: float) -> None:
        cond = self._condition()
        await self._fill()
        async with cond:
            await asyncio.wait_for(
                cond.wait_for(lambda: len(self._idle) >= self.size or self._closed), timeout
            )

    async def _close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        sessions = [*self._idle, *self._lent]
        self._idle.clear()
        self._lent.clear()
        await asyncio.gather(*(_discard(s) for s in sessions), return_exceptions=True)
        async with self._condition():
            self._condition().notify_all()


async def _discard(session: KernelSession) -> None:
    with contextlib.suppress(Exception):
        await session._close()
    session._finalizer()


@atexit.register
def _close_pools_at_exit() -> None:
    pools = list(_live_pools)
    if not pools:
        return
    loop = get_loop()
    for pool in pools:
        if not pool._closed and loop.is_running():
            with contextlib.suppress(Exception):
                run_sync(pool._close(), timeout=10)
