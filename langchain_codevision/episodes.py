"""One kernel per episode, borrowed from a pool and always given back.

Graph state must stay serialisable, so it holds only an ``episode_id``; this registry maps
that id to a live :class:`~langchain_codevision.kernel.KernelSession`. A kernel is borrowed
on the episode's first tool call and returned when the episode ends, when a node raises or
is cancelled, or, for episodes abandoned mid-way (a stream the caller stopped reading), when
it has been idle longer than ``idle_ttl``. A kernel lost across processes (a checkpointed
episode resumed elsewhere) is replaced and the trajectory's images are registered again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from PIL import Image

from .images import TrajectoryImage, decode_trajectory_image
from .kernel import KernelPool, KernelSession

_default_pool: KernelPool | None = None
_default_lock = threading.Lock()


def default_pool() -> KernelPool:
    """The process-wide pool used when a graph is built without one (2 warm kernels)."""
    global _default_pool
    with _default_lock:
        if _default_pool is None or _default_pool._closed:
            _default_pool = KernelPool(size=2)
        return _default_pool


class EpisodeKernels:
    """Maps episode ids to borrowed kernels."""

    def __init__(self, pool: KernelPool | None = None, idle_ttl: float = 900.0) -> None:
        self._pool = pool
        self.idle_ttl = idle_ttl
        self._lent: dict[str, tuple[KernelSession, float]] = {}
        self._decoded: dict[str, tuple[dict[int, Image.Image], float]] = {}
        self._lock = threading.Lock()

    @property
    def pool(self) -> KernelPool:
        """The pool kernels come from."""
        if self._pool is None:
            self._pool = default_pool()
        return self._pool

    def _take(self, episode_id: str) -> KernelSession | None:
        with self._lock:
            entry = self._lent.get(episode_id)
            if entry is None:
                return None
            self._lent[episode_id] = (entry[0], time.monotonic())
            return entry[0]

    def remember(self, episode_id: str, images: dict[int, Image.Image]) -> None:
        """Keep an episode's decoded input images so its kernel is loaded without decoding."""
        with self._lock:
            self._decoded[episode_id] = (images, time.monotonic())

    def _pixels(self, episode_id: str, item: TrajectoryImage) -> Image.Image:
        with self._lock:
            known = self._decoded.get(episode_id, ({}, 0.0))[0]
        cached = known.get(item["index"])
        return cached if cached is not None else decode_trajectory_image(item)

    def _stale(self) -> list[KernelSession]:
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (_, t) in self._decoded.items() if now - t > self.idle_ttl]:
                del self._decoded[key]
            stale = [k for k, (_, used) in self._lent.items() if now - used > self.idle_ttl]
            return [self._lent.pop(k)[0] for k in stale]

    def get(self, episode_id: str, images: Sequence[TrajectoryImage]) -> KernelSession:
        """The episode's kernel, borrowed and loaded with ``images`` on first use."""
        session = self._take(episode_id)
        if session is not None:
            return session
        for stale in self._stale():
            self.pool.release(stale)
        session = self.pool.acquire()
        try:
            for item in images:
                session.put_image(item["index"], self._pixels(episode_id, item))
        except BaseException:
            self.pool.release(session)
            raise
        with self._lock:
            self._lent[episode_id] = (session, time.monotonic())
        return session

    async def aget(self, episode_id: str, images: Sequence[TrajectoryImage]) -> KernelSession:
        """Async :meth:`get`."""
        session = self._take(episode_id)
        if session is not None:
            return session
        for stale in self._stale():
            await self.pool.arelease(stale)
        session = await self.pool.aacquire()
        try:
            for item in images:
                await session.aput_image(item["index"], self._pixels(episode_id, item))
        except BaseException:
            await self.pool.arelease(session)
            raise
        with self._lock:
            self._lent[episode_id] = (session, time.monotonic())
        return session

    def release(self, episode_id: str | None) -> None:
        """Return the episode's kernel to the pool (no-op if it has none)."""
        if not episode_id:
            return
        with self._lock:
            entry = self._lent.pop(episode_id, None)
            self._decoded.pop(episode_id, None)
        if entry is not None:
            self.pool.release(entry[0])

    async def arelease(self, episode_id: str | None) -> None:
        """Async :meth:`release`."""
        if not episode_id:
            return
        with self._lock:
            entry = self._lent.pop(episode_id, None)
            self._decoded.pop(episode_id, None)
        if entry is not None:
            await self.pool.arelease(entry[0])

    def __len__(self) -> int:
        return len(self._lent)
