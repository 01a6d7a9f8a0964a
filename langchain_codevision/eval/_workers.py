"""Worker processes for an evaluation: its items shared out, its rows written here.

One Python process drives episodes on one core at a time: the graph, the messages and the
kernel clients are Python that holds the GIL, so threads and asyncio interleave that work
rather than run it side by side. :func:`run_in_processes` spawns ``processes`` workers. Each
runs every ``processes``-th item of the run, in both arms (:func:`~langchain_codevision.eval.runner.
run_items`: its own model, graph and kernel pool, a share of the concurrency and of the
request rate) and sends each row back as it finishes. The calling process writes every row,
so ``results.jsonl`` has one writer, and resuming works as for a one-process run.

A worker that dies (killed, out of memory, a crash in native code) does not stop the run:
each item it had not finished gets a failed row naming the exit, and a rerun retries it.
Workers are spawned, never forked, so they start without the caller's threads and locks;
the model reaches them pickled, or as a picklable function that builds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import pickle
import queue
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from langchain_core.language_models import BaseChatModel

from langchain_codevision.eval._episodes import row_key
from langchain_codevision.eval.datasets import EvalItem
from langchain_codevision.eval.runner import RunSettings, failed_row, run_items

__all__ = ["run_in_processes"]

POLL_S = 0.2
"""How often the caller looks at its workers while no row arrives."""
Row = dict[str, Any]


def _payload(model: Any, settings: RunSettings) -> bytes:
    """The model (or its builder) and settings, pickled once for every worker."""
    try:
        return pickle.dumps((model, settings))
    except Exception as exc:
        what = "the judge" if _unpicklable(settings.judge) else "the model"
        raise ValueError(
            f"processes > 1 sends {what} to worker processes, and it cannot be pickled "
            f"({type(exc).__name__}: {exc}); pass a function of no arguments that builds "
            "it instead, e.g. functools.partial(ChatOpenAI, model=..., base_url=...)"
        ) from exc


def _unpicklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return True
    return False


def _worker(index: int, shard: list[tuple[EvalItem, str]], payload: bytes, out: Any) -> None:
    """A worker process: run ``shard``, send ``("row", ...)`` per item, then ``("done", ...)``."""
    try:
        model, settings = pickle.loads(payload)
        built = model if isinstance(model, BaseChatModel) else model()
        send = lambda row: out.put(("row", index, row))  # noqa: E731
        stats = asyncio.run(run_items(shard, built, settings, send))
        out.put(("done", index, stats))
    except BaseException:
        out.put(("failed", index, traceback.format_exc(limit=8)))


def _shares(total: float | int | None, parts: int, minimum: float | int) -> list[Any]:
    """``total`` shared out over ``parts`` (each at least ``minimum``; ``None`` stays)."""
    if total is None:
        return [None] * parts
    if isinstance(total, int):
        return [max(minimum, total // parts + (k < total % parts)) for k in range(parts)]
    return [max(minimum, total / parts)] * parts


class _Coordinator:
    """The caller's side: start the workers, relay their rows, account for their deaths."""

    def __init__(
        self,
        todo: Sequence[tuple[EvalItem, str]],
        model: Any,
        settings: RunSettings,
        processes: int,
        emit: Callable[[Row], None],
    ) -> None:
        order = list(dict.fromkeys(item.id for item, _ in todo))  # both arms of an item together
        count = max(1, min(processes, len(order)))
        worker_of = {item_id: k % count for k, item_id in enumerate(order)}
        self.shards: list[list[tuple[EvalItem, str]]] = [[] for _ in range(count)]
        for item, arm in todo:
            self.shards[worker_of[item.id]].append((item, arm))
        concurrency = _shares(settings.concurrency, count, 1)
        kernels = _shares(settings.max_kernels, count, 1)
        rates = _shares(settings.requests_per_second, count, 0)
        self.payloads = [
            _payload(
                model,
                replace(
                    settings,
                    concurrency=concurrency[k],
                    max_kernels=kernels[k],
                    requests_per_second=rates[k],
                ),
            )
            for k in range(count)
        ]
        self.emit = emit
        self.pending = [
            {row_key(item.id, arm): (item, arm) for item, arm in shard} for shard in self.shards
        ]
        self.stats: dict[str, Any] = {}
        self.stop = threading.Event()

    def run(self) -> dict[str, Any]:
        """Until every worker has finished or died (or :attr:`stop` is set)."""
        context = multiprocessing.get_context("spawn")
        inbox = context.Queue()
        workers = [
            context.Process(
                target=_worker,
                args=(k, shard, payload, inbox),
                name=f"codevision-eval-{k}",
            )
            for k, (shard, payload) in enumerate(zip(self.shards, self.payloads, strict=True))
        ]
        finished: set[int] = set()
        try:
            for worker in workers:
                worker.start()
            while len(finished) < len(workers) and not self.stop.is_set():
                try:
                    message = inbox.get(timeout=POLL_S)
                except queue.Empty:
                    self._bury(workers, finished, inbox)
                    continue
                self._take(message, finished)
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.kill()
                worker.join(timeout=10)
            inbox.close()
        return self.stats

    def _take(self, message: tuple[str, int, Any], finished: set[int]) -> None:
        kind, index, data = message
        if kind == "row":
            self.pending[index].pop(data.get("key"), None)
            self.emit(data)
        elif kind == "done":
            for name, value in data.items():
                if isinstance(value, (int, float)):
                    self.stats[name] = self.stats.get(name, 0) + value
            finished.add(index)
        else:  # "failed": the worker's own code raised
            last = data.strip().splitlines()[-1] if data.strip() else "unknown error"
            self._fail_rest(index, f"worker process {index} failed: {last}")
            finished.add(index)

    def _bury(self, workers: list[Any], finished: set[int], inbox: Any) -> None:
        """Workers that exited without saying so: what they sent first, then failed rows."""
        for index, worker in enumerate(workers):
            if index in finished or worker.is_alive():
                continue
            with contextlib.suppress(queue.Empty):
                while True:  # rows it queued just before it died
                    self._take(inbox.get(timeout=POLL_S), finished)
            if index not in finished:
                why = f"worker process {index} died (exit code {worker.exitcode})"
                self._fail_rest(index, why)
                finished.add(index)

    def _fail_rest(self, index: int, error: str) -> None:
        for item, arm in self.pending[index].values():
            self.emit(failed_row(item, arm, error, 0))
        self.pending[index].clear()


async def run_in_processes(
    todo: Sequence[tuple[EvalItem, str]],
    model: BaseChatModel | Callable[[], BaseChatModel],
    settings: RunSettings,
    processes: int,
    emit: Callable[[Row], None],
) -> dict[str, Any]:
    """Run ``todo`` in ``processes`` worker processes; the kernel pools' counters, summed.

    ``emit`` gets every row in this process, as it arrives, from one helper thread.

    Raises:
        ValueError: The model (or the judge) cannot be pickled for the workers.
    """
    coordinator = _Coordinator(todo, model, settings, processes, emit)
    try:
        return await asyncio.to_thread(coordinator.run)
    except asyncio.CancelledError:
        coordinator.stop.set()  # the helper thread kills the workers and returns
        raise
