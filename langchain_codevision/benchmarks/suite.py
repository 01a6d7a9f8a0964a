"""Run the peer benchmark: one run, one machine, the same workloads for every executor.

:func:`run_bench` measures, in this order:

1. **peers**: every executor of :mod:`.peers` on every workload of :mod:`.workloads`; the
   output is checked pixel for pixel first, then timed (medians of ``repeat`` runs, the
   executors interleaved so load drift hits them alike) and divided by the in-process
   floor measured in the same run; plus the bytes that reach the model per image step;
2. **starts**: a kernel's cold start (fresh interpreter, forked from the kernel template
   where this build offers ``KernelSession(start="fork")``, plain) beside a raw
   jupyter_client kernel and a warm pool's hand-out;
3. **memory**: PSS per kernel (proportional set size: shared pages split among sharers)
   with one and with several kernels alive;
4. **concurrency**: episodes/s through the graph (``abatch``) with a scripted model at
   each concurrency, on a pool bounded to that many kernels, and what was left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil
from PIL import Image

from .footprint import kernel_footprint, leaked, settled_footprint
from .peers import EXECUTORS, Executor, make_executor
from .workloads import CROP_CONTRAST, ROTATE, WORKLOADS, Workload, expected, page

__all__ = ["BenchConfig", "check", "fork_support", "run_bench"]


@dataclass
class BenchConfig:
    """What to run (``quick``: a tiny run for tests: 1 repeat, a small page)."""

    repeat: int = 15
    size: int = 1000
    executors: Sequence[str] = EXECUTORS
    concurrency: Sequence[int] = (1, 2, 4, 8, 64)
    starts: int = 5
    alive: int = 4
    recycle: Sequence[str] = ("replace", "reset")
    progress: Callable[[str], None] = field(default=lambda message: None)

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """The smallest run that still covers every part."""
        values = {"repeat": 1, "size": 160, "concurrency": (1, 2), "starts": 1, "alive": 2}
        values["recycle"] = ("reset",)
        return cls(**{**values, **overrides})


def _same_pixels(got: Image.Image | None, want: Image.Image) -> bool:
    if not isinstance(got, Image.Image) or got.size != want.size:
        return False
    return np.array_equal(np.asarray(got.convert(want.mode)), np.asarray(want))


def check(executor: Executor, workload: Workload, image: Image.Image) -> tuple[bool, Any]:
    """Run ``workload`` once; whether every output has the expected pixels, and step 1."""
    executor.begin(image)
    outs = [executor.step(step) for step in workload.steps]
    pairs = zip(outs, expected(workload, image), strict=True)
    good = all(_same_pixels(out.image, want) for out, want in pairs)
    return good, outs[0]


def _timed_episode(executor: Executor, workload: Workload, image: Image.Image) -> float:
    start = time.perf_counter()
    executor.begin(image)
    for step in workload.steps:
        executor.step(step)
    return (time.perf_counter() - start) * 1000


def _timed_step(executor: Executor, workload: Workload) -> float:
    start = time.perf_counter()
    executor.step(workload.steps[0])
    return (time.perf_counter() - start) * 1000


def bench_peers(config: BenchConfig, image: Image.Image) -> list[dict[str, Any]]:
    """Check, then time every executor on every workload (see the module docs)."""
    rows, live = [], []
    for name in config.executors:
        executor = make_executor(name)
        row: dict[str, Any] = {"name": name, "title": executor.title}
        row.update(returns_images=executor.returns_images, missing=executor.missing)
        rows.append(row)
        if executor.missing:
            row.update(isolation=executor.isolation, correct=None, workloads={})
            continue
        config.progress(f"peers: {name}")
        started = time.perf_counter()
        executor.open()
        row["open_ms"] = (time.perf_counter() - started) * 1000
        row["isolation"] = executor.isolation
        row["workloads"], row["correct"] = {}, True
        for workload in WORKLOADS:
            good, first = check(executor, workload, image)
            row["correct"] = row["correct"] and good
            row["workloads"][workload.name] = {"correct": good, "samples": []}
            if workload.name == "rotate":
                row["image_bytes_per_step"] = first.image_bytes
                row["text_bytes_per_step"] = len(first.text.encode())
        live.append((executor, row))
    try:
        for workload in WORKLOADS:
            for executor, _ in live:
                executor.begin(image)
            for _ in range(config.repeat):
                for executor, row in live:
                    sample = (
                        _timed_episode(executor, workload, image)
                        if len(workload.steps) > 1
                        else _timed_step(executor, workload)
                    )
                    row["workloads"][workload.name]["samples"].append(sample)
    finally:
        for executor, _ in live:
            with contextlib.suppress(Exception):
                executor.close()
    floor = next((r for r in rows if r["name"] == "floor" and r.get("workloads")), None)
    for row in rows:
        for name, entry in row.get("workloads", {}).items():
            samples = entry.pop("samples")
            entry["median_ms"] = statistics.median(samples) if samples else None
            entry["n"] = len(samples)
            base = floor["workloads"][name]["median_ms"] if floor else None
            entry["x_floor"] = entry["median_ms"] / base if base and samples else None
    return rows


def fork_support() -> tuple[bool, str]:
    """Whether ``KernelSession`` offers a forked start (``start="fork"``), and why not."""
    from langchain_codevision.kernel import KernelSession

    parameter = inspect.signature(KernelSession).parameters.get("start")
    if parameter is None:
        return False, "not available: KernelSession has no start= option"
    try:
        KernelSession(start="fork")
    except (ValueError, TypeError) as exc:
        return False, f"not available: {exc}"
    return True, "KernelSession(start='fork')"


def _session_kwargs(mode: str) -> dict[str, Any]:
    from langchain_codevision.kernel import KernelSession

    has_start = "start" in inspect.signature(KernelSession).parameters
    if mode == "plain":
        return {"isolation": "off", **({"start": "exec"} if has_start else {})}
    if mode == "fork":
        return {"start": "fork"}
    return {"start": "exec"} if has_start else {}


def _modes() -> list[str]:
    return ["exec", *(["fork"] if fork_support()[0] else []), "plain"]


def _cold_ms(mode: str) -> float:
    from langchain_codevision.kernel import KernelSession

    session = KernelSession(**_session_kwargs(mode))
    started = time.perf_counter()
    session.start()
    took = (time.perf_counter() - started) * 1000
    session.close()
    return took


def _raw_jupyter_ms() -> float:
    from .peers import JupyterRaw

    raw = JupyterRaw()
    started = time.perf_counter()
    raw.open()
    took = (time.perf_counter() - started) * 1000
    raw.close()
    return took


def _warm_ms(count: int) -> float:
    from langchain_codevision.kernel import KernelPool

    samples = []
    with KernelPool(size=1, max_size=2) as pool:
        for _ in range(count):
            pool.wait_ready(timeout=300)
            started = time.perf_counter()
            session = pool.acquire()
            samples.append((time.perf_counter() - started) * 1000)
            pool.release(session)
    return statistics.median(samples)


def bench_starts(config: BenchConfig) -> list[dict[str, Any]]:
    """Cold starts per mode, a raw jupyter_client kernel, and a warm pool's hand-out."""
    rows = []
    supported, how = fork_support()
    for mode in ("exec", "fork", "plain"):
        if mode == "fork" and not supported:
            rows.append({"mode": "fork", "median_ms": None, "note": how})
            continue
        config.progress(f"starts: {mode}")
        if mode == "fork":
            _cold_ms(mode)  # not counted: it may start this process's kernel template
        samples = [_cold_ms(mode) for _ in range(config.starts)]
        rows.append({"mode": mode, "median_ms": statistics.median(samples), "n": len(samples)})
    samples = [_raw_jupyter_ms() for _ in range(config.starts)]
    rows.append({"mode": "raw jupyter_client", "median_ms": statistics.median(samples)})
    rows.append({"mode": "warm pool acquire", "median_ms": _warm_ms(max(config.starts, 3))})
    return rows


def _tree_pss(pid: int | None) -> int:
    if not pid:
        return 0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_full_info().pss
    return total


def _template_pss() -> float | None:
    """PSS of this process's kernel template (the forked kernels' shared parent), in MiB."""
    from .footprint import TEMPLATE_SCRIPT

    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(part.endswith(TEMPLATE_SCRIPT) for part in child.cmdline()[:3]):
                return child.memory_full_info().pss / 2**20
    return None


def bench_memory(config: BenchConfig) -> list[dict[str, Any]]:
    """PSS per kernel (its whole process tree) with 1 and ``alive`` kernels running.

    A forked kernel's row also gives the template's own PSS (paid once per host process).
    """
    from langchain_codevision.kernel import KernelSession

    rows = []
    for mode in _modes():
        config.progress(f"memory: {mode}")
        for alive in sorted({1, config.alive}):
            sessions = [KernelSession(**_session_kwargs(mode)) for _ in range(alive)]
            try:
                for session in sessions:
                    session.start()
                time.sleep(0.2)
                per = [_tree_pss(s.pid) for s in sessions]
                rows.append(
                    {
                        "mode": mode,
                        "alive": alive,
                        "pss_mib_per_kernel": statistics.mean(per) / 2**20,
                        "forked": all(getattr(s, "forked", False) for s in sessions),
                        "template_pss_mib": _template_pss() if mode == "fork" else None,
                    }
                )
            finally:
                for session in sessions:
                    session.close()
    return rows


async def _episodes(graph: Any, count: int, concurrency: int, image: Image.Image) -> list:
    inputs = [{"image": image, "question": f"episode {k}"} for k in range(count)]
    return await graph.abatch(inputs, {"max_concurrency": concurrency})


def bench_concurrency(config: BenchConfig, image: Image.Image) -> list[dict[str, Any]]:
    """Episodes/s through the graph at each concurrency (a 2-call scripted episode)."""
    from langchain_codevision.kernel import KernelPool
    from langchain_codevision.loop.graph import create_codevision_graph

    from .scripted import ScriptedEpisodeModel

    model = ScriptedEpisodeModel(codes=[ROTATE.code, CROP_CONTRAST.code])
    rows = []
    for recycle in config.recycle:
        for level in config.concurrency:
            config.progress(f"concurrency: {recycle} x{level}")
            count = max(2 * level, 16) if config.repeat > 1 else max(level, 2)
            before = kernel_footprint()
            pool = KernelPool(size=min(level, 8), max_size=level, recycle=recycle)
            try:
                pool.wait_ready(timeout=600)
                graph = create_codevision_graph(model, pool=pool)
                started = time.perf_counter()
                outs = asyncio.run(_episodes(graph, count, level, image))
                took = time.perf_counter() - started
                stats = dict(pool.stats)
            finally:
                pool.close()
            ok = sum(o.get("answer") == "done" and len(o.get("steps", [])) == 2 for o in outs)
            rows.append(
                {
                    "recycle": recycle,
                    "concurrency": level,
                    "episodes": count,
                    "completed": ok,
                    "episodes_per_s": count / took,
                    "peak_alive": stats["peak_alive"],
                    "waits": stats["waits"],
                    "leaked": leaked(before, settled_footprint(before)),
                }
            )
    return rows


def run_bench(config: BenchConfig | None = None) -> dict[str, Any]:
    """Run every part (see the module docs) and return one JSON-ready dict."""
    config = config or BenchConfig()
    image = page(config.size)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "meta": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
            "image": f"{config.size}x{config.size} RGB page",
            "repeat": config.repeat,
            "forked_start": fork_support()[1],
        }
    }
    result["peers"] = bench_peers(config, image)
    result["starts"] = bench_starts(config)
    result["memory"] = bench_memory(config)
    result["concurrency"] = bench_concurrency(config, image)
    result["meta"]["seconds"] = time.perf_counter() - started
    result["meta"]["load_avg_1m_end"] = os.getloadavg()[0]
    return result
