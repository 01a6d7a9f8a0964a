"""The peer benchmark in its quick mode: every executor checked, every output written.

No timing is asserted (speed belongs to the benchmark's own report); what is asserted is
that each row exists, each executor computed the right pixels, and the files decode.
"""

from __future__ import annotations

import argparse
import json

import pytest
from PIL import Image

from langchain_codevision.benchmarks.cli import add_bench_parser
from langchain_codevision.benchmarks.peers import (
    EXECUTORS,
    InProcessFloor,
    StepOutput,
    codeact_eval,
    make_executor,
)
from langchain_codevision.benchmarks.suite import check
from langchain_codevision.benchmarks.workloads import WORKLOADS, Step, page

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp("bench")
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "--quick", "--out", str(out)])
    code = args.func(args)
    return code, out, json.loads((out / "peers.json").read_text())


def test_every_executor_has_a_checked_row(quick_run) -> None:
    code, _, result = quick_run
    rows = {row["name"]: row for row in result["peers"]}
    assert list(rows) == list(EXECUTORS) and code == 0
    for name, row in rows.items():
        assert row["missing"] == "" and row["correct"] is True, name
        assert set(row["workloads"]) == {w.name for w in WORKLOADS}
        assert all(entry["correct"] and entry["n"] == 1 for entry in row["workloads"].values())
        if row["returns_images"]:
            assert row["image_bytes_per_step"] > 0
        else:
            assert row["text_bytes_per_step"] > 0  # an explicit 'no images' row
    assert rows["floor"]["workloads"]["rotate"]["x_floor"] == 1.0
    assert rows["codevision_jailed"]["isolation"].startswith(("bwrap", "namespaces"))
    assert {n for n, r in rows.items() if r["returns_images"]} == {
        "floor",
        "codevision_jailed",
        "codevision_plain",
        "jupyter_raw",
    }


def test_starts_memory_and_concurrency_are_reported(quick_run) -> None:
    _, _, result = quick_run
    modes = {row["mode"]: row for row in result["starts"]}
    assert {"exec", "fork", "plain", "raw jupyter_client", "warm pool acquire"} <= set(modes)
    fork = modes["fork"]
    assert fork["median_ms"] is not None or fork["note"].startswith("not available")
    assert all(row["pss_mib_per_kernel"] > 0 for row in result["memory"])
    for row in result["concurrency"]:
        assert row["completed"] == row["episodes"] and row["leaked"] == {}
        assert row["peak_alive"] <= row["concurrency"]


def test_markdown_and_plot_are_written(quick_run) -> None:
    _, out, result = quick_run
    text = (out / "peers.md").read_text()
    for row in result["peers"]:
        assert f"| {row['title']} |" in text
    assert "no (text only)" in text and "## Kernel start" in text
    with Image.open(out / "peers.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 400


def test_a_wrong_answer_is_caught_by_the_check() -> None:
    class WrongWay(InProcessFloor):
        def step(self, step: Step) -> StepOutput:
            return super().step(Step(step.code.replace("rotate(90", "rotate(270"), step.chained))

    image = page(200)
    assert check(make_executor("floor"), WORKLOADS[0], image)[0] is True
    assert check(WrongWay(), WORKLOADS[0], image)[0] is False
    assert check(WrongWay(), WORKLOADS[1], image)[0] is True  # no rotation in it


def test_codeact_node_keeps_state_and_reports_errors() -> None:
    namespace: dict = {}
    assert codeact_eval("x = 41\nprint('set')", namespace) == "set\n"
    assert codeact_eval("print(x + 1)", namespace) == "42\n"
    assert codeact_eval("1 / 0", namespace).startswith("Error: ZeroDivisionError")


def test_unknown_executor_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("nope")
