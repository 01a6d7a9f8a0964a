"""Benchmark the kernel runtime against in-process work measured in the same run.

Run: ``python bench/kernel.py [--repeat N] [--part all|runtime|footprint] [--kernels 16,64]``.
Writes ``bench/results/kernel.{json,md}`` (``--part footprint`` replaces only its own rows)
and ``bench/results/kernel_footprint.png``.

* step: ``execute`` of "rotate a 1000x1000 page 90 degrees" with the result image back on
  the host and PNG-encoded, versus the same rotate + PNG encode done in-process;
* fixed overhead: an empty ``execute`` round trip;
* cold start of a kernel versus acquiring one from a warm pool;
* jail cost: the same step and the cold start in each jail backend (bubblewrap, the
  package's namespaces) versus a plain, unjailed kernel;
* episodes/s with a fresh jailed kernel per episode (the default) versus ``reset``;
* footprint: PSS (``psutil``'s ``memory_full_info().pss``, shared pages split among their
  users) summed over every process of a kernel (its cgroup's members and a supervisor
  outside it, where there is one), for many idle kernels forked from the template versus
  kernels started as fresh interpreters, and the
  time from request to a ready kernel (kernel_info reply, then a first execute) by phase,
  with the template warm and cold.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import psutil
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    RESULTS,
    StealMeter,
    machine_busy_s,
    measure,
    measure_interleaved,
    write_report,
)
from langchain_codevision.kernel import KernelPool, KernelSession
from langchain_codevision.kernel._forkserver import template

MiB = 1024**2
FORK = {"jail": "namespaces", "start": "fork"}
EXEC = {"jail": "namespaces", "start": "exec"}
FOOTPRINT_TAG = "footprint"


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


def kernel_pids(session: KernelSession) -> list[int]:
    """Every process of a jailed kernel: the members of its cgroup, and its supervisor
    (outside the cgroup) where it has one."""
    assert session.host is not None and session.host.cgroup is not None
    procs = session.host.cgroup.paths[0] / "cgroup.procs"
    members = [int(pid) for pid in procs.read_text().split()]
    if session.pid is not None and session.pid not in members:
        members.append(session.pid)
    return members


def pss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_full_info().pss
        except psutil.Error:
            continue
    return total / MiB


def idle_footprint(count: int, options: dict[str, str]) -> dict[str, float]:
    """PSS per idle kernel (mean and max over ``count`` kernels), plus the template's."""
    sessions = []
    try:
        for _ in range(count):
            session = KernelSession(**options).start()
            session.execute("pass")
            sessions.append(session)
        time.sleep(2)  # idle: let the start's transient pages settle
        per_kernel = [pss_mib(kernel_pids(session)) for session in sessions]
        tpl = template()
        template_pss = pss_mib([tpl.pid]) if options.get("start") == "fork" and tpl.pid else 0.0
        return {
            "mean": statistics.mean(per_kernel),
            "max": max(per_kernel),
            "template": template_pss,
            "total": sum(per_kernel) + template_pss,
        }
    finally:
        for session in sessions:
            session.close()


def ready_times(options: dict[str, str], count: int) -> dict[str, float]:
    """Median ms from request to kernel_info reply and to a first working execute, by phase."""
    phases: dict[str, list[float]] = {}
    for _ in range(count):
        start = time.perf_counter()
        session = KernelSession(**options).start()
        out = session.execute("x = 1")
        first_execute = (time.perf_counter() - start) * 1000
        assert out.ok, out.error
        recorded = dict(session.start_phases)
        recorded["kernel_info_reply"] = sum(
            recorded[name] for name in ("launch", "jail", "sockets", "kernel_info")
        )
        recorded["first_execute"] = first_execute
        for name, value in recorded.items():
            phases.setdefault(name, []).append(value)
        session.close()
    return {name: statistics.median(values) for name, values in phases.items()}


def cpu_per_fresh_kernel(options: dict[str, str], count: int) -> dict[str, float]:
    """CPU ms per kernel started, used once (an empty cell) and closed, ``count`` times:
    this process's (the host's) and the whole machine's (the template, the jail, the
    kernel, the OS work of forks, exits and namespaces; shared-machine noise included)."""
    KernelSession(**options).start().close()  # the template is up, the code paths warm
    usage = resource.getrusage(resource.RUSAGE_SELF)
    host, busy = usage.ru_utime + usage.ru_stime, machine_busy_s()
    for _ in range(count):
        session = KernelSession(**options).start()
        session.execute("pass")
        session.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "host": (usage.ru_utime + usage.ru_stime - host) / count * 1000,
        "machine": (machine_busy_s() - busy) / count * 1000,
    }


def footprint_rows(counts: list[int], repeat: int) -> tuple[list[dict], dict]:
    """Rows for the footprint part, and the data of its plot."""
    template().stop()
    cold_template = ready_times(FORK, 1)  # the first request also starts the template
    forked = ready_times(FORK, repeat)
    fresh = ready_times(EXEC, max(3, repeat // 3))
    cpu = cpu_per_fresh_kernel(FORK, max(20, repeat * 3))
    fork_pss = {n: idle_footprint(n, FORK) for n in counts}
    exec_counts = [n for n in counts if n <= 16] or [min(counts)]
    exec_pss = {n: idle_footprint(n, EXEC) for n in exec_counts}
    rows: list[dict] = []

    def row(metric: str, value: float, unit: str, **extra: object) -> None:
        rows.append(
            {"metric": metric, "value": value, "unit": unit, "part": FOOTPRINT_TAG, **extra}
        )

    for n, stats in fork_pss.items():
        row(
            f"PSS per idle kernel, forked, {n} kernels (mean)",
            stats["mean"],
            "MiB",
            target="<= 20",
            ok=stats["mean"] <= 20,
        )
        row(f"PSS per idle kernel, forked, {n} kernels (max)", stats["max"], "MiB")
        row(f"PSS of the template beside {n} kernels", stats["template"], "MiB")
        row(f"PSS of {n} forked kernels + template", stats["total"], "MiB")
    for n, stats in exec_pss.items():
        row(f"PSS per idle kernel, fresh interpreter, {n} kernels (mean)", stats["mean"], "MiB")
    base_n = max(exec_pss)
    row(
        f"forked / fresh PSS per kernel ({base_n} kernels)",
        fork_pss[base_n]["mean"] / exec_pss[base_n]["mean"],
        "x",
    )
    largest = max(fork_pss)
    fit = 24 * 1024 / fork_pss[largest]["mean"]
    row(
        "idle forked kernels that fit 24 GiB (at that PSS)", fit, "", target=">= 512", ok=fit >= 512
    )
    ready = forked["first_execute"]
    row(
        "request -> ready forked kernel (kernel_info, first execute)",
        ready,
        "ms",
        target="<= 50",
        ok=ready <= 50,
    )
    row("request -> kernel_info reply, forked", forked["kernel_info_reply"], "ms")
    for phase in ("launch", "jail", "sockets", "kernel_info", "preamble"):
        row(f"forked start phase: {phase}", forked[phase], "ms")
    row("host CPU per forked kernel (start, one execute, close)", cpu["host"], "ms")
    row("machine CPU per forked kernel (all processes and the OS, no steal)", cpu["machine"], "ms")
    row("request -> ready, fresh interpreter (namespaces)", fresh["first_execute"], "ms")
    row("request -> kernel_info reply, fresh interpreter", fresh["kernel_info_reply"], "ms")
    row(
        "request -> ready, forked, template not yet running (cold)",
        cold_template["first_execute"],
        "ms",
    )
    row("fresh / forked start time", fresh["first_execute"] / ready, "x")
    plot = {
        "fork": {n: s["mean"] for n, s in fork_pss.items()},
        "exec": {n: s["mean"] for n, s in exec_pss.items()},
    }
    return rows, plot


def plot_footprint(plot: dict[str, dict[int, float]], path: Path) -> Path | None:
    """PSS per idle kernel against the number of kernels (PNG), if matplotlib is there."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axis = plt.subplots(figsize=(6, 3.6))
    labels = {"fork": "forked from the template", "exec": "fresh interpreter"}
    for key, series in plot.items():
        counts = sorted(series)
        axis.plot(counts, [series[n] for n in counts], marker="o", label=labels[key])
    axis.axhline(20, color="grey", linestyle="--", linewidth=1, label="target (20 MiB)")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("idle jailed kernels")
    axis.set_ylabel("PSS per kernel (MiB)")
    axis.set_ylim(bottom=0)
    axis.legend()
    axis.set_title("Memory per idle kernel (PSS, all its processes)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def merge_part(rows: list[dict], meta: dict, part: str) -> Path:
    """Replace one part's rows (``footprint`` or ``runtime``) of the last report with ``rows``.

    The other part's rows are kept as they were, runtime rows first as in a full report.
    """
    previous = RESULTS / "kernel.json"
    is_footprint = part == FOOTPRINT_TAG
    kept, old_meta = [], {}
    if previous.exists():
        data = json.loads(previous.read_text())
        kept = [r for r in data["rows"] if (r.get("part") == FOOTPRINT_TAG) != is_footprint]
        old_meta = {k: v for k, v in data["meta"].items() if k not in ("python", "machine")}
    ordered = kept + rows if is_footprint else rows + kept
    return write_report("kernel", "Kernel runtime benchmark", ordered, {**old_meta, **meta})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--part", choices=("all", "runtime", "footprint"), default="all")
    parser.add_argument("--kernels", default="1,16,64", help="idle kernel counts for PSS")
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.kernels.split(",")})
    footprint: list[dict] = []
    meta = {"footprint kernels": counts}
    if args.part in ("all", "footprint"):
        footprint, plot = footprint_rows(counts, max(5, args.repeat // 3))
        plot_footprint(plot, RESULTS / "kernel_footprint.png")
    if args.part == "footprint":
        print(merge_part(footprint, meta, FOOTPRINT_TAG).read_text())
        return
    steal = StealMeter()
    image = page()
    op_only = measure(lambda: image.rotate(90, expand=True), args.repeat)
    sandboxed = KernelSession().start()
    plain = KernelSession(isolation="off").start()
    other = KernelSession(**EXEC).start()
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
        ("namespaces", EXEC),
        ("namespaces, forked from the template", FORK),
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
            "metric": "kernel step + PNG level 6 (sandboxed, default start)",
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
            "metric": "jail cost on the step (namespaces, fresh interpreter, vs plain)",
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
    runtime_meta = {
        "repeat": args.repeat,
        "isolation": isolation,
        "steal during the runtime part (% of CPU time)": steal.percent(),
    }
    if args.part == "runtime":
        path = merge_part(rows, runtime_meta, "runtime")
    else:
        path = write_report(
            "kernel",
            "Kernel runtime benchmark",
            rows + footprint,
            {"image": "1000x1000 RGB page", **runtime_meta, **meta},
        )
    print(path.read_text())


if __name__ == "__main__":
    main()
