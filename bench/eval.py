"""Benchmark the evaluation runner with the offline default policy.

Run: ``python bench/eval.py [--pages N]``. Writes ``bench/results/eval.{json,md}`` and the
evaluation's report, summary and plots under ``bench/results/eval_offline/``.

* accuracy table: a transformed set built here (N rendered pages x the paper's six
  columns, "which transform was applied", answer ``rotate_0`` for the source) and the
  five-way orientation diagnostic, tool arm vs no-tool arm in one run;
* throughput: items/s of the tool arm at concurrency 1, 2 and 4 over the same set, with a
  warm kernel pool of that size (pool start-up not counted), against the no-tool arm at
  concurrency 1 (one model call per item, no kernel) as the floor;
* worker processes: items/s of the tool arm in one process against two worker processes
  (``processes=2``), one episode at a time in each, from the first finished row to the
  last, so the workers' start-up is not counted; ``--rounds`` pairs run back to back, and
  the median pair's ratio is reported with every pair's.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import RESULTS, write_report
from langchain_codevision.data.sources import make_sample
from langchain_codevision.eval.datasets import (
    PAPER_COLUMNS,
    SOURCE,
    EvalItem,
    orientation_diagnostic,
    transformed_variants,
)
from langchain_codevision.eval.report import COLUMN_TITLES
from langchain_codevision.eval.runner import evaluate
from langchain_codevision.kernel import KernelPool
from langchain_codevision.models import OfflineOrientationModel

QUESTION = (
    "Which transform was applied to this page? Answer rotate_0 if none, else one of "
    "rotate_90, rotate_180, rotate_270 (counter-clockwise), flip_horizontal, flip_vertical."
)


def transformed_set(pages: int) -> list[EvalItem]:
    """``pages`` rendered documents in each of the paper's six columns."""
    base = [
        EvalItem(
            id=f"page{k}",
            question=QUESTION,
            answers=["rotate_0"],
            images=[make_sample("read_line", k).image],
            qtype="which_transform",
            dataset="rendered",
        )
        for k in range(pages)
    ]
    items = transformed_variants(base)
    for item in items:
        item.answers = ["rotate_0" if item.transform == SOURCE else item.transform]
    return items


def throughput(items: list[EvalItem], concurrency: int, arms: tuple[str, ...]) -> float:
    """Items/s of one fresh run (warm pool of ``concurrency`` kernels)."""
    out = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    try:
        with KernelPool(size=concurrency) as pool:
            pool.wait_ready(timeout=120)
            start = time.perf_counter()
            evaluate(
                items,
                OfflineOrientationModel(),
                out,
                arms=arms,
                concurrency=concurrency,
                pool=pool,
                progress=False,
                write_outputs=False,
            )
            return len(items) / (time.perf_counter() - start)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def steady_rate(items: list[EvalItem], processes: int, arms: tuple[str, ...]) -> float:
    """Items/s of one fresh run in ``processes`` worker processes, one episode at a time in
    each, while all of them run: from the last worker's first row to the first worker's
    last (so their start-up, and a worker finishing early, are not counted)."""
    from langchain_codevision.eval import runner

    worker_of = {item.id: k % processes for k, item in enumerate(items)}  # how they share
    finished: list[tuple[float, int]] = []
    write = runner._Appender.write

    def timed(self, row):  # every row is written here, by this process
        finished.append((time.perf_counter(), worker_of[row["id"]]))
        return write(self, row)

    out = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    runner._Appender.write = timed
    try:
        evaluate(
            items,
            OfflineOrientationModel(),
            out,
            arms=arms,
            concurrency=processes,
            processes=processes,
            progress=False,
            write_outputs=False,
        )
    finally:
        runner._Appender.write = write
        shutil.rmtree(out, ignore_errors=True)
    firsts = [min(t for t, w in finished if w == k) for k in range(processes)]
    lasts = [max(t for t, w in finished if w == k) for k in range(processes)]
    start, end = max(firsts), min(lasts)
    inside = [t for t, _ in finished if start < t <= end]
    if len(inside) < 2 * processes:
        raise RuntimeError("the workers barely ran side by side: pass more --process-pages")
    return len(inside) / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=4, help="pages per column")
    parser.add_argument(
        "--process-pages", type=int, default=12, help="pages per column, worker-process rows"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="paired rounds of the worker-process rows"
    )
    args = parser.parse_args()
    items = transformed_set(args.pages)
    rows = []

    out = Path(tempfile.mkdtemp(prefix="bench-eval-run-"))
    images = [make_sample("read_line", 100 + k).image for k in range(10)]
    everything = items + orientation_diagnostic(images, seed=0)
    run = evaluate(everything, OfflineOrientationModel(), out, concurrency=2, progress=False)
    for arm in ("tool", "no_tool"):
        table = [r for r in run.rows if r["arm"] == arm and r["dataset"] == "rendered"]
        for column in PAPER_COLUMNS:
            cell = [r for r in table if r["transform"] == column]
            value = 100 * sum(r["correct"] for r in cell) / len(cell)
            rows.append(
                {"metric": f"{arm}: {COLUMN_TITLES[column]} accuracy", "value": value, "unit": "%"}
            )
        mean = sum(
            100 * sum(r["correct"] for r in table if r["transform"] == c) / args.pages
            for c in PAPER_COLUMNS
        ) / len(PAPER_COLUMNS)
        rows.append({"metric": f"{arm}: average of six columns", "value": mean, "unit": "%"})
        diag = [r for r in run.rows if r["arm"] == arm and r["dataset"] == "orientation-diagnostic"]
        rows.append(
            {
                "metric": f"{arm}: orientation diagnostic (5-way, {len(diag)} images)",
                "value": 100 * sum(r["correct"] for r in diag) / len(diag),
                "unit": "%",
                "target": "chance 20",
            }
        )

    kept = RESULTS / "eval_offline"
    shutil.rmtree(kept, ignore_errors=True)
    (kept / "plots").mkdir(parents=True)
    for name in ("report.md", "summary.json", *(f"plots/{p.name}" for p in out.glob("plots/*"))):
        shutil.copy(out / name, kept / name)
    shutil.rmtree(out, ignore_errors=True)

    floor = throughput(items, 1, ("no_tool",))
    rows.append({"metric": "no-tool arm, concurrency 1 (floor)", "value": floor, "unit": "items/s"})
    single = None
    for concurrency in (1, 2, 4):
        rate = throughput(items, concurrency, ("tool",))
        single = single or rate
        rows.append(
            {"metric": f"tool arm, concurrency {concurrency}", "value": rate, "unit": "items/s"}
        )
        if concurrency > 1:
            rows.append(
                {
                    "metric": f"speed-up at concurrency {concurrency}",
                    "value": rate / single,
                    "unit": "x",
                }
            )
    many = transformed_set(args.process_pages)  # long enough for both workers to overlap
    # one process and two in alternation, each pair back to back (so it shares the
    # machine's mood); the median pair is reported, with every pair's ratio
    pairs = [
        (steady_rate(many, 1, ("tool",)), steady_rate(many, 2, ("tool",)))
        for _ in range(args.rounds)
    ]
    ratios = [pair / alone for alone, pair in pairs]
    alone, pair = pairs[sorted(range(len(pairs)), key=ratios.__getitem__)[len(pairs) // 2]]
    rounds = ", ".join(f"{ratio:.2f}" for ratio in ratios)
    rows += [
        {
            "metric": "tool arm, 1 process, 1 episode at a time (steady)",
            "value": alone,
            "unit": "items/s",
        },
        {
            "metric": "tool arm, 2 worker processes, 1 episode at a time each (steady)",
            "value": pair,
            "unit": "items/s",
        },
        {
            "metric": f"2 worker processes / 1 process (median of {len(pairs)} paired rounds)",
            "value": pair / alone,
            "unit": f"x (rounds: {rounds})",
            "target": ">= 1.7",
            "ok": pair / alone >= 1.7,
        },
    ]
    path = write_report(
        "eval",
        "Evaluation runner benchmark (offline default policy)",
        rows,
        {
            "items": len(items),
            "pages per column": args.pages,
            "cores": _cores(),
            "report": "bench/results/eval_offline/report.md",
        },
    )
    print(path.read_text())


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
