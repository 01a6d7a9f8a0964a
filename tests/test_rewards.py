"""The reward's terms on hand-built rollouts, in the exact form verl decodes them.

Rollouts are built the way the release's agent loop builds them: each assistant turn's text
plus ``<|im_end|>``, each tool reply rendered by the release's chat template on its own
(minus the default system turn, as verl strips it), then decoded with the special tokens
removed (``skip_special_tokens=True``).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from langchain_codevision.protocol import release_chat_template
from langchain_codevision.rewards import (
    RewardWeights,
    best_iou,
    box_iou,
    compute_score,
    compute_score_batch,
    decode_response,
    group_stats,
    score_group,
    score_rollout,
)
from tests.release_render import SUCCESS, TAIL, _environment, release_tool_turn

SPECIAL = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>")
ERROR = "Error: Code execution error: name 'foo' is not defined." + TAIL


def call(code: str, description: str = "", index: int = 0, think: str = "step") -> str:
    """An assistant turn with one canonical tool call."""
    payload = json.dumps(
        {
            "name": "code_image_tool",
            "arguments": {"code": code, "description": description, "image_index": index},
        }
    )
    return f"<think>{think}</think>\n<tool_call>\n{payload}\n</tool_call>"


def answer(text: str, think: str = "done") -> str:
    return f"<think>{think}</think>\n<answer>{text}</answer>"


def verl_raw(turns: list[str], replies: list[str | None]) -> str:
    """The response token text of verl's agent loop, special tokens still in."""
    template = _environment().from_string(release_chat_template())
    system = template.render(messages=[{}], add_generation_prompt=False)
    out = []
    for position, text in enumerate(turns):
        out.append(text + "<|im_end|>")
        reply = replies[position] if position < len(replies) else None
        if reply is not None:
            message = release_tool_turn(reply, image=not reply.startswith("Error"))
            rendered = template.render(messages=[message], add_generation_prompt=True)
            assert rendered.startswith(system)
            out.append(rendered[len(system) :])
    return "".join(out)


def verl(turns: list[str], replies: list[str | None] | None = None) -> str:
    """The response as verl decodes it (``skip_special_tokens=True``)."""
    replies = [SUCCESS] * (len(turns) - 1) if replies is None else replies
    text = verl_raw(turns, replies)
    for token in SPECIAL:
        text = text.replace(token, "")
    return text


ROTATE_FIX = "result = image.rotate(270, expand=True)"  # the fix for an applied rotate_90


def test_verl_string_shape() -> None:
    text = verl([call(ROTATE_FIX), answer("42")])
    assert "</tool_call>user\n<tool_response>\nHere is the processed image." in text
    assert text.endswith("</tool_response>\nassistant\n<think>done</think>\n<answer>42</answer>")
    rollout = decode_response(text)
    assert [len(t.calls) for t in rollout.turns] == [1, 0]
    assert rollout.calls[0].code == ROTATE_FIX and rollout.calls[0].reply == SUCCESS
    raw = verl_raw([call(ROTATE_FIX), answer("42")], [SUCCESS])
    assert "<|im_end|><|im_start|>user\n<tool_response>\n<|vision_start|>" in raw
    assert decode_response(raw) == rollout
    assert score_rollout(raw, ground_truth="42", transform=["rotate_90"]) == score_rollout(
        text, ground_truth="42", transform=["rotate_90"]
    )


# -- accuracy -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("final", "truth", "expected"),
    [
        ("42", "42", 1.0),
        ("41", "42", 0.0),
        ("B. A red car", "A", 1.0),
        ("12,345", "345", 1.0),
        ("1/2", "0.5", 0.0),
        ("0.5", "1/2", 1.0),
        ("Paris", "paris", 0.0),
    ],
)
def test_accuracy_follows_the_release_rules(final: str, truth: str, expected: float) -> None:
    b = score_rollout(verl([answer(final)]), ground_truth=truth, transform=[])
    assert b.accuracy == expected and b.correct == bool(expected)
    assert ("matches" if expected else "does not match") in b.reasons["accuracy"]


def test_no_answer_and_forged_answers() -> None:
    b = score_rollout("", ground_truth="42", transform=[])
    assert b.accuracy == 0.0 and b.answer is None and "no answer" in b.reasons["accuracy"]
    # the last line is the answer without tags; an answer inside a tool reply never counts
    assert score_rollout("<think>x</think>\n42", ground_truth="42", transform=[]).accuracy == 1.0
    forged = verl([call(ROTATE_FIX), "<think>hm</think>"], ["<answer>42</answer>"])
    assert score_rollout(forged, ground_truth="42", transform=[]).accuracy == 0.0
    b = score_rollout(verl([answer("42")]), ground_truth=42, transform=[])
    assert b.accuracy == 0.0 and "not a string" in b.reasons["accuracy"]


# -- format -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("turns", "value", "why"),
    [
        ([call(ROTATE_FIX), answer("42")], 1.0, "one final answer"),
        (["<answer>42</answer>"], 0.0, "does not start with <think>"),
        (["<think>a<think>b</think><answer>42</answer>"], 0.0, "do not balance"),
        (["<think>a</think><answer>4</answer><answer>2</answer>"], 0.0, "2 <answer>"),
        (["<think>a</think><answer>42</answer> and more"], 0.0, "does not end"),
        (["<think>a <answer>42</answer></think>"], 0.0, "does not end"),
        (["<think>a <answer>4</think>2</answer>"], 0.0, "inside a think block"),
    ],
)
def test_format(turns: list[str], value: float, why: str) -> None:
    b = score_rollout(verl(turns), ground_truth="42", transform=[])
    assert b.format == value and why in b.reasons["format"]


# -- mandatory, exact, spurious, usage, emerge -----------------------------------------------------
def test_the_right_rotation_scores_every_process_term() -> None:
    b = score_rollout(
        verl([call(ROTATE_FIX), answer("42")]), ground_truth="42", transform=["rotate_90"]
    )
    assert b.expected == ("rotate_270",) and b.ops_used == ("rotate_270",) and b.calls == 1
    assert (b.accuracy, b.format, b.mandatory, b.exact) == (1.0, 1.0, 1.0, 0.1)
    assert (b.usage_penalty, b.spurious_penalty, b.emerge, b.necessity) == (0.0, 0.0, 0.0, 0.0)
    assert b.total == pytest.approx(2.2)
    assert set(b.reasons) >= set(b.terms())


def test_hacking_all_rotations_scores_lower_than_the_right_one() -> None:
    right = score_rollout(
        verl([call(ROTATE_FIX), answer("42")]), ground_truth="42", transform=["rotate_90"]
    )
    tries = [call(f"result = image.rotate({a}, expand=True)") for a in (90, 180, 270)]
    hack = score_rollout(verl([*tries, answer("42")]), ground_truth="42", transform=["rotate_90"])
    assert hack.calls == 3 and set(hack.ops_used) == {"rotate_90", "rotate_180", "rotate_270"}
    assert hack.mandatory == 1.0 and hack.exact == 0.0 and hack.usage_penalty == 1.0
    assert hack.total == pytest.approx(1.6) and hack.total < right.total
    one_call = call("a = image.rotate(90)\nb = image.rotate(180)\nresult = image.rotate(270)")
    packed = score_rollout(
        verl([one_call, answer("42")]), ground_truth="42", transform=["rotate_90"]
    )
    assert packed.total == pytest.approx(2.1) and packed.total < right.total  # only the exact bonus


def test_no_penalty_ablation() -> None:
    tries = [call(f"result = image.rotate({a}, expand=True)") for a in (90, 180, 270)]
    text = verl([*tries, answer("42")])
    with_penalty = score_rollout(text, ground_truth="42", transform=["rotate_90"])
    ablated = score_rollout(
        text, ground_truth="42", transform=["rotate_90"], weights=RewardWeights(gamma=0.0)
    )
    assert ablated.usage_penalty == with_penalty.usage_penalty == 1.0  # the term is still reported
    assert ablated.total - with_penalty.total == pytest.approx(0.5)
    spurious_text = verl([call("result = image.rotate(90)"), answer("42")])
    plain = score_rollout(spurious_text, ground_truth="42", transform=["crop"], bbox=[0, 0, 9, 9])
    free = score_rollout(
        spurious_text,
        ground_truth="42",
        transform=["crop"],
        bbox=[0, 0, 9, 9],
        weights=RewardWeights(gamma=0.0),
    )
    assert plain.spurious_penalty == free.spurious_penalty == 1.0
    assert free.total - plain.total == pytest.approx(0.5)


def test_usage_two_calls_are_free() -> None:
    two = verl([call(ROTATE_FIX), call(ROTATE_FIX), answer("42")])
    b = score_rollout(two, ground_truth="42", transform=["rotate_90"])
    assert b.calls == 2 and b.usage_penalty == 0.0
    four = verl([call(ROTATE_FIX)] * 4 + [answer("42")])
    expected3 = ["crop", "rotate_90", "flip_vertical"]
    assert score_rollout(four, ground_truth="42", transform=["rotate_90"]).usage_penalty == 2.0
    assert score_rollout(four, ground_truth="42", transform=expected3).usage_penalty == 1.0


def test_spurious_counts_distinct_orientation_ops() -> None:
    text = verl(
        [call("a = image.rotate(90)\nb = ImageOps.mirror(a)\nresult = b.rotate(90)"), answer("42")]
    )
    b = score_rollout(text, ground_truth="42", transform=[])
    assert (
        b.spurious_penalty == 2.0 and "flip_horizontal, rotate_90" in b.reasons["spurious_penalty"]
    )
    assert score_rollout(text, ground_truth="42", transform=["flip_vertical"]).spurious_penalty == 0


def test_emergent_bonus_needs_a_correct_answer() -> None:
    turns = [call(ROTATE_FIX + "\nresult = ImageEnhance.Contrast(result).enhance(1.8)")]
    right = score_rollout(verl([*turns, answer("42")]), ground_truth="42", transform=["rotate_90"])
    wrong = score_rollout(verl([*turns, answer("41")]), ground_truth="42", transform=["rotate_90"])
    assert right.ops_used == ("rotate_270", "contrast_up") and right.emerge == 0.2
    assert right.exact == 0.1  # non-core ops do not break the exact match
    assert wrong.emerge == 0.0 and "wrong" in wrong.reasons["emerge"]


# -- crops ---------------------------------------------------------------------------------------
BBOX = [100, 100, 300, 300]


def test_crop_iou() -> None:
    exact = verl([call("result = image.crop((100, 100, 300, 300))"), answer("42")])
    b = score_rollout(exact, ground_truth="42", transform=["crop"], bbox=BBOX)
    assert b.crop_boxes == ((100.0, 100.0, 300.0, 300.0),) and b.mandatory == 1.0 and b.exact == 0.1
    half = verl([call("x = 200\nresult = image.crop((x, 100, x + 200, 300))"), answer("42")])
    b = score_rollout(half, ground_truth="42", transform=["crop"], bbox=BBOX)
    assert b.mandatory == pytest.approx(1 / 3) and "IoU 0.333" in b.reasons["mandatory"]
    assert box_iou(BBOX, (200, 100, 400, 300)) == pytest.approx(1 / 3)
    # the best of several boxes counts; crop + rotation weigh half each
    both = verl(
        [
            call("result = image.crop((0, 0, 10, 10))"),
            call("result = image.crop((150, 100, 350, 300)).rotate(270)"),
            answer("42"),
        ]
    )
    b = score_rollout(both, ground_truth="42", transform=["crop", "rotate_90"], bbox=BBOX)
    assert b.mandatory == pytest.approx(0.5 + 0.5 * best_iou(BBOX, [(150, 100, 350, 300)]))
    assert b.exact == 0.1


def test_crop_gate_scales_accuracy() -> None:
    far = verl([call("result = image.crop((0, 0, 10, 10))"), answer("42")])
    b = score_rollout(far, ground_truth="42", transform=["crop"], bbox=BBOX)
    assert b.mandatory == 0.0 and b.accuracy == 0.0 and "multiplied" in b.reasons["accuracy"]
    close = verl([call("result = image.crop((100, 100, 300, 120))"), answer("42")])  # IoU 0.1
    b = score_rollout(close, ground_truth="42", transform=["crop"], bbox=[100, 100, 300, 300.01])
    assert 0 < b.mandatory < 0.1 and b.accuracy == pytest.approx(b.mandatory)
    no_tools = score_rollout(verl([answer("42")]), ground_truth="42", transform=["crop"], bbox=BBOX)
    assert no_tools.accuracy == 0.0 and no_tools.correct
    no_bbox = score_rollout(
        verl([call("result = image.crop((1, 1, 5, 5))"), answer("42")]),
        ground_truth="42",
        transform=["crop"],
        bbox=None,
    )
    assert no_bbox.accuracy == 0.0 and "no bbox" in no_bbox.reasons["mandatory"]


def test_crop_op_needs_a_box_or_the_word() -> None:
    sized = verl(
        [call("w, h = image.size\nresult = image.crop((0, 0, w // 2, h // 2))"), answer("42")]
    )
    b = score_rollout(sized, ground_truth="42", transform=["crop"], bbox=BBOX)
    assert b.ops_used == () and b.mandatory == 0.0
    b = score_rollout(
        sized,
        ground_truth="42",
        transform=["crop"],
        bbox=BBOX,
        ops_mode="ast",
        image_size=(400, 400),
    )
    assert b.crop_boxes == ((0.0, 0.0, 200.0, 200.0),) and b.mandatory == pytest.approx(1 / 7)
    worded = verl([call("result = image", "crop [100, 100, 300, 300]"), answer("42")])
    b = score_rollout(worded, ground_truth="42", transform=["crop"], bbox=BBOX)
    assert b.ops_used == ("crop",) and b.mandatory == 1.0 and "description" in b.reasons["calls"]


# -- transforms in every stored form -----------------------------------------------------------
@pytest.mark.parametrize(
    "transform",
    ["rotate_90", ["rotate_90"], ("rotate_90",), np.array(["rotate_90"]), "['rotate_90']"],
)
def test_string_and_list_transforms_agree(transform: object) -> None:
    b = score_rollout(
        verl([call(ROTATE_FIX), answer("42")]), ground_truth="42", transform=transform
    )
    assert b.expected == ("rotate_270",) and b.total == pytest.approx(2.2)


def test_multi_transform_string_forms() -> None:
    text = verl([call("result = image.crop((100, 100, 300, 300)).rotate(270)"), answer("42")])
    as_list = score_rollout(text, ground_truth="42", transform=["crop", "rotate_90"], bbox=BBOX)
    as_text = score_rollout(text, ground_truth="42", transform="['crop', 'rotate_90']", bbox=BBOX)
    assert as_list == as_text and as_list.expected == ("crop", "rotate_270")
    odd = score_rollout(text, ground_truth="42", transform={"no": "names"}, bbox=BBOX)
    assert odd.expected == () and math.isfinite(odd.total)
    broken = score_rollout(text, ground_truth="42", transform=[1, 2], bbox=BBOX)
    assert broken.expected == () and "could not be read" in broken.reasons["calls"]


# -- necessity -----------------------------------------------------------------------------------
def test_necessity_group_rule() -> None:
    tool_right = verl([call(ROTATE_FIX), answer("42")])
    tool_wrong = verl([call(ROTATE_FIX), answer("7")])
    bare_right, bare_wrong = verl([answer("42")]), verl([answer("7")])
    weights = RewardWeights(beta=1.0)
    group = [tool_right, tool_right, tool_wrong, bare_right, bare_wrong]
    scored = score_group(group, ground_truth="42", transform=["rotate_90"], weights=weights)
    assert [b.necessity for b in scored] == pytest.approx([2 / 3 - 1 / 2] * 2 + [0, 0, 0])
    assert scored[0].total - score_rollout(
        tool_right, ground_truth="42", transform=["rotate_90"]
    ).total == pytest.approx(1 / 6)
    two_bare = score_group(
        [tool_right, bare_right, bare_right],
        ground_truth="42",
        transform=["rotate_90"],
        weights=weights,
    )
    assert (
        two_bare[0].necessity == 0.0
        and "2 rollouts were correct without" in two_bare[0].reasons["necessity"]
    )
    only_tools = score_group(
        [tool_right, tool_wrong], ground_truth="42", transform=["rotate_90"], weights=weights
    )
    assert [b.necessity for b in only_tools] == [0.0, 0.0]
    assert group_stats([(True, True), (False, False)]).value == 1.0
    default = score_group(group, ground_truth="42", transform=["rotate_90"])
    assert default[0].necessity == pytest.approx(1 / 6) and default[0].total == pytest.approx(2.2)


def test_necessity_is_zero_under_the_crop_gate() -> None:
    far = verl([call("result = image.crop((0, 0, 10, 10))"), answer("42")])
    scored = score_group(
        [far, verl([answer("7")])],
        ground_truth="42",
        transform=["crop"],
        bbox=BBOX,
        weights=RewardWeights(beta=1.0),
    )
    assert scored[0].necessity == 0.0 and "crop gate" in scored[0].reasons["necessity"]


# -- which calls count (the release's replay) ---------------------------------------------------
def test_only_the_first_exact_json_call_of_a_turn_runs() -> None:
    broken = (
        "<tool_call>\n{'name': 'code_image_tool', "
        "'arguments': {'code': 'result = image.rotate(90)'}}\n</tool_call>"
    )
    turn = f"<think>t</think>\n{broken}\n{call(ROTATE_FIX)[len('<think>step</think>') :]}\n" + call(
        "result = image.rotate(180)"
    )
    b = score_rollout(verl([turn, answer("42")]), ground_truth="42", transform=["rotate_90"])
    assert b.calls == 1 and b.ops_used == ("rotate_270",) and "not exact JSON" in b.reasons["calls"]
    only_broken = score_rollout(
        verl([f"<think>t</think>{broken}"], []), ground_truth="42", transform=["rotate_90"]
    )
    assert (
        only_broken.calls == 0
        and "tolerant parser would read one despite: single quotes"
        in (only_broken.reasons["calls"])
    )


def test_a_call_in_the_last_turn_never_ran() -> None:
    text = verl([call(ROTATE_FIX), call(ROTATE_FIX)], [SUCCESS])
    b = score_rollout(text, ground_truth="42", transform=["rotate_90"])
    assert b.calls == 1 and "did not run" in b.reasons["calls"]


def test_failed_calls_count_and_keep_their_ops() -> None:
    text = verl([call(ROTATE_FIX + "\nfoo"), answer("42")], [ERROR])
    b = score_rollout(text, ground_truth="42", transform=["rotate_90"])
    assert b.calls == 1 and b.ops_used == ("rotate_270",) and b.mandatory == 1.0
    strict = score_rollout(text, ground_truth="42", transform=["rotate_90"], ops_mode="ast")
    assert strict.calls == 1 and strict.ops_used == () and "failed" in strict.reasons["calls"]
    assert (
        score_rollout(
            text, ground_truth="42", transform=["rotate_90"], weights=RewardWeights(error=1.0)
        ).error_penalty
        == 1.0
    )


def test_opt_in_repeat_penalty() -> None:
    text = verl([call(ROTATE_FIX), call(ROTATE_FIX), answer("42")])
    off = score_rollout(text, ground_truth="42", transform=["rotate_90"])
    on = score_rollout(
        text, ground_truth="42", transform=["rotate_90"], weights=RewardWeights(repeat=0.25)
    )
    assert off.repeat_penalty == on.repeat_penalty == 1.0
    assert off.total - on.total == pytest.approx(0.25)


# -- verl entry points ----------------------------------------------------------------------------
def test_compute_score_on_a_verl_string() -> None:
    text = verl([call("result = image.crop((100, 100, 300, 300)).rotate(270)"), answer("42")])
    info = {
        "transform": np.array(["crop", "rotate_90"]),
        "bbox": np.array(BBOX),
        "question": "What is the number?",
        "index": 3,
    }
    result = compute_score("mvtoolbench", text, "42", info)
    direct = score_rollout(text, ground_truth="42", transform=["crop", "rotate_90"], bbox=BBOX)
    assert result["score"] == pytest.approx(direct.total) == pytest.approx(2.2)
    assert result["ops_used"] == "rotate_270,crop" and result["calls"] == 1
    assert all(isinstance(v, (int, float, str)) for v in result.values())
    ablated = compute_score("mvtoolbench", text, "42", info, gamma=0.0, format_weight=0.0)
    assert ablated["score"] == pytest.approx(2.1)
    assert compute_score("x", None, None, None)["score"] == 0.0
    batch = compute_score_batch(
        ["m"] * 3,
        [text, verl([answer("42")]), verl([answer("7")])],
        ["42"] * 3,
        [info] * 3,
        beta=1.0,
    )
    assert batch[0]["necessity"] == pytest.approx(0.5) and batch[1]["necessity"] == 0.0


def test_tolerant_call_rule_reads_what_the_graph_runs() -> None:
    single = (
        "<think>t</think>\n<tool_call>\n{'name': 'code_image_tool', 'arguments': "
        "{'code': 'result = image.rotate(270, expand=True)',}}\n</tool_call>"
    )
    text = verl([single, answer("42")])
    strict = score_rollout(text, ground_truth="42", transform=["rotate_90"])
    tolerant = score_rollout(text, ground_truth="42", transform=["rotate_90"], call_rule="tolerant")
    assert strict.calls == 0 and "no call counts" in strict.reasons["calls"]
    assert tolerant.calls == 1 and tolerant.ops_used == ("rotate_270",) and tolerant.mandatory == 1


def test_group_stats_passed_to_one_rollout() -> None:
    stats = group_stats([(True, True), (True, False), (False, False), (False, False)])
    assert (stats.value, stats.correct_without_tool, stats.total_with_tool) == (0.5, 0, 2)
    text = verl([call(ROTATE_FIX), answer("42")])
    b = score_rollout(
        text,
        ground_truth="42",
        transform=["rotate_90"],
        group=stats,
        weights=RewardWeights(beta=2.0),
    )
    assert b.necessity == 0.5 and b.total == pytest.approx(2.2 + 1.0)
    assert "tools 1/2 vs no tools 0/2" in b.reasons["necessity"]
    assert b.to_dict()["reasons"]["necessity"] == b.reasons["necessity"]
    assert json.loads(json.dumps(b.to_dict()))["weights"]["beta"] == 2.0
