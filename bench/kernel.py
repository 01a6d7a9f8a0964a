"""Benchmark the kernel runtime against in-process work measured in the same run.

Run: ``python bench/kernel.py [--repeat N]``. Writes ``bench/results/kernel.{json,md}``.

* step: ``execute`` of "rotate a 1000x1000 page 90 degrees" with the result image back on
  the host and PNG-encoded, versus the same rotate + PNG encode done in-process;
* fixed overhead: an empty ``execute`` round trip;
* cold start of a kernel versus acquiring one from a warm pool;
* jail cost: the same step and the cold start in each jail backend (bubblewrap, the
  package's namespaces) versus a plain, unjailed kernel;
* episodes/s with a fresh jailed kernel per episode (the default) versus ``reset``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import measure, measure_interleaved, write_report
from langchain_codevision.kernel import KernelPool, KernelSession


def page() -> Image.Image:
    image = Image.new("RGB", (1000, 1000), "white")
    draw = ImageDraw.Draw(image)
    for row in range(45):
        draw.text(
            (30, 10 + row * 22),
            f"{row:02d} Invoice item {row * 7} total {row * 3.5:.2f} EUR",
            fill="black",
        )
    return image


def png(image: Image.Image, level: int = 6) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


def step_in_kernel(session: KernelSession, level: int = 6) -> None:
    out = session.execute("result = image.rotate(90, expand=True)", image=0, collect=("result",))
    png(out.result_images[0].image, level)


def stock_round_trip(repeat: int) -> dict[str, float]:
    """The floor: an empty cell through jupyter_client's own blocking client, no sandbox."""
    import tempfile

    from jupyter_client import KernelManager

    manager = KernelManager(transport="ipc", ip=str(Path(tempfile.mkdtemp()) / "ipc"))
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    try:
        return measure(
            lambda: client.execute_interactive("pass", output_hook=lambda m: None), repeat
        )
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def episodes_per_second(image: Image.Image, recycle: str, count: int = 20) -> float:
    """Sequential episodes (acquire, load the page, one step, release) through a pool of 2."""
    with KernelPool(size=2, recycle=recycle) as pool:
        pool.wait_ready()
        start = time.perf_counter()
        for _ in range(count):
            with pool.session() as session:
                session.put_image(0, image)
                step_in_kernel(session)
        return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    image = page()
    op_only = measure(lambda: image.rotate(90, expand=True), args.repeat)
    sandboxed = KernelSession().start()
    plain = KernelSession(isolation="off").start()
    other = KernelSession(jail="namespaces").start()
    for session in (sandboxed, plain, other):
        session.put_image(0, image)
    timings = measure_interleaved(
        {
            "baseline": lambda: png(image.rotate(90, expand=True)),
            "baseline_fast": lambda: png(image.rotate(90, expand=True), 1),
            "step": lambda: step_in_kernel(sandboxed),
            "step_plain": lambda: step_in_kernel(plain),
            "step_namespaces": lambda: step_in_kernel(other),
            "step_fast": lambda: step_in_kernel(sandboxed, 1),
        },
        args.repeat,
    )
    other.close()
    baseline, baseline_fast = timings["baseline"], timings["baseline_fast"]
    step, step_plain, step_fast = timings["step"], timings["step_plain"], timings["step_fast"]
    floor = stock_round_trip(args.repeat * 2)
    empty = measure(lambda: sandboxed.execute("pass"), args.repeat * 2)
    isolation = sandboxed.isolation
    sandboxed.close()
    plain.close()

    cold_by_jail = {}
    for label, kwargs in (
        ("plain", {"isolation": "off"}),
        ("bwrap", {"jail": "bwrap"}),
        ("namespaces", {"jail": "namespaces"}),
    ):
        cold = []
        for _ in range(3):
            start = time.perf_counter()
            KernelSession(**kwargs).start().close()
            cold.append((time.perf_counter() - start) * 1000)
        cold_by_jail[label] = statistics.median(cold)
    cold_ms = cold_by_jail["bwrap"]
    episodes = {recycle: episodes_per_second(image, recycle) for recycle in ("replace", "reset")}

    warm = []
    with KernelPool(size=2) as pool:
        for _ in range(10):
            pool.wait_ready()
            start = time.perf_counter()
            session = pool.acquire()
            warm.append((time.perf_counter() - start) * 1000)
            pool.release(session)
    warm_ms = statistics.median(warm)

    step_ratio = step["median_ms"] / baseline["median_ms"]
    fast_ratio = step_fast["median_ms"] / baseline_fast["median_ms"]
    added = empty["median_ms"] - floor["median_ms"]
    overhead = step["median_ms"] - baseline["median_ms"]
    isolation_cost = step["median_ms"] / step_plain["median_ms"] - 1
    rows = [
        {"metric": "in-process rotate", "value": op_only["median_ms"], "unit": "ms"},
        {
            "metric": "in-process rotate + PNG level 6 (baseline)",
            "value": baseline["median_ms"],
            "unit": "ms",
        },
        {
            "metric": "kernel step + PNG level 6 (sandboxed)",
            "value": step["median_ms"],
            "unit": "ms",
        },
        {
            "metric": "kernel step + PNG level 6 (plain kernel)",
            "value": step_plain["median_ms"],
            "unit": "ms",
        },
        {
            "metric": "step / baseline (PNG level 6)",
            "value": step_ratio,
            "unit": "x",
            "target": "<= 1.3",
            "ok": step_ratio <= 1.3,
        },
        {
            "metric": "in-process rotate + PNG level 1",
            "value": baseline_fast["median_ms"],
            "unit": "ms",
        },
        {"metric": "kernel step + PNG level 1", "value": step_fast["median_ms"], "unit": "ms"},
        {
            "metric": "step / baseline (PNG level 1)",
            "value": fast_ratio,
            "unit": "x",
            "target": "<= 1.3",
            "ok": fast_ratio <= 1.3,
        },
        {"metric": "step - baseline", "value": overhead, "unit": "ms"},
        {"metric": "empty execute round trip (ours)", "value": empty["median_ms"], "unit": "ms"},
        {
            "metric": "empty cell, stock jupyter_client, no sandbox (floor)",
            "value": floor["median_ms"],
            "unit": "ms",
        },
        {
            "metric": "fixed overhead we add over the floor",
            "value": added,
            "unit": "ms",
            "target": "<= 5",
            "ok": added <= 5,
        },
        {"metric": "cold start", "value": cold_ms, "unit": "ms"},
        {"metric": "warm pool acquire", "value": warm_ms, "unit": "ms"},
        {
            "metric": "cold / warm",
            "value": cold_ms / warm_ms,
            "unit": "x",
            "target": ">= 40",
            "ok": cold_ms / warm_ms >= 40,
        },
        {
            "metric": "jail cost on the step (bubblewrap vs plain)",
            "value": isolation_cost * 100,
            "unit": "%",
            "target": "<= 10",
            "ok": isolation_cost <= 0.10,
        },
        {
            "metric": "jail cost on the step (namespaces vs plain)",
            "value": (timings["step_namespaces"]["median_ms"] / step_plain["median_ms"] - 1) * 100,
            "unit": "%",
            "target": "<= 10",
        },
        *(
            {"metric": f"cold start ({label})", "value": value, "unit": "ms"}
            for label, value in cold_by_jail.items()
        ),
        {
            "metric": "jail cost on cold start (bubblewrap - plain)",
            "value": cold_by_jail["bwrap"] - cold_by_jail["plain"],
            "unit": "ms",
        },
        {
            "metric": "episodes/s, fresh jailed kernel per episode (default)",
            "value": episodes["replace"],
            "unit": "1/s",
        },
        {"metric": "episodes/s, reset between episodes", "value": episodes["reset"], "unit": "1/s"},
        {
            "metric": "fresh / reset episode throughput",
            "value": episodes["replace"] / episodes["reset"],
            "unit": "x",
        },
    ]
    path = write_report(
        "kernel",
        "Kernel runtime benchmark",
        rows,
        {"image": "1000x1000 RGB page", "repeat": args.repeat, "isolation": isolation},
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
