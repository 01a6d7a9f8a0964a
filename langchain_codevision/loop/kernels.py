"""One kernel per episode, borrowed from a pool and always given back.

Graph state must stay serialisable, so it holds only an ``episode_id``; this registry maps
that id to a live :class:`~langchain_codevision.kernel.KernelSession`. A kernel is borrowed
on the episode's first tool call and returned when the episode ends, when a node raises or
is cancelled, or, for episodes abandoned mid-way (a stream the caller stopped reading), when
it has been idle longer than ``idle_ttl``. A release that arrives while the episode's kernel
is still being fetched (a cancelled node whose kernel work runs on the kernel I/O loop)
is remembered: the fetch then hands the kernel straight back instead of keeping it. A kernel
lost across processes (a checkpointed
episode resumed elsewhere) is replaced and the trajectory's images are registered again.

A profile's ``preamble`` (extra bound names, e.g. the release's ``PI`` and ``cv``) comes
with the kernels: the default pools are built with it as the session preamble, and a kernel
from a pool without it runs it once when it is lent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from langchain_codevision.images import TrajectoryImage, decode_trajectory_image
from langchain_codevision.kernel import KernelPool, KernelSession

if TYPE_CHECKING:
    from langchain_codevision.images import PixelSource

__all__ = ["EpisodeKernels", "default_pool"]

_default_pools: dict[str, KernelPool] = {}
_default_lock = threading.Lock()


def default_pool(preamble: str = "") -> KernelPool:
    """The process-wide pool for graphs built without one (2 warm kernels per preamble)."""
    with _default_lock:
        pool = _default_pools.get(preamble)
        if pool is None or pool._closed:
            pool = KernelPool(size=2, preamble=preamble) if preamble else KernelPool(size=2)
            _default_pools[preamble] = pool
        return pool


class EpisodeKernels:
    """Maps episode ids to borrowed kernels.

    Args:
        pool: Where kernels come from (default: :func:`default_pool` for ``preamble``).
        idle_ttl: Seconds after which a kernel of an abandoned episode is taken back.
        preamble: Code every lent kernel must have run (a profile's extra names).
    """

    def __init__(
        self, pool: KernelPool | None = None, idle_ttl: float = 900.0, preamble: str = ""
    ) -> None:
        self._pool = pool
        self.idle_ttl = idle_ttl
        self.preamble = preamble
        self._lent: dict[str, tuple[KernelSession, float]] = {}
        self._decoded: dict[str, tuple[dict[int, PixelSource], float]] = {}
        self._fetching: dict[str, int] = {}
        self._ended: set[str] = set()
        self._lock = threading.Lock()

    @property
    def pool(self) -> KernelPool:
        """The pool kernels come from."""
        if self._pool is None:
            self._pool = default_pool(self.preamble)
        return self._pool

    def _needs_preamble(self, session: KernelSession) -> bool:
        return bool(self.preamble) and self.preamble not in getattr(session, "user_preamble", "")

    def _take(self, episode_id: str) -> KernelSession | None:
        with self._lock:
            entry = self._lent.get(episode_id)
            if entry is None:
                return None
            self._lent[episode_id] = (entry[0], time.monotonic())
            return entry[0]

    def remember(self, episode_id: str, images: dict[int, PixelSource]) -> None:
        """Keep an episode's decoded input images so its kernel is loaded without decoding."""
        with self._lock:
            self._decoded[episode_id] = (images, time.monotonic())

    def _pixels(self, episode_id: str, item: TrajectoryImage) -> PixelSource:
        with self._lock:
            known = self._decoded.get(episode_id, ({}, 0.0))[0]
        cached = known.get(item["index"])
        if cached is not None:
            return cached
        pixels = getattr(item, "pixels", None)  # a TrajectoryImage's own, read-only
        return pixels if pixels is not None else decode_trajectory_image(item)

    def _stale(self) -> list[KernelSession]:
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (_, t) in self._decoded.items() if now - t > self.idle_ttl]:
                del self._decoded[key]
            stale = [k for k, (_, used) in self._lent.items() if now - used > self.idle_ttl]
            return [self._lent.pop(k)[0] for k in stale]

    def _begin_fetch(self, episode_id: str) -> None:
        with self._lock:
            self._fetching[episode_id] = self._fetching.get(episode_id, 0) + 1

    def _end_fetch(self, episode_id: str) -> None:
        with self._lock:
            left = self._fetching.get(episode_id, 1) - 1
            if left > 0:
                self._fetching[episode_id] = left
            else:
                self._fetching.pop(episode_id, None)
                self._ended.discard(episode_id)

    def _keep(self, episode_id: str, session: KernelSession) -> bool:
        """Register the fetched kernel, unless the episode was released meanwhile."""
        with self._lock:
            if episode_id in self._ended:
                return False
            self._lent[episode_id] = (session, time.monotonic())
            return True

    def get(self, episode_id: str, images: Sequence[TrajectoryImage]) -> KernelSession:
        """The episode's kernel, borrowed and loaded with ``images`` on first use.

        Raises:
            RuntimeError: The episode was released while its kernel was being fetched.
        """
        session = self._take(episode_id)
        if session is not None:
            return session
        for stale in self._stale():
            self.pool.release(stale)
        self._begin_fetch(episode_id)
        try:
            session = self.pool.acquire()
            try:
                if self._needs_preamble(session):
                    session.execute(self.preamble)
                for item in images:
                    session.put_image(item["index"], self._pixels(episode_id, item))
                kept = self._keep(episode_id, session)
            except BaseException:
                self.pool.release(session)
                raise
            if not kept:
                self.pool.release(session)
                raise RuntimeError(f"episode {episode_id} ended while its kernel was fetched")
        finally:
            self._end_fetch(episode_id)
        return session

    async def aget(self, episode_id: str, images: Sequence[TrajectoryImage]) -> KernelSession:
        """Async :meth:`get` (raises ``CancelledError`` if the episode ended meanwhile)."""
        session = self._take(episode_id)
        if session is not None:
            return session
        for stale in self._stale():
            await self.pool.arelease(stale)
        self._begin_fetch(episode_id)
        try:
            session = await self.pool.aacquire()
            try:
                if self._needs_preamble(session):
                    await session.aexecute(self.preamble)
                for item in images:
                    await session.aput_image(item["index"], self._pixels(episode_id, item))
                kept = self._keep(episode_id, session)
            except BaseException:
                await self.pool.arelease(session)
                raise
            if not kept:
                await self.pool.arelease(session)
                raise asyncio.CancelledError
        finally:
            self._end_fetch(episode_id)
        return session

    def release(self, episode_id: str | None) -> None:
        """Return the episode's kernel to the pool (no-op if it has none)."""
        if not episode_id:
            return
        entry = self._forget(episode_id)
        if entry is not None:
            self.pool.release(entry[0])

    async def arelease(self, episode_id: str | None) -> None:
        """Async :meth:`release`."""
        if not episode_id:
            return
        entry = self._forget(episode_id)
        if entry is not None:
            await self.pool.arelease(entry[0])

    def _forget(self, episode_id: str) -> tuple[KernelSession, float] | None:
        with self._lock:
            entry = self._lent.pop(episode_id, None)
            self._decoded.pop(episode_id, None)
            if entry is None and episode_id in self._fetching:
                self._ended.add(episode_id)  # the fetch in flight gives its kernel back
            return entry

    def __len__(self) -> int:
        return len(self._lent)
