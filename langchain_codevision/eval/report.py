"""Summaries and reports of an evaluation: ``summary.json``, ``report.md``, plots, viewer.

* :func:`summarise`: accuracy per arm, per transform, per question type and per dataset;
  tool-use statistics (calls per item, ops used, error and recovery rates, emergent ops);
  turns and latency; the paper's six-column average when the run has those columns.
* :data:`PAPER_ROWS`: the paper's published numbers, printed beside ours.
* :func:`write_outputs`: everything into one folder.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from langchain_codevision.eval.datasets import PAPER_COLUMNS

__all__ = [
    "COLUMN_TITLES",
    "PAPER_DIAGNOSTIC",
    "PAPER_MVTOOLBENCH",
    "PAPER_ROWS",
    "render_markdown",
    "summarise",
    "write_outputs",
]

COLUMN_TITLES = dict(
    zip(PAPER_COLUMNS, ("Source", "Rot90", "Rot180", "Rot270", "Hori", "Verti"), strict=True)
)
"""The paper's column titles."""
PAPER_ROWS: dict[str, list[float]] = {
    "Qwen2.5-VL-7B (paper)": [86.4, 70.2, 58.0, 71.7, 32.4, 17.0],
    "CodeVision-7B (paper)": [87.2, 72.3, 73.1, 75.2, 65.1, 67.4],
}
"""Transformed OCRBench, the paper's columns (Source, Rot90/180/270, Hori, Verti), in %."""
PAPER_MVTOOLBENCH: dict[str, float] = {
    "GPT-4o": 8.5,
    "Gemini 2.5 Pro": 32.6,
    "Qwen2.5-VL-7B": 18.1,
    "CodeVision-7B": 60.1,
}
"""MVToolBench accuracy in % as published."""
PAPER_DIAGNOSTIC: dict[str, float] = {
    "humans": 100.0,
    "GPT-5": 50.5,
    "GPT-4o": 43.5,
    "Gemini 2.5 Pro": 33.5,
    "chance": 20.0,
}
"""Orientation diagnostic (five-way, 200 images) accuracy in % as published."""


def _accuracy(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    correct = sum(bool(r.get("correct")) for r in rows)
    failed = sum(r.get("status") == "failed" for r in rows)
    return {
        "n": len(rows),
        "correct": correct,
        "failed": failed,
        "accuracy": correct / len(rows) if rows else 0.0,
    }


def _by(rows: Iterable[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row.get(key) or ""), []).append(row)
    return {name: _accuracy(group) for name, group in sorted(groups.items())}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))] if ordered else 0.0


def _tool_use(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r.get("status") == "ok"]
    tools = [r.get("tool") or {} for r in ok]
    calls = [t.get("calls", 0) for t in tools]
    steps = sum(calls)
    errors = sum(t.get("errors", 0) for t in tools)
    with_error = [t for t in tools if t.get("had_error")]
    ops = Counter(op for t in tools for op in t.get("ops_used", []))
    emergent = Counter(op for t in tools for op in t.get("emergent_ops", []))
    seconds = [float(r.get("seconds") or 0.0) for r in rows]
    return {
        "calls_per_item": steps / len(ok) if ok else 0.0,
        "items_using_tool": sum(c > 0 for c in calls),
        "error_rate": errors / steps if steps else 0.0,
        "recovery_rate": (
            sum(bool(t.get("recovered")) for t in with_error) / len(with_error)
            if with_error
            else None
        ),
        "ops_used": dict(ops.most_common()),
        "emergent_ops": dict(emergent.most_common()),
        "calls_histogram": dict(sorted(Counter(calls).items())),
        "turns_histogram": dict(sorted(Counter(int(r.get("turns") or 0) for r in ok).items())),
        "stop_reasons": dict(Counter(str(r.get("stop_reason")) for r in ok)),
        "latency_s": {
            "mean": statistics.fmean(seconds) if seconds else 0.0,
            "p50": _percentile(seconds, 0.5),
            "p90": _percentile(seconds, 0.9),
        },
    }


def summarise(rows: Sequence[dict[str, Any]], model_name: str = "") -> dict[str, Any]:
    """The summary of result rows (what ``summary.json`` holds)."""
    arms: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        arms.setdefault(row["arm"], []).append(row)
    summary: dict[str, Any] = {"model": model_name, "n_rows": len(rows), "arms": {}}
    for arm, arm_rows in arms.items():
        entry = _accuracy(arm_rows)
        entry["by_transform"] = _by(arm_rows, "transform")
        entry["by_qtype"] = _by(arm_rows, "qtype")
        entry["by_dataset"] = _by(arm_rows, "dataset")
        entry["by_rule"] = dict(Counter(str(r.get("rule")) for r in arm_rows))
        entry["tool_use"] = _tool_use(arm_rows)
        present = [c for c in PAPER_COLUMNS if c in entry["by_transform"]]
        if len(present) == len(PAPER_COLUMNS):
            columns = [100 * entry["by_transform"][c]["accuracy"] for c in PAPER_COLUMNS]
            entry["paper_columns"] = columns
            entry["paper_average"] = statistics.fmean(columns)
        summary["arms"][arm] = entry
    if {"tool", "no_tool"} <= set(summary["arms"]):
        gain = summary["arms"]["tool"]["accuracy"] - summary["arms"]["no_tool"]["accuracy"]
        summary["tool_gain"] = gain
    return summary


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _transform_table(summary: dict[str, Any]) -> list[str]:
    columns = [
        c
        for c in PAPER_COLUMNS
        if any(c in arm["by_transform"] for arm in summary["arms"].values())
    ]
    if not columns:
        return []
    titles = [COLUMN_TITLES[c] for c in columns]
    lines = ["| run | " + " | ".join(titles) + " | Avg |", "|---" * (len(columns) + 2) + "|"]
    for arm, entry in summary["arms"].items():
        values = [entry["by_transform"].get(c, {}).get("accuracy") for c in columns]
        known = [v for v in values if v is not None]
        avg = sum(known) / len(known) if known else None
        cells = " | ".join(_pct(v) for v in values)
        lines.append(f"| ours: {summary.get('model') or 'model'}, {arm} | {cells} | {_pct(avg)} |")
    for name, published in PAPER_ROWS.items():
        chosen = [published[PAPER_COLUMNS.index(c)] for c in columns]
        avg = sum(published) / len(published)
        lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in chosen) + f" | {avg:.1f} |")
    return lines


def render_markdown(summary: dict[str, Any], plots: Sequence[str] = ()) -> str:
    """The report as markdown (tables, then the plots by relative path)."""
    lines = [f"# Evaluation: {summary.get('model') or 'model'}", ""]
    lines += ["| arm | items | correct | failed | accuracy % |", "|---|---|---|---|---|"]
    for arm, entry in summary["arms"].items():
        lines.append(
            f"| {arm} | {entry['n']} | {entry['correct']} | {entry['failed']} | "
            f"{_pct(entry['accuracy'])} |"
        )
    if "tool_gain" in summary:
        lines += ["", f"Tool gain: {100 * summary['tool_gain']:+.1f} points."]
    table = _transform_table(summary)
    if table:
        lines += ["", "## Accuracy per transform (%), the paper's columns", "", *table]
        lines += ["", "Paper rows: transformed OCRBench as published (arXiv 2512.03746)."]
    lines += [
        "",
        "## Accuracy per question type (%)",
        "",
        "| arm | type | n | accuracy |",
        "|---|---|---|---|",
    ]
    for arm, entry in summary["arms"].items():
        for qtype, acc in entry["by_qtype"].items():
            lines.append(f"| {arm} | {qtype or '—'} | {acc['n']} | {_pct(acc['accuracy'])} |")
    lines += [
        "",
        "## Tool use",
        "",
        "| arm | calls/item | error rate | recovery rate | "
        "ops used | emergent ops | latency p50 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, entry in summary["arms"].items():
        use = entry["tool_use"]
        ops = ", ".join(f"{k} {v}" for k, v in use["ops_used"].items()) or "—"
        emergent = ", ".join(f"{k} {v}" for k, v in use["emergent_ops"].items()) or "—"
        lines.append(
            f"| {arm} | {use['calls_per_item']:.2f} | {_pct(use['error_rate'])} | "
            f"{_pct(use['recovery_rate'])} | {ops} | {emergent} | {use['latency_s']['p50']:.2f} |"
        )
    lines += [
        "",
        "## Published numbers for comparison",
        "",
        "MVToolBench (%): " + ", ".join(f"{k} {v}" for k, v in PAPER_MVTOOLBENCH.items()),
        "",
        "Orientation diagnostic, 5-way (%): "
        + ", ".join(f"{k} {v}" for k, v in PAPER_DIAGNOSTIC.items()),
    ]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def write_outputs(
    rows: Sequence[dict[str, Any]], out_dir: str | Path, model_name: str = ""
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write ``summary.json``, the PNG plots, ``report.md`` and ``viewer.html``.

    Returns:
        ``(summary, files)``: files by name (``"summary"``, ``"report"``, ``"viewer"``,
        ``"plot:<name>"``).
    """
    from langchain_codevision.eval.plots import write_plots
    from langchain_codevision.eval.viewer import write_viewer

    out = Path(out_dir)
    summary = summarise(rows, model_name)
    files: dict[str, Path] = {"summary": out / "summary.json"}
    files["summary"].write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    plots = write_plots(summary, rows, out)
    files.update({f"plot:{p.stem}": p for p in plots})
    files["report"] = out / "report.md"
    relative = [str(p.relative_to(out)) for p in plots]
    files["report"].write_text(render_markdown(summary, relative), encoding="utf-8")
    files["viewer"] = write_viewer(rows, out / "viewer.html", base_dir=out, summary=summary)
    return summary, files
