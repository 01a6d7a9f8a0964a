"""Run an evaluation: the code-tool graph and a no-tool baseline side by side, in one run.

* Each item runs in each arm (``"tool"``: :func:`create_codevision_graph` with kernels from
  one :class:`~langchain_codevision.kernel.KernelPool`; ``"no_tool"``: the same model, the
  same question layout, a prompt without the tool).
* Episodes run concurrently, at most ``concurrency`` at once (an asyncio semaphore), in this
  process or shared out over ``processes`` worker processes (:mod:`._workers`: the host-
  side work of episodes then runs on more than one core; rows are still written here, by
  one writer). The runner's own pool is bounded: never more kernels alive than episodes at
  once (or ``max_kernels``); a pool passed in keeps its own bound, and episodes beyond it
  wait for a kernel (back-pressure) instead of starting more.
* Results are appended to ``results.jsonl`` as each one finishes (flushed and synced), so an
  interrupted run loses nothing and a rerun skips every finished item; failed items are
  recorded with their error and retried by the next run.
* A failing item never stops the run; exceptions are retried with exponential backoff, an
  optional rate limiter spaces requests, and ``time_limit_s`` bounds each attempt.
* A progress bar (tqdm) shows the running accuracy of each arm.

Example:
    >>> from langchain_codevision.eval import evaluate, load_dataset
    >>> run = evaluate(load_dataset("bench.parquet"), model, "out/")  # doctest: +SKIP
    >>> run.summary["arms"]["tool"]["accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from langchain_codevision.eval._episodes import ARMS, no_tool_use, row_key, run_no_tool, tool_row
from langchain_codevision.eval.datasets import EvalItem
from langchain_codevision.kernel import KernelPool
from langchain_codevision.protocol import get_profile

__all__ = [
    "RESULTS_FILE",
    "EvalRun",
    "RunSettings",
    "aevaluate",
    "evaluate",
    "failed_row",
    "read_results",
    "run_items",
]

RESULTS_FILE = "results.jsonl"
"""The results file under the output folder."""


@dataclass
class EvalRun:
    """What :func:`evaluate` did.

    Attributes:
        out_dir: The output folder.
        rows: The latest row of every item and arm (finished ones and failures).
        ran: Rows produced by this run (the rest were resumed from disk).
        skipped: Keys skipped because an earlier run finished them.
        summary: The summary (see :func:`~langchain_codevision.eval.report.summarise`).
        files: The files written (results, summary, report, plots, viewer).
        pool_stats: The kernel pool's counters at the end (starts, waits, peaks), summed over
            the worker processes when there are several (a peak is then each one's, added).
    """

    out_dir: Path
    rows: list[dict[str, Any]]
    ran: int = 0
    skipped: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    pool_stats: dict[str, int] = field(default_factory=dict)


def read_results(path: str | Path) -> dict[str, dict[str, Any]]:
    """The latest row per key in a ``results.jsonl``; a torn last line is ignored."""
    path = Path(path)
    rows: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line an interrupted run did not finish
        if isinstance(row, dict) and "key" in row:
            rows[row["key"]] = row
    return rows


class _Appender:
    """Appends rows to the results file, one complete line at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists() and path.stat().st_size:
            with path.open("rb") as handle:
                handle.seek(-1, os.SEEK_END)
                torn = handle.read(1) != b"\n"
            if torn:  # end a torn line so the next row starts cleanly
                with path.open("a", encoding="utf-8") as handle:
                    handle.write("\n")

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


class _Progress:
    """A tqdm bar with the running accuracy per arm (silent when disabled)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.counts: dict[str, list[int]] = {}
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="eval", unit="item", file=sys.stderr)

    def update(self, row: dict[str, Any]) -> None:
        done = self.counts.setdefault(row["arm"], [0, 0])
        done[0] += bool(row.get("correct"))
        done[1] += 1
        if self.bar is not None:
            self.bar.set_postfix(
                {arm: f"{c / n:.1%}" for arm, (c, n) in sorted(self.counts.items())}
            )
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _model_name(model: BaseChatModel) -> str:
    return str(
        getattr(model, "model_name", None) or getattr(model, "model", None) or model._llm_type
    )


def failed_row(item: EvalItem, arm: str, error: str, attempts: int) -> dict[str, Any]:
    """The row of an item that did not finish (``error`` says why); a rerun retries it."""
    return {
        "key": row_key(item.id, arm),
        "id": item.id,
        "arm": arm,
        "dataset": item.dataset,
        "transform": item.transform,
        "qtype": item.qtype,
        "question": item.question,
        "answers": list(item.answers),
        "prediction": None,
        "correct": False,
        "rule": "failed",
        "status": "failed",
        "error": error,
        "attempts": attempts,
        "steps": [],
        "images": [],
        "turns": 0,
        "tool": no_tool_use(item),
    }


@dataclass(frozen=True)
class RunSettings:
    """How each episode of a run is run: what a worker process needs besides its items."""

    out_dir: Path
    model_name: str
    profile: str = "default"
    arms: tuple[str, ...] = ARMS
    concurrency: int = 2
    max_kernels: int | None = None
    time_limit_s: float | None = 300.0
    retries: int = 2
    backoff_s: float = 1.0
    requests_per_second: float | None = None
    judge: Any = None
    graph_kwargs: dict[str, Any] = field(default_factory=dict)


async def run_items(
    todo: Sequence[tuple[EvalItem, str]],
    model: BaseChatModel,
    settings: RunSettings,
    emit: Callable[[dict[str, Any]], None],
    pool: KernelPool | None = None,
) -> dict[str, int]:
    """Run ``todo`` in this process, ``emit`` each row as it finishes; the pool's counters.

    Without ``pool``, kernels come from a pool of at most ``max_kernels`` (default:
    ``concurrency``), closed at the end.
    """
    from langchain_codevision.loop.graph import create_codevision_graph

    profile = get_profile(settings.profile)
    own_pool = pool is None and "tool" in settings.arms and bool(todo)
    bound = max(1, settings.max_kernels or settings.concurrency)
    kernels = KernelPool(size=bound, max_size=bound) if own_pool else pool
    graph = None
    if "tool" in settings.arms:
        graph = create_codevision_graph(
            model, profile=profile, pool=kernels, **settings.graph_kwargs
        )
    limiter = None
    if settings.requests_per_second:
        from langchain_core.rate_limiters import InMemoryRateLimiter

        limiter = InMemoryRateLimiter(
            requests_per_second=settings.requests_per_second, check_every_n_seconds=0.05
        )
    gate = asyncio.Semaphore(max(1, settings.concurrency))
    out, name, judge = settings.out_dir, settings.model_name, settings.judge

    async def attempt(item: EvalItem, arm: str) -> dict[str, Any]:
        if arm == "tool":
            state = await graph.ainvoke({"image": item.images, "question": item.question})
            return tool_row(item, state, out, name, judge)
        return await run_no_tool(model, item, profile, out, name, judge)

    async def one(item: EvalItem, arm: str) -> None:
        async with gate:
            start = time.perf_counter()
            error, tries = "", 0
            for tries in range(1, settings.retries + 2):
                if limiter is not None:
                    await limiter.aacquire()
                try:
                    row = await asyncio.wait_for(attempt(item, arm), settings.time_limit_s)
                    row.update(attempts=tries, seconds=round(time.perf_counter() - start, 4))
                    break
                except asyncio.TimeoutError:
                    error = f"time limit of {settings.time_limit_s} s reached"
                    row = failed_row(item, arm, error, tries)
                    break
                except Exception as exc:  # one item never stops the run
                    error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    row = failed_row(item, arm, error, tries)
                    if tries <= settings.retries:
                        await asyncio.sleep(settings.backoff_s * 2 ** (tries - 1))
            row.setdefault("seconds", round(time.perf_counter() - start, 4))
            emit(row)

    try:
        await asyncio.gather(*(one(item, arm) for item, arm in todo))
    finally:
        if own_pool and kernels is not None:
            await kernels.aclose()
    return dict(kernels.stats) if kernels is not None else {}


async def aevaluate(
    items: Sequence[EvalItem],
    model: BaseChatModel | Callable[[], BaseChatModel],
    out_dir: str | Path,
    *,
    arms: Sequence[str] = ARMS,
    profile: str = "default",
    concurrency: int = 2,
    processes: int = 1,
    limit: int | None = None,
    time_limit_s: float | None = 300.0,
    retries: int = 2,
    backoff_s: float = 1.0,
    requests_per_second: float | None = None,
    judge: Any = None,
    pool: KernelPool | None = None,
    max_kernels: int | None = None,
    progress: bool = True,
    write_outputs: bool = True,
    graph_kwargs: dict[str, Any] | None = None,
) -> EvalRun:
    """Evaluate ``model`` on ``items`` in every arm; see the module docs.

    Args:
        items: The items (see :mod:`langchain_codevision.eval.datasets`).
        model: Any LangChain chat model, or a function of no arguments that builds one
            (what ``processes`` needs for a model that cannot be pickled, such as an API
            client: ``functools.partial(ChatOpenAI, model=..., base_url=...)``).
        out_dir: Where ``results.jsonl`` and the report go (created).
        arms: ``"tool"`` and/or ``"no_tool"``.
        profile: The protocol profile of both arms (``"default"`` or ``"release"``).
        concurrency: Most episodes at once (over all processes).
        processes: Worker processes (see :mod:`langchain_codevision.eval._workers`): each
            runs its share of the items with its own model, graph and kernel pool, so the
            host-side work of episodes runs on more than one core; this process writes
            every row and the report. Worker processes are spawned: a script that calls
            this must guard its top level with ``if __name__ == "__main__":``.
        limit: Only the first ``limit`` items.
        time_limit_s: Seconds per attempt (``None``: no limit); a timed-out attempt fails
            the item without retry.
        retries: Extra attempts after an exception.
        backoff_s: Wait before the first retry; doubled for each later one.
        requests_per_second: Space item starts this far apart (API rate limits; shared
            evenly by the processes).
        judge: Passed to :func:`~langchain_codevision.eval.scoring.score_item`.
        pool: Kernel pool for the tool arm (default: one of at most ``max_kernels`` kernels,
            closed at the end); only with one process.
        max_kernels: Most kernels alive at once in the runner's own pool (default:
            ``concurrency``; fewer makes episodes queue for a kernel).
        progress: Show the progress bar.
        write_outputs: Write ``summary.json``, ``report.md``, plots and ``viewer.html``.
        graph_kwargs: More arguments for :func:`create_codevision_graph`.

    Returns:
        An :class:`EvalRun`.

    Raises:
        ValueError: An unknown arm, ``processes`` below 1, a ``pool`` with more than one
            process, or a model (or judge) that worker processes cannot be given.
        TypeError: ``model`` is neither a chat model nor a function.
    """
    unknown = set(arms) - set(ARMS)
    if unknown:
        raise ValueError(f"unknown arm(s) {sorted(unknown)}; use {', '.join(ARMS)}")
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    if processes > 1 and pool is not None:
        raise ValueError("a kernel pool cannot be shared by worker processes; drop pool=")
    if not isinstance(model, BaseChatModel) and not callable(model):
        raise TypeError(
            f"model must be a LangChain chat model or a function that builds one, not "
            f"{type(model).__name__}"
        )
    built = model if isinstance(model, BaseChatModel) else model()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / RESULTS_FILE
    done = read_results(results_path)
    chosen = list(items)[:limit] if limit is not None else list(items)
    todo = [
        (item, arm)
        for item in chosen
        for arm in arms
        if done.get(row_key(item.id, arm), {}).get("status") != "ok"
    ]
    skipped = len(chosen) * len(arms) - len(todo)
    get_profile(profile)  # an unknown profile fails here, before any episode
    settings = RunSettings(
        out_dir=out,
        model_name=_model_name(built),
        profile=profile,
        arms=tuple(arms),
        concurrency=concurrency,
        max_kernels=max_kernels,
        time_limit_s=time_limit_s,
        retries=retries,
        backoff_s=backoff_s,
        requests_per_second=requests_per_second,
        judge=judge,
        graph_kwargs=dict(graph_kwargs or {}),
    )
    appender = _Appender(results_path)
    bar = _Progress(len(todo), progress)

    def emit(row: dict[str, Any]) -> None:
        appender.write(row)
        bar.update(row)

    try:
        shared = len({item.id for item, _ in todo}) > 1  # workers take whole items
        if processes > 1 and shared:
            from langchain_codevision.eval._workers import run_in_processes

            stats = await run_in_processes(todo, model, settings, processes, emit)
        else:
            stats = await run_items(todo, built, settings, emit, pool)
    finally:
        bar.close()
    latest = read_results(results_path)
    keys = [row_key(item.id, arm) for item in chosen for arm in arms]
    run = EvalRun(out, [latest[k] for k in keys if k in latest], len(todo), skipped)
    run.pool_stats = stats
    if write_outputs:
        from langchain_codevision.eval.report import write_outputs as write_all

        run.summary, run.files = write_all(run.rows, out, model_name=settings.model_name)
    return run


def evaluate(
    items: Sequence[EvalItem],
    model: BaseChatModel | Callable[[], BaseChatModel],
    out_dir: str | Path,
    **kwargs: Any,
) -> EvalRun:
    """Synchronous :func:`aevaluate` (same arguments).

    Raises:
        RuntimeError: Called where an event loop already runs (a notebook, an async app):
            ``await aevaluate(...)`` there instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(aevaluate(items, model, out_dir, **kwargs))
    raise RuntimeError(
        "evaluate() cannot run inside a running event loop (a notebook or an async app); "
        "use `await aevaluate(...)` with the same arguments"
    )
