"""Write a benchmark result as JSON, a markdown report and a plot.

:func:`write_report` writes ``<name>.json``, ``<name>.md`` and ``<name>.png`` into a folder;
:func:`markdown` alone renders the tables (also used for ``docs/benchmarks.md``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .workloads import WORKLOADS

__all__ = ["COLUMNS", "docs_page", "markdown", "peer_table", "plot", "write_report"]

NOTE = (
    "One run on one shared machine: absolute times are noisy; the ratios against the "
    "in-process floor, measured in the same run and interleaved with every executor, are "
    "what to compare."
)


COLUMNS = """\
How to read the tables:

- **executor**: what runs the model's code. *in-process exec* is the floor: `exec` in the
  host process with a fresh namespace per call and the result PNG-encoded for the model,
  as the CodeVision release does it. *codevision kernel, jailed* is this package's step
  (`KernelSession.execute` in a jailed kernel, the result encoded as the graph encodes it
  for the model: fitted into the default profile's pixel budget, then PNG); *plain* is the
  same kernel with `isolation="off"`. The *CodeAct-style exec node* is a minimal `exec` in
  one persistent dict, stdout captured: the pattern langgraph-codeact uses.
- **images to model**: whether an image the code makes reaches the model. The text-only
  executors compute the same pixels (checked) but the model only sees printed text.
- **isolation**: what stands between the code and the host (the JSON keeps the full list
  of jail layers).
- **correct**: every step's output equals the expected pixels, computed in-process, for
  every workload; checked before anything is timed.
- **rotate**, **crop + contrast**: median time of one step on the page (code run, output on
  the host, encoded for the model where the executor sends images), and in brackets that
  time over the floor's, both measured in the same run, interleaved.
- **5-step episode**: a new episode on the page (image handed over) and five chained steps
  (rotate, crop, contrast, sharpen, grey), each one's output the next one's input.
- **sent to model per image step**: base64 bytes of the image block of the rotate step;
  for text-only executors, the bytes of the text the model gets instead.
- **Kernel start**: a kernel's cold start as a fresh interpreter (`exec`), forked from the
  host's preloaded kernel template (`fork`, where `KernelSession(start="fork")` exists),
  without a jail (`plain`), a raw jupyter_client kernel, and a hand-out from a warm pool.
- **PSS**: proportional set size of a kernel's whole process tree (shared pages divided
  among the processes sharing them), with one and with several kernels alive; forked
  kernels share the template's pages, whose own PSS is listed once.
- **Episodes through the graph**: `graph.abatch` over a scripted model (two real tool
  calls per episode, then an answer) at each concurrency, on a pool bounded to that many
  kernels; *waits* counts acquires that found the pool at its bound (back-pressure);
  *leaked* compares this process's kernel processes, run-root folders, `/dev/shm`
  entries and cgroups before and after.
"""


def docs_page(result: dict[str, Any]) -> str:
    """The benchmark page for the docs: how to read it, then the tables."""
    body = markdown(result, title="Benchmarks: code executors compared")
    head, _, rest = body.partition("\n\n")
    how = "Run it with `codevision bench` (or `python bench/peers.py`)."
    return f"{head}\n\n{how}\n\n{COLUMNS}\n{rest}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _cell(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("median_ms") is None:
        return "—"
    ratio = entry.get("x_floor")
    shown = f"{entry['median_ms']:.1f} ms"
    return f"{shown} ({ratio:.2f}x)" if ratio is not None else shown


def _isolation(text: str) -> str:
    """A jail's layer list shortened for a table cell (the JSON keeps it whole)."""
    parts = text.split("+")
    if len(parts) < 3:
        return text
    return f"jail: {parts[0]} + {len(parts) - 1} layers"


def _bytes(row: dict[str, Any]) -> str:
    if row.get("missing"):
        return "—"
    if row.get("returns_images"):
        return f"{row.get('image_bytes_per_step', 0):,} B image"
    return f"no image ({row.get('text_bytes_per_step', 0):,} B text)"


def peer_table(rows: list[dict[str, Any]]) -> list[str]:
    """The executors table (one row per executor)."""
    head = ["executor", "images to model", "isolation", "correct"]
    head += [w.title for w in WORKLOADS] + ["sent to model per image step"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if row.get("missing"):
            correct = f"not run ({row['missing']})"
        else:
            correct = "yes" if row.get("correct") else "NO"
        cells = [
            row["title"],
            "yes" if row.get("returns_images") else "no (text only)",
            _isolation(row.get("isolation", "")),
            correct,
            *(_cell(row.get("workloads", {}).get(w.name)) for w in WORKLOADS),
            _bytes(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict[str, Any], title: str = "Code executors compared") -> str:
    """The whole report as markdown."""
    meta = result.get("meta", {})
    lines = [f"# {title}", "", NOTE, ""]
    lines += [
        f"- {key}: {f'{value:.1f}' if isinstance(value, float) else value}"
        for key, value in meta.items()
    ]
    lines += ["", "## Step time (median; x the in-process floor)", ""]
    lines += peer_table(result.get("peers", []))
    lines += ["", "## Kernel start", "", "| start | median ms | note |", "|---|---|---|"]
    for row in result.get("starts", []):
        lines.append(f"| {row['mode']} | {_ms(row.get('median_ms'))} | {row.get('note', '')} |")
    lines += ["", "## Memory per kernel (PSS)", ""]
    lines += [
        "| start | kernels alive | PSS MiB / kernel | template PSS MiB |",
        "|---|---|---|---|",
    ]
    for row in result.get("memory", []):
        template = row.get("template_pss_mib")
        lines.append(
            f"| {row['mode']} | {row['alive']} | {row['pss_mib_per_kernel']:.1f} | "
            f"{'—' if template is None else f'{template:.1f}'} |"
        )
    lines += ["", "## Episodes through the graph (scripted model, 2 tool calls each)", ""]
    lines += [
        "| recycle | concurrency | episodes | completed | episodes/s | peak kernels | waits "
        "| leaked |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result.get("concurrency", []):
        lines.append(
            f"| {row['recycle']} | {row['concurrency']} | {row['episodes']} | "
            f"{row['completed']} | {row['episodes_per_s']:.2f} | {row['peak_alive']} | "
            f"{row['waits']} | {row['leaked'] or 'nothing'} |"
        )
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    """Step time x floor per workload and executor, and episodes/s per concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result.get("peers", []) if r.get("workloads")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / max(len(rows), 1)
    for k, row in enumerate(rows):
        ratios = [(row["workloads"][w.name].get("x_floor") or 0.0) for w in WORKLOADS]
        xs = [i + k * width for i in range(len(WORKLOADS))]
        hatch = "" if row.get("returns_images") else "//"
        left.bar(xs, ratios, width, label=row["title"], hatch=hatch)
    left.set_xticks([i + 0.4 - width / 2 for i in range(len(WORKLOADS))])
    left.set_xticklabels([w.title for w in WORKLOADS])
    left.axhline(1.0, color="black", linewidth=0.8)
    left.set_ylabel("median step time / in-process floor")
    left.set_title("step time (hatched: no image reaches the model)")
    left.legend(fontsize=7)
    for recycle in sorted({r["recycle"] for r in result.get("concurrency", [])}):
        picked = [r for r in result["concurrency"] if r["recycle"] == recycle]
        right.plot(
            [r["concurrency"] for r in picked],
            [r["episodes_per_s"] for r in picked],
            marker="o",
            label=f"recycle={recycle}",
        )
    right.set_xscale("log", base=2)
    right.set_xlabel("concurrent episodes")
    right.set_ylabel("episodes/s")
    right.set_title("graph episodes/s (scripted model)")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(result: dict[str, Any], folder: str | Path, name: str = "peers") -> dict:
    """Write ``name.json``, ``name.md`` and ``name.png`` under ``folder``; return the paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"{name}.{kind}" for kind in ("json", "md", "png")}
    paths["json"].write_text(json.dumps(result, indent=2, default=str) + "\n")
    paths["md"].write_text(markdown(result))
    plot(result, paths["png"])
    return paths
