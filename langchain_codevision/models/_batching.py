"""Gather concurrent generation requests into one padded ``generate`` call.

``Runnable.batch`` (and ``abatch``, and concurrent graph branches) call ``invoke`` from
several threads at once. Each call prepares its prompt, then hands it to a
:class:`MicroBatcher`. The first caller to find the model idle becomes the leader: it
waits, briefly and only while other calls are still preparing, so they can join; then it
runs every waiting request that shares its generation settings as one batch. Callers
arriving while a batch runs queue up and go together in the next one. A single call never
waits for anybody, so ``invoke`` pays nothing for this.

Every request keeps its own LangChain run (callbacks, tracing): only the model call is
shared.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["MicroBatcher"]

P = TypeVar("P")
R = TypeVar("R")


@dataclass(eq=False)
class _Ticket:
    """Requests still on their way: one being prepared, or several announced upfront."""

    remaining: int
    announced: bool = False


@dataclass
class _Request(Generic[P, R]):
    key: Hashable
    payload: P
    done: bool = False
    result: R | None = None
    error: BaseException | None = None
    claimed: bool = field(default=False)


class MicroBatcher(Generic[P, R]):
    """Run concurrent requests with equal keys as batches.

    Args:
        run_batch: Runs payloads together and returns one result per payload, in order.
        max_batch: Largest batch.
        max_wait_s: Longest time a leader waits for callers still preparing.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[P]], Sequence[R]],
        *,
        max_batch: int = 8,
        max_wait_s: float = 0.05,
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max(1, max_batch)
        self._max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._pending: list[_Request[P, R]] = []
        self._tickets: list[_Ticket] = []
        self._running = False
        self.batch_sizes: list[int] = []
        """Sizes of the batches run so far (for tests and benchmarks)."""

    @contextmanager
    def preparing(self) -> Iterator[_Ticket]:
        """Mark a request as being prepared, so that a leader may wait for it.

        Pass the ticket to :meth:`submit` inside the block: the request then stops
        counting as "preparing" at the moment it joins the queue.
        """
        ticket = _Ticket(1)
        with self._cond:
            self._tickets.append(ticket)
        try:
            yield ticket
        finally:
            self._retire(ticket)

    @contextmanager
    def expecting(self, count: int) -> Iterator[None]:
        """Announce ``count`` requests about to arrive (``batch`` knows its size upfront).

        Until they have been submitted (or the block ends) a leader waits for them, up to
        ``max_wait_s``, so that they share a batch.
        """
        ticket = _Ticket(max(0, count), announced=True)
        with self._cond:
            self._tickets.append(ticket)
        try:
            yield
        finally:
            self._retire(ticket)

    def submit(self, key: Hashable, payload: P, ticket: _Ticket | None = None) -> R:
        """Run ``payload`` (possibly together with others of the same key); return its result.

        Raises:
            BaseException: Whatever running its batch raised.
        """
        request: _Request[P, R] = _Request(key, payload)
        with self._cond:
            if ticket is not None:
                self._consume(ticket)
            announced = next((t for t in self._tickets if t.announced), None)
            if announced is not None:
                self._consume(announced)
            self._pending.append(request)
            self._cond.notify_all()
            batch = self._wait_for_turn(request)
        if batch is not None:
            self._run(batch)
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]

    def _consume(self, ticket: _Ticket) -> None:
        if ticket.remaining > 0:
            ticket.remaining -= 1
        if ticket.remaining == 0 and ticket in self._tickets:
            self._tickets.remove(ticket)

    def _retire(self, ticket: _Ticket) -> None:
        with self._cond:
            ticket.remaining = 0
            if ticket in self._tickets:
                self._tickets.remove(ticket)
            self._cond.notify_all()

    @property
    def _expected(self) -> int:
        return sum(ticket.remaining for ticket in self._tickets)

    def _wait_for_turn(self, request: _Request[P, R]) -> list[_Request[P, R]] | None:
        """Wait (holding the condition) until the request is done or this caller leads."""
        while not request.done:
            if self._running or request.claimed:
                self._cond.wait()
                continue
            deadline = time.monotonic() + self._max_wait_s
            while (
                self._expected > 0
                and self._count(request.key) < self._max_batch
                and (remaining := deadline - time.monotonic()) > 0
            ):
                self._cond.wait(remaining)
            if self._running or request.done or request.claimed:
                continue
            batch = [request] + [
                other
                for other in self._pending
                if other is not request and other.key == request.key and not other.claimed
            ]
            batch = batch[: self._max_batch]
            for item in batch:
                item.claimed = True
                self._pending.remove(item)
            self._running = True
            return batch
        return None

    def _count(self, key: Hashable) -> int:
        return sum(1 for r in self._pending if r.key == key and not r.claimed)

    def _run(self, batch: list[_Request[P, R]]) -> None:
        try:
            results = self._run_batch([item.payload for item in batch])
            if len(results) != len(batch):
                raise RuntimeError("run_batch returned the wrong number of results")
            for item, result in zip(batch, results, strict=True):
                item.result = result
        except BaseException as exc:
            for item in batch:
                item.error = exc
        finally:
            with self._cond:
                self.batch_sizes.append(len(batch))
                for item in batch:
                    item.done = True
                self._running = False
                self._cond.notify_all()
