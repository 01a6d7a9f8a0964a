"""Summary, markdown report and plots from result rows; the PNGs decode."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from langchain_codevision.eval.datasets import PAPER_COLUMNS
from langchain_codevision.eval.report import PAPER_ROWS, render_markdown, summarise, write_outputs


def row(item: str, arm: str, transform: str, correct: bool, **kw) -> dict:
    calls = kw.pop("calls", 1 if arm == "tool" else 0)
    return {
        "key": f"{item}@{transform}|{arm}",
        "id": f"{item}@{transform}",
        "arm": arm,
        "transform": transform,
        "qtype": kw.pop("qtype", "ocr"),
        "dataset": "set",
        "question": "q",
        "answers": ["a"],
        "prediction": "a" if correct else "b",
        "correct": correct,
        "rule": "release:exact" if correct else "release:miss",
        "status": kw.pop("status", "ok"),
        "steps": [],
        "images": [],
        "turns": calls + 1,
        "seconds": kw.pop("seconds", 1.0),
        "tool": {
            "calls": calls,
            "errors": kw.pop("errors", 0),
            "had_error": kw.get("had_error", False),
            "recovered": kw.pop("recovered", False),
            "ops_used": kw.pop("ops", []),
            "emergent_ops": kw.pop("emergent", []),
            "expected": [],
        },
        **{k: v for k, v in kw.items() if k != "had_error"},
    }


@pytest.fixture
def rows() -> list[dict]:
    out = []
    for k in range(2):
        for t in PAPER_COLUMNS:
            out.append(
                row(
                    f"i{k}",
                    "tool",
                    t,
                    correct=(k == 0 or t == "source"),
                    ops=["rotate_270"] if t == "rotate_90" else [],
                    emergent=["contrast"] if t == "flip_vertical" else [],
                )
            )
            out.append(row(f"i{k}", "no_tool", t, correct=(t == "source"), seconds=0.5))
    out.append(
        row(
            "e",
            "tool",
            "rotate_180",
            False,
            calls=2,
            errors=1,
            had_error=True,
            recovered=True,
            qtype="hard",
        )
    )
    out.append(row("f", "no_tool", "rotate_180", False, status="failed", calls=0))
    return out


def test_summary_numbers(rows):
    summary = summarise(rows, "m")
    tool, base = summary["arms"]["tool"], summary["arms"]["no_tool"]
    assert (tool["n"], tool["correct"], base["correct"], base["failed"]) == (13, 7, 2, 1)
    assert tool["by_transform"]["source"]["accuracy"] == 1.0
    assert tool["by_transform"]["rotate_180"] == {
        "n": 3,
        "correct": 1,
        "failed": 0,
        "accuracy": pytest.approx(1 / 3),
    }
    assert tool["paper_columns"][0] == 100.0 and tool["paper_average"] == pytest.approx(
        (100 + 50 + 100 / 3 + 50 + 50 + 50) / 6
    )
    use = tool["tool_use"]
    assert use["calls_per_item"] == pytest.approx(14 / 13)
    assert use["error_rate"] == pytest.approx(1 / 14) and use["recovery_rate"] == 1.0
    assert use["ops_used"] == {"rotate_270": 2} and use["emergent_ops"] == {"contrast": 2}
    assert use["turns_histogram"] == {2: 12, 3: 1}
    assert base["tool_use"]["recovery_rate"] is None
    assert summary["tool_gain"] == pytest.approx(7 / 13 - 2 / 13)
    assert tool["by_qtype"]["hard"]["n"] == 1 and tool["by_rule"]["release:exact"] == 7


def test_markdown_has_our_rows_beside_the_papers(rows):
    text = render_markdown(summarise(rows, "offline"))
    header = "| run | Source | Rot90 | Rot180 | Rot270 | Hori | Verti | Avg |"
    assert header in text
    assert "| ours: offline, tool | 100.0 | 50.0 | 33.3 | 50.0 | 50.0 | 50.0 | 55.6 |" in text
    assert "| Qwen2.5-VL-7B (paper) | 86.4 | 70.2 | 58.0 | 71.7 | 32.4 | 17.0 | 55.9 |" in text
    assert (
        "CodeVision-7B (paper)" in text and "Gemini 2.5 Pro 32.6" in text and "GPT-5 50.5" in text
    )
    assert "Tool gain: +38.5 points." in text
    assert len(PAPER_ROWS["CodeVision-7B (paper)"]) == 6


def test_outputs_written_and_plots_decode(rows, tmp_path):
    _summary, files = write_outputs(rows, tmp_path, model_name="m")
    assert json.loads(files["summary"].read_text())["arms"]["tool"]["correct"] == 7
    plots = [p for name, p in files.items() if name.startswith("plot:")]
    assert {p.name for p in plots} == {
        "accuracy_by_transform.png",
        "tool_use.png",
        "turns.png",
        "latency.png",
    }
    for path in plots:
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG" and image.size[0] >= 500 and image.size[1] >= 300
            assert len(image.getcolors(1 << 20) or []) > 10  # something is drawn
    report = files["report"].read_text()
    assert "![accuracy_by_transform](plots/accuracy_by_transform.png)" in report
    assert files["viewer"].read_text().startswith("<!DOCTYPE html>")
