"""PNG plots of an evaluation (matplotlib, Agg backend; needs the ``eval`` extra).

* ``accuracy_by_transform.png``: ours per arm in the paper's columns, the paper's rows beside;
* ``tool_use.png``: calls per item and the ops used;
* ``turns.png``: the turns histogram per arm;
* ``latency.png``: seconds per item per arm.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_codevision.eval.datasets import PAPER_COLUMNS

__all__ = ["write_plots"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - the eval extra carries it
        hint = "plots need matplotlib: pip install 'langchain-codevision[eval]'"
        raise ImportError(hint) from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _accuracy_plot(plt: Any, summary: dict[str, Any], path: Path) -> None:
    from langchain_codevision.eval.report import COLUMN_TITLES, PAPER_ROWS

    arms = summary["arms"]
    columns = [c for c in PAPER_COLUMNS if any(c in a["by_transform"] for a in arms.values())]
    others = sorted({t for a in arms.values() for t in a["by_transform"]} - set(columns))
    columns += others
    series = {
        f"ours: {arm}": [100 * e["by_transform"].get(c, {}).get("accuracy", 0.0) for c in columns]
        for arm, e in arms.items()
    }
    if not others:
        for name, values in PAPER_ROWS.items():
            series[name] = [values[PAPER_COLUMNS.index(c)] for c in columns]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(columns)), 4))
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(columns))]
        ax.bar(xs, values, width, label=name, alpha=0.6 if "paper" in name else 1.0)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([COLUMN_TITLES.get(c, c) for c in columns])
    ax.set_ylabel("accuracy %")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy per transform")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _tool_plot(plt: Any, summary: dict[str, Any], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for arm, entry in summary["arms"].items():
        hist = entry["tool_use"]["calls_histogram"]
        left.bar([int(k) for k in hist], list(hist.values()), alpha=0.6, label=arm)
    left.set_xlabel("tool calls per item")
    left.set_ylabel("items")
    left.legend()
    ops = summary["arms"].get("tool", {}).get("tool_use", {}).get("ops_used", {})
    names = list(ops) or ["(none)"]
    right.barh(names, [ops.get(n, 0) for n in names])
    right.set_xlabel("uses")
    right.set_title("ops used (tool arm)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _turns_plot(plt: Any, summary: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, entry in summary["arms"].items():
        hist = entry["tool_use"]["turns_histogram"]
        ax.bar([int(k) for k in hist], list(hist.values()), alpha=0.6, label=arm)
    ax.set_xlabel("assistant turns")
    ax.set_ylabel("items")
    ax.set_title("Turns per episode")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _latency_plot(plt: Any, rows: Sequence[dict[str, Any]], path: Path) -> None:
    by_arm: dict[str, list[float]] = {}
    for row in rows:
        by_arm.setdefault(row["arm"], []).append(float(row.get("seconds") or 0.0))
    fig, ax = plt.subplots(figsize=(6, 4))
    names = sorted(by_arm) or ["(none)"]
    ax.boxplot([by_arm.get(n, [0.0]) for n in names])
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels(names)
    ax.set_ylabel("seconds per item")
    ax.set_title("Latency")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plots(
    summary: dict[str, Any], rows: Sequence[dict[str, Any]], out_dir: str | Path
) -> list[Path]:
    """Write the four plots under ``out_dir/plots``; return their paths."""
    plt = _pyplot()
    folder = Path(out_dir) / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        folder / n
        for n in ("accuracy_by_transform.png", "tool_use.png", "turns.png", "latency.png")
    ]
    _accuracy_plot(plt, summary, paths[0])
    _tool_plot(plt, summary, paths[1])
    _turns_plot(plt, summary, paths[2])
    _latency_plot(plt, rows, paths[3])
    return paths
