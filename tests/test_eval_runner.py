"""The runner with a scripted model (code runs in real kernels): both arms, resume, failures."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import threading
import time

import pytest
from langchain_core.messages import BaseMessage, SystemMessage

from langchain_codevision.data.sources import make_sample
from langchain_codevision.eval._episodes import ARMS, NO_TOOL_SYSTEM_PROMPT
from langchain_codevision.eval.cli import add_eval_parser, run_eval
from langchain_codevision.eval.datasets import EvalItem
from langchain_codevision.eval.runner import RESULTS_FILE, aevaluate, evaluate, read_results
from langchain_codevision.kernel import KernelPool
from tests.eval_policies import marking_model
from tests.scripted_model import ScriptedChatModel, text_call

SAMPLES = [make_sample("sign_text", k) for k in range(4)]
ITEMS = [
    EvalItem(
        id=f"sign{k}",
        question=s.question,
        answers=[s.answer],
        images=[s.image],
        transform="source" if k % 2 == 0 else "rotate_90",
        qtype="sign",
    )
    for k, s in enumerate(SAMPLES)
]
TRUTH = {item.question + item.id: item.truth for item in ITEMS}


def question_of(messages: list[BaseMessage]) -> tuple[str, str]:
    """(item id, question) from the user turn: each item's question names its id here."""
    text = messages[1].text
    item_id = text.rsplit("[", 1)[1].rstrip("]")
    return item_id, text


def policy(
    fail: set[str] = frozenset(), slow: set[str] = frozenset(), flaky: dict[str, int] | None = None
):
    """Tool arm: one real call printing the image size, then the right answer. No-tool arm:
    right only for even items. ``fail`` items raise, ``slow`` sleep, ``flaky`` fail N times."""
    lock = threading.Lock()

    def reply(messages: list[BaseMessage]) -> str:
        item_id, _ = question_of(messages)
        truth = next(i.truth for i in ITEMS if i.id == item_id)
        if item_id in fail:
            raise RuntimeError(f"model broke on {item_id}")
        if flaky is not None:
            with lock:
                if flaky.get(item_id, 0) > 0:
                    flaky[item_id] -= 1
                    raise ConnectionError("rate limited")
        if item_id in slow:
            time.sleep(3)
        no_tool = (
            isinstance(messages[0], SystemMessage) and messages[0].text == NO_TOOL_SYSTEM_PROMPT
        )
        if no_tool:
            good = int(item_id[-1]) % 2 == 0
            return f"<think>looking</think><answer>{truth if good else 'NO IDEA'}</answer>"
        if len(messages) <= 2:
            return text_call("print(image.size)\nresult = image", description="look")
        return f"<think>read it</think><answer>{truth}</answer>"

    return ScriptedChatModel(replies=[reply], dialect="text")


def items_named() -> list[EvalItem]:
    return [EvalItem(**{**i.__dict__, "question": f"{i.question} [{i.id}]"}) for i in ITEMS]


@pytest.fixture(scope="module")
def pool():
    with KernelPool(size=2) as kernels:
        yield kernels


def test_both_arms_expected_accuracy_and_rows(tmp_path, pool):
    run = evaluate(items_named(), policy(), tmp_path, concurrency=2, pool=pool, progress=False)
    arms = run.summary["arms"]
    assert (arms["tool"]["accuracy"], arms["no_tool"]["accuracy"]) == (1.0, 0.5)
    assert run.summary["tool_gain"] == 0.5 and run.ran == 8 and run.skipped == 0
    tool = {r["id"]: r for r in run.rows if r["arm"] == "tool"}
    row = tool["sign1"]
    assert row["rule"] == "release:exact" and row["status"] == "ok" and row["attempts"] == 1
    assert row["steps"][0]["ok"] and str(SAMPLES[1].image.size[0]) in row["steps"][0]["stdout"]
    assert row["tool"]["calls"] == 1 and row["turns"] == 2
    assert (tmp_path / row["images"][0]["path"]).exists()
    no_tool = {r["id"]: r for r in run.rows if r["arm"] == "no_tool"}
    assert no_tool["sign1"]["rule"] == "release:miss" and no_tool["sign1"]["steps"] == []
    assert arms["tool"]["by_transform"]["rotate_90"]["accuracy"] == 1.0
    assert arms["no_tool"]["by_transform"]["rotate_90"]["accuracy"] == 0.0
    assert arms["tool"]["tool_use"]["calls_per_item"] == 1.0
    assert len(read_results(tmp_path / RESULTS_FILE)) == 8


def test_failures_are_recorded_retries_back_off_and_the_run_goes_on(tmp_path, pool):
    flaky = {"sign2": 1}
    start = time.perf_counter()
    run = evaluate(
        items_named(),
        policy(fail={"sign3"}, flaky=flaky),
        tmp_path,
        arms=["tool"],
        concurrency=2,
        pool=pool,
        progress=False,
        retries=2,
        backoff_s=0.2,
    )
    rows = {r["id"]: r for r in run.rows}
    assert rows["sign3"]["status"] == "failed" and "model broke on sign3" in rows["sign3"]["error"]
    assert rows["sign3"]["attempts"] == 3 and rows["sign3"]["rule"] == "failed"
    assert rows["sign2"]["status"] == "ok" and rows["sign2"]["attempts"] == 2
    assert rows["sign0"]["correct"] and rows["sign1"]["correct"]
    assert run.summary["arms"]["tool"]["failed"] == 1
    assert time.perf_counter() - start >= 0.2 + 0.4  # sign3 waited 0.2 s, then 0.4 s
    again = evaluate(items_named(), policy(), tmp_path, arms=["tool"], pool=pool, progress=False)
    assert again.ran == 1 and again.skipped == 3  # only the failed item runs again
    assert again.summary["arms"]["tool"]["accuracy"] == 1.0


def test_time_limit_fails_the_item(tmp_path, pool):
    run = evaluate(
        items_named()[:2],
        policy(slow={"sign1"}),
        tmp_path,
        arms=["no_tool"],
        time_limit_s=1.0,
        retries=3,
        pool=pool,
        progress=False,
    )
    rows = {r["id"]: r for r in run.rows}
    assert rows["sign1"]["status"] == "failed" and "time limit" in rows["sign1"]["error"]
    assert rows["sign1"]["attempts"] == 1 and rows["sign0"]["status"] == "ok"


async def test_resume_after_an_interrupted_run(tmp_path, pool):
    model = policy(slow={"sign2"})
    task = asyncio.create_task(
        aevaluate(
            items_named(), model, tmp_path, arms=["tool"], concurrency=1, pool=pool, progress=False
        )
    )
    results = tmp_path / RESULTS_FILE
    for _ in range(300):
        if results.exists() and len(results.read_text().splitlines()) >= 2:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    before = read_results(results)
    assert set(before) == {"sign0|tool", "sign1|tool"}
    with results.open("a") as handle:  # a line the interruption tore
        handle.write('{"key": "sign2|tool", "status": "ok", "cor')
    counting = policy()
    run = await aevaluate(
        items_named(), counting, tmp_path, arms=["tool"], pool=pool, progress=False
    )
    assert run.skipped == 2 and run.ran == 2
    assert len(counting.received) == 4  # two items, two model turns each
    assert run.summary["arms"]["tool"]["accuracy"] == 1.0
    assert [r["id"] for r in run.rows] == ["sign0", "sign1", "sign2", "sign3"]
    lines = results.read_text().splitlines()
    assert all(json.loads(line) for line in lines[:2] + lines[3:])


def test_cli_hook_runs_the_offline_model(tmp_path, capsys):
    make_sample("read_line", 0).image.save(tmp_path / "a.png")  # an upright page
    item = {
        "id": "a",
        "image": "a.png",
        "question": "Which rotation was applied?",
        "answer": "rotate_0",
    }
    (tmp_path / "set.jsonl").write_text(json.dumps(item) + "\n")
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "eval",
            str(tmp_path / "set.jsonl"),
            "--model",
            "offline",
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
    assert args.func(args) == 0 and args.func is run_eval
    printed = capsys.readouterr().out
    assert "tool: 1/1 = 100.0%" in printed and "no_tool: 0/1 = 0.0%" in printed
    for name in ("results.jsonl", "summary.json", "report.md", "viewer.html"):
        assert (tmp_path / "out" / name).exists()


def test_cli_eval_in_two_worker_processes(tmp_path, capsys):
    lines = []
    for k, angle in enumerate((0, 90, 180)):
        make_sample("read_line", k).image.rotate(angle, expand=True).save(tmp_path / f"{k}.png")
        item = {"id": f"p{k}", "image": f"{k}.png", "question": "Which rotation was applied?"}
        lines.append(json.dumps({**item, "answer": f"rotate_{(360 - angle) % 360}"}))
    (tmp_path / "set.jsonl").write_text("\n".join(lines) + "\n")
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    scores = {}
    for processes in ("1", "2"):
        out = tmp_path / f"out{processes}"
        argv = ["eval", str(tmp_path / "set.jsonl"), "--model", "offline", "--out", str(out)]
        args = parser.parse_args([*argv, "--processes", processes, "--no-progress"])
        assert args.func(args) in (0, 1)
        printed = capsys.readouterr().out
        scores[processes] = [line for line in printed.splitlines() if line.startswith("tool")]
        rows = [json.loads(line) for line in (out / RESULTS_FILE).read_text().splitlines()]
        assert len(rows) == 6 and all(row["status"] == "ok" for row in rows)
    assert scores["2"] == scores["1"] and scores["1"][0].startswith("tool: ")


def test_progress_bar_shows_running_accuracy(tmp_path, capsys):
    evaluate(items_named(), policy(), tmp_path, arms=["no_tool"], progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err and "no_tool=50.0%" in err


def test_unknown_arm_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown arm"):
        evaluate(items_named(), policy(), tmp_path, arms=["tools"], progress=False)


async def test_the_sync_entry_point_inside_a_running_loop_says_what_to_use(tmp_path):
    with pytest.raises(RuntimeError, match=r"await aevaluate"):
        evaluate([], ScriptedChatModel(replies=[]), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_importing_the_package_is_cheap():
    import subprocess
    import sys

    code = (
        "import sys, langchain_codevision.eval as e; "
        "assert 'matplotlib' not in sys.modules and 'langchain_codevision.eval.runner' "
        "not in sys.modules; e.EvalItem; assert sorted(e.__all__) == e.__dir__()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_release_profile_in_both_arms(tmp_path, pool):
    model = policy()
    run = evaluate(
        items_named()[:2],
        model,
        tmp_path,
        profile="release",
        concurrency=2,
        pool=pool,
        progress=False,
    )
    arms = run.summary["arms"]
    assert (arms["tool"]["accuracy"], arms["no_tool"]["accuracy"]) == (1.0, 0.5)
    opening = next(m for m in model.received if m[0].text == NO_TOOL_SYSTEM_PROMPT)[1].content
    assert opening[0]["type"] == "image" and opening[1]["text"].startswith("\n")  # "<image>\nQ"
    tool_system = next(m for m in model.received if m[0].text != NO_TOOL_SYSTEM_PROMPT)[0].text
    assert "# Tools" in tool_system


def test_rate_limit_spaces_requests(tmp_path):
    start = time.perf_counter()
    run = evaluate(
        items_named(),
        policy(),
        tmp_path,
        arms=["no_tool"],
        concurrency=4,
        requests_per_second=5,
        progress=False,
        write_outputs=False,
    )
    assert run.ran == 4 and time.perf_counter() - start >= 0.6


def marks_of(folder) -> set[int]:
    return {int(path.name) for path in folder.iterdir()}


def outcome(rows) -> list[tuple]:
    return [(r["id"], r["arm"], r["status"], r["correct"], r["prediction"]) for r in rows]


def test_worker_processes_give_the_rows_of_one_process(tmp_path):
    truths = {item.id: item.truth for item in ITEMS}
    one_marks, two_marks = tmp_path / "marks1", tmp_path / "marks2"
    one_marks.mkdir(), two_marks.mkdir()
    one = evaluate(
        items_named(), marking_model(truths, str(one_marks)), tmp_path / "one", progress=False
    )
    factory = functools.partial(marking_model, truths, str(two_marks))  # built in each worker
    two = evaluate(
        items_named(), factory, tmp_path / "two", processes=2, concurrency=2, progress=False
    )
    assert outcome(two.rows) == outcome(one.rows)  # the same rows, in the items' order

    def scores(run) -> dict:
        return {arm: (e["correct"], e["n"], e["by_rule"]) for arm, e in run.summary["arms"].items()}

    assert scores(two) == scores(one) and two.ran == 8
    assert marks_of(one_marks) == {os.getpid()}
    workers = marks_of(two_marks)
    assert len(workers) == 2 and os.getpid() not in workers  # the episodes ran over there
    lines = (tmp_path / "two" / RESULTS_FILE).read_text().splitlines()
    assert len(lines) == 8 and all(json.loads(line)["status"] == "ok" for line in lines)
    assert two.pool_stats["started"] >= 2  # a kernel pool in each worker, counters summed
    again = evaluate(items_named(), factory, tmp_path / "two", processes=2, progress=False)
    assert (again.ran, again.skipped) == (0, 8)


def test_a_worker_that_dies_fails_only_its_unfinished_items(tmp_path):
    truths = {item.id: item.truth for item in ITEMS}
    marks = tmp_path / "marks"
    marks.mkdir()
    crashing = marking_model(truths, str(marks), crash=("sign2",))
    run = evaluate(items_named(), crashing, tmp_path / "out", processes=2, progress=False)
    status = {(r["id"], r["arm"]): r for r in run.rows}
    assert len(status) == 8
    failed = {key for key, row in status.items() if row["status"] == "failed"}
    assert ("sign2", "tool") in failed or ("sign2", "no_tool") in failed
    # Items go round-robin: the worker of sign0 and sign2 died; the other one finished.
    assert {key[0] for key in failed} <= {"sign0", "sign2"}
    assert all(status[(i, a)]["status"] == "ok" for i in ("sign1", "sign3") for a in ARMS)
    assert all("died (exit code 3)" in status[key]["error"] for key in failed)
    healed = evaluate(
        items_named(),
        marking_model(truths, str(marks)),
        tmp_path / "out",
        processes=2,
        progress=False,
    )
    assert healed.ran == len(failed) and all(r["status"] == "ok" for r in healed.rows)


def test_worker_processes_refuse_what_they_cannot_be_given(tmp_path, pool):
    with pytest.raises(ValueError, match=r"functools\.partial"):  # a closure: not picklable
        evaluate(items_named(), policy(), tmp_path, processes=2, progress=False)
    with pytest.raises(ValueError, match="pool"):
        evaluate(items_named(), policy(), tmp_path, processes=2, pool=pool, progress=False)
    with pytest.raises(ValueError, match="at least 1"):
        evaluate(items_named(), policy(), tmp_path, processes=0, progress=False)
    with pytest.raises(TypeError, match="chat model or a function"):
        evaluate(items_named(), "offline", tmp_path, progress=False)
