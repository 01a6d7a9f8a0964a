"""Every scoring rule on exact cases; each verdict names the rule that decided it."""

from __future__ import annotations

import pytest

from langchain_codevision.eval.datasets import EvalItem
from langchain_codevision.eval.scoring import box_iou, read_box, read_choice, score_item
from langchain_codevision.rewards.judge import ChatJudge
from tests.scripted_model import ScriptedChatModel


def item(answers, scoring="answer", **kw) -> EvalItem:
    return EvalItem(id="x", question="q?", answers=list(answers), scoring=scoring, **kw)


@pytest.mark.parametrize(
    ("prediction", "truth", "correct", "rule"),
    [
        ("42", "42.0", True, "release:float"),
        ("LAKE DR", "LAKE DR", True, "release:exact"),
        ("the answer is (B)", "B", True, "release:choice"),
        ("the total is 12,345", "345", True, "release:number"),
        ("Lake Dr.", "lake dr", True, "normalised"),
        ("Paris", "London", False, "release:miss"),
        (None, "42", False, "no_answer"),
        ("   ", "42", False, "no_answer"),
    ],
)
def test_answer_rules(prediction, truth, correct, rule):
    score = score_item(item([truth]), prediction)
    assert (score.correct, score.rule) == (correct, rule)


def test_number_rule_records_what_it_read():
    assert score_item(item(["345"]), "12,345").extracted == "345"


def test_any_accepted_answer_counts():
    assert score_item(item(["9", "nine"]), "Nine").rule == "normalised"


def test_ocrbench_rule_is_substring_and_space_free_for_hme():
    assert score_item(item(["Lake Dr"], "ocrbench"), "The sign says LAKE DR.").rule == "ocrbench"
    miss = score_item(item(["Lake Drive"], "ocrbench"), "LAKE DR")
    assert (miss.correct, miss.rule) == (False, "ocrbench:miss")
    hme = item(["x^{2}+1"], "ocrbench", dataset="HME100k")
    assert score_item(hme, "x ^ { 2 } + 1").correct
    assert not score_item(hme, "X^{2}+1").correct  # case counts for HME100k


def test_multiple_choice_by_letter_and_by_text():
    choices = ["rotate_90", "rotate_180", "rotate_270", "flip_horizontal", "flip_vertical"]
    mc = item(["flip_horizontal"], "choice", choices=choices)
    assert score_item(mc, "D").rule == "choice:letter"
    assert score_item(mc, "(D) flip").correct
    assert score_item(mc, "It was flip_horizontal.").rule == "choice:text"
    wrong = score_item(mc, "E")
    assert (wrong.correct, wrong.rule, wrong.extracted) == (False, "choice:miss", "flip_vertical")
    assert not score_item(mc, "rotate_270").correct
    assert read_choice("rotate_270", choices) == ("rotate_270", "text")  # not rotate_90
    assert read_choice("no idea", choices) == (None, "none")


def test_bbox_iou_rule():
    loc = item(["box"], "bbox", bbox=[10, 10, 110, 110])
    hit = score_item(loc, "[20, 20, 110, 110]")
    assert hit.correct and hit.rule == "iou" and hit.iou == pytest.approx(0.81)
    miss = score_item(loc, "(60, 60, 160, 160)")
    assert not miss.correct and miss.rule == "iou:miss" and miss.iou < 0.5
    assert score_item(loc, "somewhere top left").rule == "iou:miss"
    assert read_box("box: 1, 2.5, 3, 4 px") == [1.0, 2.5, 3.0, 4.0]
    assert read_box("1, 2, 3") is None
    assert box_iou([0, 0, 10, 10], [10, 10, 0, 0]) == 1.0  # corner order does not matter
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0


def test_judge_decides_only_when_rules_fail_and_is_cached(tmp_path):
    model = ScriptedChatModel(replies=["1"])
    judge = ChatJudge(model, cache_dir=tmp_path / "cache")
    assert score_item(item(["Paris"]), "Paris", judge=judge).rule == "release:exact"
    assert judge.calls == 0
    first = score_item(item(["the capital of France"]), "Paris", judge=judge)
    assert (first.correct, first.rule) == (True, "judge")
    again = ChatJudge(ScriptedChatModel(replies=["0"]), cache_dir=tmp_path / "cache")
    assert score_item(item(["the capital of France"]), "Paris", judge=again).correct
    assert again.calls == 0  # answered from the disk cache
    refused = ChatJudge(ScriptedChatModel(replies=["0"]))
    assert score_item(item(["London"]), "Paris", judge=refused).rule == "judge:miss"
