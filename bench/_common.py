"""Small helpers shared by the benchmarks: timing and JSON + markdown reports."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def _cpu_ticks() -> list[int]:
    """The machine's CPU time so far, in clock ticks, by kind (``/proc/stat``'s first line)."""
    with open("/proc/stat", encoding="ascii") as handle:
        return [int(value) for value in handle.readline().split()[1:]]


def machine_busy_s() -> float:
    """CPU seconds this machine has spent at work: its processes and the OS (``/proc/stat``).

    User, nice, system, IRQ and soft-IRQ time. Not idle or I/O wait, and not steal: the
    time a virtual machine's hypervisor gave to other guests, which on a shared host can
    be a third of the wall time and is none of this machine's work (guest time is part of
    user time already).
    """
    user, nice, system, _idle, _iowait, irq, softirq = _cpu_ticks()[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class StealMeter:
    """The share of this machine's CPU time a hypervisor gave to other guests meanwhile.

    Started when made; :meth:`percent` is steal over all CPU time since (``/proc/stat``).
    On a shared virtual machine it tells a slow run from a slow package: with a third of
    the time stolen, every absolute figure of the run is about half again as long.
    """

    def __init__(self) -> None:
        self.start = _cpu_ticks()

    def percent(self) -> float:
        now = _cpu_ticks()
        delta = [b - a for a, b in zip(self.start, now, strict=False)]
        total = sum(delta[:8])  # user..steal (guest time is part of user already)
        return round(100 * delta[7] / total, 1) if total > 0 and len(delta) > 7 else 0.0


def measure(fn: Callable[[], Any], repeat: int, warmup: int = 2) -> dict[str, float]:
    """Median / p90 / min wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p90_ms": samples[int(0.9 * (len(samples) - 1))],
        "min_ms": samples[0],
        "n": len(samples),
    }


def measure_interleaved(
    fns: dict[str, Callable[[], Any]], repeat: int, warmup: int = 2
) -> dict[str, dict[str, float]]:
    """Time several functions in alternation, so load drift hits them all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1000)
    return {
        name: {"median_ms": statistics.median(xs), "min_ms": min(xs), "n": len(xs)}
        for name, xs in samples.items()
    }


def write_report(name: str, title: str, rows: list[dict[str, Any]], extra: dict[str, Any]) -> Path:
    """Write ``results/NAME.json`` and ``results/NAME.md``; return the markdown path."""
    RESULTS.mkdir(exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), **extra}
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"# {title}", "", *(f"- {k}: {v}" for k, v in meta.items()), ""]
    lines += ["| metric | value | target | ok |", "|---|---|---|---|"]
    for row in rows:
        value = row["value"]
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        ok = "" if row.get("ok") is None else ("yes" if row["ok"] else "NO")
        lines.append(
            f"| {row['metric']} | {shown} {row.get('unit', '')} | {row.get('target', '')} | {ok} |"
        )
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path
