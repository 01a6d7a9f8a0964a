"""The optional chat-model judge: asked only when the rules fail, 0/1, cached on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_codevision.rewards import ChatJudge, parse_verdict, score_rollout, task_type
from tests.scripted_model import ScriptedChatModel
from tests.test_rewards import answer, verl


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("1", 1.0),
        ("0", 0.0),
        (" Verdict: 1.", 1.0),
        ("Yes", 1.0),
        ("incorrect", 0.0),
        ("The answer is 1", 1.0),
        ("1 or 0", None),
        ("maybe", None),
        ("10", None),
    ],
)
def test_parse_verdict(reply: str, score: float | None) -> None:
    assert parse_verdict(reply)[0] == score


def test_task_types() -> None:
    assert task_type("OCRBench_rot90") == "ocr" and task_type("MathVista") == "math"
    assert task_type("mvtoolbench") == task_type(None) == "general"


def test_judge_is_asked_only_when_the_rules_fail(tmp_path: Path) -> None:
    model = ScriptedChatModel(replies=["1"])
    judge = ChatJudge(model, cache_dir=tmp_path, name="scripted")
    text = verl([answer("Main Street")])
    ruled = score_rollout(verl([answer("42")]), ground_truth="42", transform=[], judge=judge)
    assert ruled.accuracy == 1.0 and judge.calls == 0 and not model.received
    judged = score_rollout(
        text,
        ground_truth="Main St.",
        transform=[],
        judge=judge,
        question="Which street?",
        task="ocrbench",
    )
    assert (
        judged.accuracy == 1.0 and judged.correct and "judge says 1" in judged.reasons["accuracy"]
    )
    prompt = model.received[0][0].content
    assert "Main Street" in prompt and "Main St." in prompt and "text recognition" in prompt
    assert score_rollout("", ground_truth="x", transform=[], judge=judge).accuracy == 0.0
    assert judge.calls == 1  # no answer: the judge is not asked
    # a new judge over the same folder answers from the cache without asking its model
    silent = ScriptedChatModel(replies=[])
    again = ChatJudge(silent, cache_dir=tmp_path, name="scripted")
    cached = score_rollout(
        text,
        ground_truth="Main St.",
        transform=[],
        judge=again,
        question="Which street?",
        task="ocrbench",
    )
    assert cached.accuracy == 1.0 and again.calls == 0 and "cached" in cached.reasons["accuracy"]
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_judge_failures_degrade_to_zero(tmp_path: Path) -> None:
    text = verl([answer("Main Street")])
    vague = ChatJudge(ScriptedChatModel(replies=["I am not sure"]), cache_dir=tmp_path)
    b = score_rollout(text, ground_truth="Main St.", transform=[], judge=vague)
    assert b.accuracy == 0.0 and "no 1/0 verdict" in b.reasons["accuracy"]
    broken = ChatJudge(ScriptedChatModel(replies=[]))  # its model raises
    b = score_rollout(text, ground_truth="Main St.", transform=[], judge=broken)
    assert b.accuracy == 0.0 and "raised RuntimeError" in b.reasons["accuracy"]


def test_judged_answers_gate_like_rule_answers() -> None:
    judge = ChatJudge(ScriptedChatModel(replies=["1"]))
    b = score_rollout(
        verl([answer("Main Street")]),
        ground_truth="Main St.",
        transform=["crop"],
        bbox=[0, 0, 5, 5],
        judge=judge,
    )
    assert b.correct and b.accuracy == 0.0  # the crop gate still applies
